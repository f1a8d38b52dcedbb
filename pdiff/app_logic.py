"""Everything the web app does that is not layout: settings, models, knobs, the live run loop.

`app.py` lays out gradio components and wires their events to the handler methods of `DemoApp`.
Each handler yields (or returns) a dict from output names (`OUTPUTS`) to values; `app.py` maps
names to components, turns `Update` into `gr.update`, `SKIP` into `gr.skip()` and shows the
`WARNING` entry as a toast. This module imports no gradio, so all of it is unit-tested.

Live means live: a run's events are folded into the view as the engine yields them, and a frame
goes out at most every `FRAME_INTERVAL` seconds, at once on SpansOpened, RoundEnd and Notice, and
always for the finished run. Errors a user can cause (a bad knob, an empty prompt, a malformed
plan or trace) come back as one line in the notices area, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pdiff import chart
from pdiff import view as V
from pdiff.config import LIMITS, THRESHOLD_RULES, ConfigError, GenerationConfig
from pdiff.events import Event, Finished, Notice, RoundEnd, SpansOpened
from pdiff.notes import checker
from pdiff.plan import PlanError, PlanRound, check_plan_rounds, render_plan
from pdiff.tokenizer import TokenizerError

log = logging.getLogger("pdiff.app")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PATH = ROOT / "assets" / "examples.json"
CSS_PATH = ROOT / "assets" / "style.css"

RELEASED_PD = ("dmisrael/planned-diffusion-dream7b-sft-16ep",
               "dmisrael/planned-diffusion-dream7b-sft-full-attention-16ep")
RELEASED_AR = "dmisrael/ar-dream7b-sft-16ep"
ALLOWED_MODELS = ("bundled", *RELEASED_PD)  # what PDIFF_MODEL may name besides a local folder

FRAME_INTERVAL = 0.07  # seconds between live frames: about 14 frames a second
URGENT = (SpansOpened, RoundEnd, Notice)  # events shown at once, whatever the throttle says
THRESHOLD_CHOICES = ("off", *THRESHOLD_RULES)  # "off": the reference schedule, no threshold
PLAN_HEADERS = ["round", "topic", "length units", "ends with"]
SWEEP_RATIOS = (0.25, 0.5, 1.0, 2.0)
SWEEP_THRESHOLD = 0.9
MAX_PROMPT_CHARS = 20_000
MAX_POINTS = 200  # chart points kept per session
MAX_AR_PROMPTS = 32  # prompts whose last AR time a session remembers
MAX_REPLAY_FRAMES = 150  # the play button shows at most this many frames
QUALITY_LABELS = {"checker": "checker score (fact accuracy)", "confidence": "mean commit confidence"}
RUN_ERRORS = (ConfigError, PlanError, TokenizerError, ValueError)  # PromptError is a ValueError

# Output names a handler may set; app.py has one component (or the session state) per name.
OUTPUTS = ("plan", "spans", "answer", "stats", "notices", "stats_json", "ar_lane", "ar_answer",
           "ar_stats", "chart", "replay", "plan_table", "trace_file", "visibility", "session")
WARNING = "warning"  # not an output: a message app.py shows as a toast


class SettingsError(ValueError):
    """A start-up setting (environment variable) is bad; the message names the variable."""


@dataclass(frozen=True)
class Update:
    """Change properties of an output component (app.py turns it into gr.update)."""

    props: dict


SKIP = object()  # leave this output as it is (app.py turns it into gr.skip())


# --- start-up settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppSettings:
    model: str  # "bundled", a released PD id, or an operator's local checkpoint folder
    ar_model: str | None  # PDIFF_AR_MODEL: None = the default for the model, "none" = no baseline
    device: str
    dtype: str
    max_new_tokens: int
    queue_size: int
    concurrency: int
    sweep_limit: int
    server_name: str
    server_port: int

    @property
    def kind(self) -> str:
        """bundled | released | folder: picks the examples, the baseline and the quality."""
        if self.model == "bundled":
            return "bundled"
        return "released" if self.model in RELEASED_PD else "folder"


def check_model_name(name, allow_folder: bool = False) -> str:
    """`name` if it is on the allow-list (or, for operator config only, a checkpoint folder).

    Anything else is refused with a message; UI and API input never reach the folder branch.
    """
    if not isinstance(name, str) or not name.strip():
        raise SettingsError("a model name must be text")
    name = name.strip()
    if name in ALLOWED_MODELS:
        return name
    if allow_folder and (Path(name).expanduser() / "config.json").is_file():
        return str(Path(name).expanduser().resolve())
    allowed = ", ".join(ALLOWED_MODELS)
    where = " or a local checkpoint folder (with config.json)" if allow_folder else ""
    raise SettingsError(f"model {name[:80]!r} is not allowed; use one of {allowed}{where}")


def _env_int(env: Mapping[str, str], var: str, default: int, low: int, high: int) -> int:
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var} must be a whole number; got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{var} must be in [{low}, {high}]; got {value}")
    return value


def settings_from_env(env: Mapping[str, str], cuda_available: bool | None = None) -> AppSettings:
    """Read the PDIFF_* and GRADIO_SERVER_* variables; SettingsError names the bad one."""
    from pdiff.loader import DTYPES  # torch is imported by the loader anyway

    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    try:
        model = check_model_name(env.get("PDIFF_MODEL") or "bundled", allow_folder=True)
    except SettingsError as err:
        raise SettingsError(f"PDIFF_MODEL: {err}") from None
    ar_raw = (env.get("PDIFF_AR_MODEL") or "").strip()
    ar_model = None
    if ar_raw.lower() == "none":
        ar_model = "none"
    elif ar_raw:
        if ar_raw == RELEASED_AR:
            ar_model = ar_raw
        elif (Path(ar_raw).expanduser() / "config.json").is_file():
            ar_model = str(Path(ar_raw).expanduser().resolve())
        else:
            raise SettingsError(f"PDIFF_AR_MODEL must be {RELEASED_AR}, none, or a local "
                                f"checkpoint folder (with config.json); got {ar_raw[:80]!r}")
    device = (env.get("PDIFF_DEVICE") or ("cuda" if cuda_available else "cpu")).strip().lower()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise SettingsError(f"PDIFF_DEVICE must be cpu or cuda; got {device[:40]!r}")
    if device.startswith("cuda") and not cuda_available:
        raise SettingsError(f"PDIFF_DEVICE={device} but no CUDA GPU is available; use cpu")
    dtype = (env.get("PDIFF_DTYPE") or ("bfloat16" if device != "cpu" else "float32")).strip()
    if dtype not in DTYPES:
        raise SettingsError(f"PDIFF_DTYPE must be one of {', '.join(DTYPES)}; got {dtype[:40]!r}")
    server_name = (env.get("GRADIO_SERVER_NAME") or "127.0.0.1").strip()
    if not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]+", server_name):
        raise SettingsError(f"GRADIO_SERVER_NAME must be a host name or address; got {server_name[:40]!r}")
    return AppSettings(
        model=model, ar_model=ar_model, device=device, dtype=dtype,
        max_new_tokens=_env_int(env, "PDIFF_MAX_NEW_TOKENS", 512, 1, int(LIMITS["max_new_tokens"][1])),
        queue_size=_env_int(env, "PDIFF_QUEUE_SIZE", 16, 1, 10_000),
        concurrency=_env_int(env, "PDIFF_CONCURRENCY", 2, 1, 64),
        sweep_limit=_env_int(env, "PDIFF_SWEEP_LIMIT", 8, 1, 64),
        server_name=server_name,
        server_port=_env_int(env, "GRADIO_SERVER_PORT", 7860, 1, 65_535),
    )


# --- models and examples -------------------------------------------------------------------------


@dataclass
class Models:
    pd: object  # pdiff.engine.Engine
    ar: object | None  # a separate AR baseline engine, or None: the PD model in AR mode
    kind: str
    name: str
    ar_name: str | None

    @property
    def display_name(self) -> str:
        """The model as the page names it: never an operator's full folder path."""
        if self.kind == "folder":
            return f"local checkpoint {Path(self.name).name}"
        return "bundled pd-notes" if self.kind == "bundled" else self.name

    @property
    def quality_kind(self) -> str:
        return "checker" if self.kind == "bundled" else "confidence"

    @property
    def quality_label(self) -> str:
        return QUALITY_LABELS[self.quality_kind]

    @property
    def baseline_note(self) -> str:
        if self.ar is not None:
            return f"autoregressive baseline: {Path(self.ar_name or '').name or self.ar_name}"
        return ("no separate autoregressive baseline model is loaded; the baseline is this "
                "planned-diffusion model decoding in autoregressive mode")


def load_models(settings: AppSettings, loader: Callable | None = None) -> Models:
    """Load the model (and its AR baseline) once; SettingsError names the variable on failure."""
    from pdiff.loader import BUNDLED_AR, CheckpointError, load_engine

    loader = loader or load_engine
    failures = (CheckpointError, OSError, RuntimeError, ValueError, KeyError)
    try:
        pd = loader(None if settings.model == "bundled" else settings.model,
                    settings.device, settings.dtype)
    except failures as err:
        raise SettingsError(f"PDIFF_MODEL={settings.model} could not be loaded: {err}") from None
    ar_name = settings.ar_model
    explicit = ar_name not in (None, "none")
    if ar_name is None:
        if settings.kind == "bundled" and (BUNDLED_AR / "config.json").is_file():
            ar_name = str(BUNDLED_AR)
        elif settings.kind == "released":
            ar_name = RELEASED_AR
    ar = None
    if ar_name not in (None, "none"):
        try:
            ar = loader(ar_name, settings.device, settings.dtype)
        except failures as err:
            if explicit:
                raise SettingsError(f"PDIFF_AR_MODEL={ar_name} could not be loaded: {err}") from None
            log.warning("AR baseline %s unavailable (%s); using the PD model in AR mode", ar_name, err)
    return Models(pd, ar, settings.kind, settings.model, ar_name if ar is not None else None)


def load_examples(kind: str, path: Path = EXAMPLES_PATH) -> tuple[list[str], list[list]]:
    """(example prompts, starter plan rows) for a model kind; empty if the file is unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        entry = data["released" if kind == "released" else "bundled"]
        return [str(p) for p in entry["prompts"]], [list(r) for r in entry["plan"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("examples not loaded from %s: %s", path, err)
        return [], []


# --- knobs -> GenerationConfig ------------------------------------------------------------------

_INTEGRAL = ("seed", "length_scale", "max_new_tokens")


def _whole(name: str, value):
    """Sliders and JSON send 3.0 for 3: accept integral floats for the whole-number knobs."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def config_from_inputs(engine, max_new_tokens_cap: int, *, mode: str = "planned", steps_ratio=1.0,
                       threshold=None, threshold_rule="off", unmask="entropy", temperature=0.2,
                       top_p=0.95, seed=0, length_scale=None, attention="sparse", use_cache=True,
                       max_new_tokens=None, plan=None) -> GenerationConfig:
    """A GenerationConfig from the app's controls. ConfigError says which control is wrong.

    max_new_tokens None: 512 or the server's cap, whichever is smaller.
    """
    if max_new_tokens is None:
        max_new_tokens = min(512, max_new_tokens_cap)
    if threshold_rule not in THRESHOLD_CHOICES:
        raise ConfigError(f"threshold_rule must be one of {', '.join(THRESHOLD_CHOICES)}; "
                          f"got {threshold_rule!r}")
    knobs = dict(mode=mode, steps_ratio=steps_ratio, unmask=unmask, temperature=temperature,
                 top_p=top_p, seed=seed, attention=attention, use_cache=use_cache,
                 max_new_tokens=max_new_tokens, plan=plan)
    if length_scale is not None:
        knobs["length_scale"] = length_scale
    if threshold_rule == "off" or threshold is None:
        knobs.update(threshold=None, threshold_rule="paper")
    else:
        knobs.update(threshold=threshold, threshold_rule=threshold_rule)
    for name, value in knobs.items():
        if value is None and name not in ("threshold", "plan"):
            raise ConfigError(f"{name} is missing; give a value")
        knobs[name] = _whole(name, value) if name in _INTEGRAL else value
    config = engine.config(**knobs)  # GenerationConfig validates every knob and its limits
    if config.max_new_tokens > max_new_tokens_cap:
        raise ConfigError(f"max_new_tokens must be at most {max_new_tokens_cap} on this server "
                          f"(PDIFF_MAX_NEW_TOKENS); got {config.max_new_tokens}")
    return config


def check_prompt(prompt) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("the prompt is empty; type an instruction")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ConfigError(f"the prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are read")
    return prompt


def public_model_name(name) -> str:
    """A model as traces name it: an allowed id as it is, a checkpoint folder by its last part
    only (traces are downloaded and shared; the operator's folders are not theirs to know)."""
    name = str(name)
    if name in (*ALLOWED_MODELS, RELEASED_AR):
        return name
    return Path(name).name or name


# An absolute path of two or more parts ("/srv/models/x", "C:\\m\\x"); "<sync/>" is not one.
_SERVER_PATH = re.compile(r"(?<![\w.<])(?:[A-Za-z]:)?[/\\](?:[\w.~+@-]+[/\\])+[\w.~+@-]*")


def public_error(err: BaseException, limit: int = 200) -> str:
    """An unexpected exception as a user may see it: no server path (an OSError by its reason)."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return _SERVER_PATH.sub("<path>", text)[:limit]


def settings_for_trace(prompt: str, config: GenerationConfig, model: str) -> dict:
    """JSON-ready run settings (a structured plan is written back as plan markup)."""
    values = config.to_dict()
    if isinstance(values["plan"], tuple):
        values["plan"] = render_plan(values["plan"])
    return {"prompt": prompt, "model": public_model_name(model), **values}


# --- plan editor table <-> PlanRound ------------------------------------------------------------


def plan_rows(view: V.RunView) -> list[list]:
    """The editor rows of a run's opened rounds; 'ends with' is written on a round's last row."""
    rows = []
    for n, rnd in enumerate((r for r in view.ordered_rounds() if r.opened), start=1):
        for i, span in enumerate(rnd.spans):
            last = i == len(rnd.spans) - 1
            rows.append([n, span.topic, span.units, (rnd.terminator or "end") if last else ""])
    return rows


def _cells(table) -> list[list]:
    if isinstance(table, dict):  # the API form {"headers": [...], "data": [[...]]}
        table = table.get("data")
    if hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        table = table.values.tolist()
    if not isinstance(table, (list, tuple)):
        raise PlanError("the plan table must be rows of (round, topic, length units, ends with)")
    return [list(r) if isinstance(r, (list, tuple)) else [r] for r in table]


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == ""


def _whole_cell(cell, what: str, row: int) -> int:
    try:
        value = float(str(cell).strip())
    except ValueError:
        raise PlanError(f"row {row}: {what} must be a whole number; got {str(cell)[:20]!r}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise PlanError(f"row {row}: {what} must be a whole number; got {str(cell)[:20]!r}")
    return int(value)


_ENDS = {"sync": "sync", "<sync/>": "sync", "end": "end", "<|im_end|>": "end"}


def rows_to_plan(table, max_units: int) -> tuple[PlanRound, ...]:
    """Editor rows -> plan rounds. PlanError names the row and what to change.

    Rows are grouped by round number in increasing order; blank rows are skipped. A round ends
    with the 'ends with' value of its rows (sync or end); left blank, the last round ends and
    the others sync. Topics stay plain text, tags included: the engine encodes them as text.
    """
    groups: dict[int, list[tuple[str, int]]] = {}
    ends: dict[int, set[str]] = {}
    for r, row in enumerate(_cells(table), start=1):
        row = (row + [None] * 4)[:4]
        if all(_blank(c) for c in row):
            continue
        rnd = _whole_cell(row[0], "round", r)
        if rnd < 1:
            raise PlanError(f"row {r}: round must be 1 or more; got {rnd}")
        topic = "" if _blank(row[1]) else str(row[1]).strip()
        if not topic:
            raise PlanError(f"row {r}: the topic is empty")
        if _blank(row[2]):
            raise PlanError(f"row {r}: give a length in units (1..{max_units})")
        units = _whole_cell(row[2], "length units", r)
        if not 1 <= units <= max_units:
            raise PlanError(f"row {r}: length units must be 1..{max_units}; got {units}")
        groups.setdefault(rnd, []).append((topic, units))
        end = "" if _blank(row[3]) else str(row[3]).strip().lower()
        if end:
            if end not in _ENDS:
                raise PlanError(f"row {r}: 'ends with' must be sync or end; got {str(row[3])[:20]!r}")
            ends.setdefault(rnd, set()).add(_ENDS[end])
    if not groups:
        raise PlanError("the plan table is empty; add rows of round, topic, length units")
    rounds = []
    order = sorted(groups)
    for i, rnd in enumerate(order):
        given = ends.get(rnd, set())
        if len(given) > 1:
            raise PlanError(f"round {rnd} is marked both sync and end; pick one")
        last = i == len(order) - 1
        terminator = given.pop() if given else ("end" if last else "sync")
        if terminator == "end" and not last:
            raise PlanError(f"round {rnd} ends the answer but round {order[i + 1]} follows; "
                            "mark it sync")
        rounds.append(PlanRound(tuple(groups[rnd]), terminator))
    return check_plan_rounds(rounds, max_units)


# --- the live loop ------------------------------------------------------------------------------


def live_frames(events: Iterable[Event], view: V.RunView, record: list[Event],
                interval: float = FRAME_INTERVAL,
                clock: Callable[[], float] = time.monotonic) -> Iterator[V.RunView]:
    """Fold events into `view` (and `record`) as they come; yield the view as a frame.

    A frame goes out when `interval` has passed since the last one, on an urgent event, and
    always once the stream has ended (the final frame). Nothing is computed ahead and replayed.
    """
    last = None
    for ev in events:
        view.apply(ev)
        record.append(ev)
        if isinstance(ev, Finished):
            break
        now = clock()
        if last is None or now - last >= interval or isinstance(ev, URGENT):
            last = now
            yield view
    yield view


def sweep_grid(limit: int, rule: str) -> list[tuple[float, float | None, str]]:
    """(steps_ratio, threshold, rule) runs: ratios x {off, threshold}, at most `limit`, spread."""
    rule = rule if rule in THRESHOLD_RULES else "paper"
    grid = [(ratio, thr, rule if thr is not None else "off")
            for thr, ratio in itertools.product((None, SWEEP_THRESHOLD), SWEEP_RATIOS)]
    if limit >= len(grid):
        return grid
    picks = sorted({round(i * (len(grid) - 1) / max(1, limit - 1)) for i in range(limit)})
    return [grid[i] for i in picks][:limit]


def quality_of(kind: str, prompt: str, finished: Finished) -> float | None:
    """The chart's quality: the checker's score, or the mean commit confidence (None if none)."""
    if kind == "checker":
        return checker.score(prompt, finished.text).value
    return finished.stats.mean_confidence


def stats_dict(finished: Finished, quality: float | None, label: str,
               ar_seconds: float | None = None) -> dict:
    out = dataclasses.asdict(finished.stats)
    out.update(quality=quality, quality_label=label,
               speedup_vs_ar=V.speedup(finished.stats, ar_seconds), text=finished.text)
    return out


def _notices(notices: Iterable[Notice]) -> str:
    return V.notices_html(V.RunView(notices=list(notices)))


def error_html(message: str) -> str:
    return _notices([Notice("error", message)])


# --- per-session state and traces ---------------------------------------------------------------


@dataclass
class Session:
    """One visitor's runs: chart points, AR times per prompt, and the last run for replay."""

    points: list[chart.ChartPoint] = field(default_factory=list)
    ar_seconds: dict[str, float] = field(default_factory=dict)
    prompt: str = ""
    settings: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    ar_prompt: str = ""
    ar_view: V.RunView | None = None
    runs: int = 0

    def add_point(self, point: chart.ChartPoint) -> None:
        self.points = (self.points + [point])[-MAX_POINTS:]

    def remember_ar(self, prompt: str, seconds: float) -> None:
        self.ar_seconds.pop(prompt, None)
        self.ar_seconds[prompt] = seconds
        while len(self.ar_seconds) > MAX_AR_PROMPTS:
            self.ar_seconds.pop(next(iter(self.ar_seconds)))


class TraceStore:
    """Trace files for download, in one folder, keeping only the newest `keep`."""

    def __init__(self, folder: Path | None = None, keep: int = 64) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="pdiff-traces-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._n = 0

    def write(self, text: str) -> str:
        self._n += 1
        path = self.folder / f"pdiff-trace-{os.getpid()}-{time.time_ns()}-{self._n}.json"
        path.write_text(text)
        files = sorted(self.folder.glob("pdiff-trace-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:-self.keep]:
            old.unlink(missing_ok=True)
        return str(path)


def read_trace(path) -> tuple[dict, list[Event]]:
    """Read an uploaded trace file; TraceError says what is wrong with it."""
    if not path:
        raise V.TraceError("choose a trace file (.json) to load")
    path = Path(getattr(path, "name", path))
    try:
        size = path.stat().st_size
        if size > V.MAX_TRACE_BYTES:
            raise V.TraceError(f"the trace is over {V.MAX_TRACE_BYTES // 2**20} MB; it was not read")
        data = path.read_bytes()
    except OSError:
        raise V.TraceError("the trace file could not be read") from None
    return V.trace_from_json(data)


# --- the handlers -------------------------------------------------------------------------------


class DemoApp:
    """The app's behaviour: one loaded model (plus baseline) shared by every session."""

    def __init__(self, models: Models, settings: AppSettings, traces: TraceStore | None = None,
                 interval: float = FRAME_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.models, self.settings = models, settings
        self.traces = traces or TraceStore()
        self.interval, self.clock, self.sleep = interval, clock, sleep
        self.examples, self.example_plan = load_examples(models.kind)

    # -- helpers --

    @property
    def label(self) -> str:
        return self.models.quality_label

    def chart(self, session: Session, relative: bool = False):
        return chart.chart_figure(session.points, self.label, relative=bool(relative))

    def _config(self, engine, **knobs) -> GenerationConfig:
        return config_from_inputs(engine, self.settings.max_new_tokens, **knobs)

    def _ar(self, prompt, temperature, top_p, seed, max_new_tokens):
        engine = self.models.ar or self.models.pd
        return engine, self._config(engine, mode="autoregressive", temperature=temperature,
                                    top_p=top_p, seed=seed, max_new_tokens=max_new_tokens)

    def _stream(self, engine, prompt: str, config: GenerationConfig, view: V.RunView,
                record: list[Event]) -> Iterator[V.RunView]:
        stream = engine.generate(prompt, config)
        try:
            yield from live_frames(stream, view, record, self.interval, self.clock)
        except GeneratorExit:  # Stop or a disconnect closed the run (a refusal is logged as one)
            log.info("run stopped after %d events (%s)", len(record), config.mode)
            raise
        finally:
            stream.close()  # a stopped run ends here: the engine releases its cache

    def _record(self, session: Session, prompt: str, finished: Finished, settings: dict) -> float | None:
        q = quality_of(self.models.quality_kind, prompt, finished)
        session.runs += 1
        if q is not None:
            session.add_point(chart.ChartPoint(
                f"run {session.runs}", finished.stats.mode, finished.stats.total_seconds, q, settings))
        if finished.stats.mode == chart.AR_MODE:
            session.remember_ar(prompt, finished.stats.total_seconds)
        return q

    def _chart_note(self, q) -> list[Notice]:
        if q is not None:
            return []
        return [Notice("chart", "this run committed no span tokens, so it has no "
                                f"{self.label} and is not on the chart")]

    def _error(self, session: Session, err: Exception, **extra) -> dict:
        message = str(err) or type(err).__name__
        log.info("refused: %s", message)
        return {"notices": error_html(message), "stats_json": {"error": message},
                "session": session, WARNING: message, **extra}

    def _ar_outputs(self, session: Session, prompt: str) -> dict:
        ar = session.ar_view if session.ar_prompt == prompt else None
        if ar is None:
            return {"ar_lane": "", "ar_answer": "", "ar_stats": ""}
        return {"ar_lane": V.spans_html(ar), "ar_answer": V.answer_text(ar),
                "ar_stats": V.stats_html(ar)}

    def _frame(self, session: Session, prompt: str, view: V.RunView, notes=(), json_=None,
               chart_=SKIP) -> dict:
        done = view.finished is not None
        return {
            "plan": V.plan_html(view), "spans": V.spans_html(view), "answer": V.answer_text(view),
            "stats": V.stats_html(view, session.ar_seconds.get(prompt)),
            "notices": _notices([*view.notices, *notes]),
            "stats_json": json_ if json_ is not None else {"status": "finished" if done else "running",
                                                            "events": view.count},
            **self._ar_outputs(session, prompt), "chart": chart_, "session": session,
        }

    # -- runs with the model --

    @staticmethod
    def _guarded(handler, *args):
        """Run a handler's frames; an unexpected failure (a bug, the device) becomes one line."""
        try:
            yield from handler(*args)
        except Exception as err:  # noqa: BLE001 - shown as a message, logged with its traceback
            log.exception("run failed")
            message = (f"the run failed ({type(err).__name__}: {public_error(err)}); "
                       "the server log has the details")
            yield {"notices": error_html(message), "stats_json": {"error": message},
                   WARNING: message}

    def generate(self, prompt, steps_ratio, threshold, threshold_rule, unmask, temperature, top_p,
                 seed, length_scale, attention, use_cache, max_new_tokens, compare_ar=False,
                 relative_view=False, session=None):
        """Plan, then diffuse; optionally run the AR baseline after it on the same prompt."""
        yield from self._guarded(self._planned, prompt, None, steps_ratio, threshold, threshold_rule, unmask,
                                 temperature, top_p, seed, length_scale, attention, use_cache,
                                 max_new_tokens, compare_ar, relative_view, session)

    def rerun_plan(self, prompt, plan_table, steps_ratio, threshold, threshold_rule, unmask,
                   temperature, top_p, seed, length_scale, attention, use_cache, max_new_tokens,
                   compare_ar=False, relative_view=False, session=None):
        """Diffuse with the editor's plan used verbatim (no plan is sampled)."""
        yield from self._guarded(self._planned, prompt, plan_table, steps_ratio, threshold, threshold_rule,
                                 unmask, temperature, top_p, seed, length_scale, attention,
                                 use_cache, max_new_tokens, compare_ar, relative_view, session)

    def _planned(self, prompt, plan_table, steps_ratio, threshold, threshold_rule, unmask,
                 temperature, top_p, seed, length_scale, attention, use_cache, max_new_tokens,
                 compare_ar, relative_view, session):
        session = session if isinstance(session, Session) else Session()
        pd = self.models.pd
        try:
            prompt = check_prompt(prompt)
            config = self._config(pd, steps_ratio=steps_ratio, threshold=threshold,
                                  threshold_rule=threshold_rule, unmask=unmask,
                                  temperature=temperature, top_p=top_p, seed=seed,
                                  length_scale=length_scale, attention=attention,
                                  use_cache=use_cache, max_new_tokens=max_new_tokens)
            if plan_table is not None:
                rounds = rows_to_plan(plan_table, config.max_span_units)
                config = GenerationConfig.from_dict({**config.to_dict(), "plan": rounds})
            if compare_ar:
                ar_engine, ar_config = self._ar(prompt, temperature, top_p, seed, max_new_tokens)
        except RUN_ERRORS as err:
            yield self._error(session, err)
            return
        settings = settings_for_trace(prompt, config, self.models.name)
        session.prompt, session.settings, session.events = prompt, settings, []
        view = V.RunView()
        try:
            for _ in self._stream(pd, prompt, config, view, session.events):
                if view.finished is None:
                    yield self._frame(session, prompt, view)
        except RUN_ERRORS as err:
            yield {**self._frame(session, prompt, view), **self._error(session, err)}
            return
        finished = view.finished
        q = self._record(session, prompt, finished, settings)
        notes = self._chart_note(q)
        result = stats_dict(finished, q, self.label, session.ar_seconds.get(prompt))
        if not compare_ar:
            yield self._frame(session, prompt, view, notes, result, self.chart(session, relative_view))
            return
        # the AR baseline, streamed beside the finished planned run
        yield self._frame(session, prompt, view, notes, result, self.chart(session, relative_view))
        ar_view, ar_events = V.RunView(), []
        session.ar_prompt, session.ar_view = prompt, ar_view
        if self.models.ar is None:
            notes = [*notes, Notice("baseline", self.models.baseline_note)]
        try:
            for _ in self._stream(ar_engine, prompt, ar_config, ar_view, ar_events):
                if ar_view.finished is None:
                    yield self._frame(session, prompt, view, [*notes, *ar_view.notices], result)
        except RUN_ERRORS as err:
            yield {**self._frame(session, prompt, view, notes, result), **self._error(session, err)}
            return
        ar_q = self._record(session, prompt, ar_view.finished, settings_for_trace(
            prompt, ar_config, self.models.ar_name or self.models.name))
        result = {**stats_dict(finished, q, self.label, session.ar_seconds.get(prompt)),
                  "ar": stats_dict(ar_view.finished, ar_q, self.label)}
        yield self._frame(session, prompt, view, [*notes, *ar_view.notices], result,
                          self.chart(session, relative_view))

    def baseline(self, prompt, temperature, top_p, seed, max_new_tokens, relative_view=False,
                 session=None):
        """The autoregressive baseline alone; its time becomes the speedup reference."""
        yield from self._guarded(self._baseline, prompt, temperature, top_p, seed, max_new_tokens,
                                 relative_view, session)

    def _baseline(self, prompt, temperature, top_p, seed, max_new_tokens, relative_view, session):
        session = session if isinstance(session, Session) else Session()
        try:
            prompt = check_prompt(prompt)
            engine, config = self._ar(prompt, temperature, top_p, seed, max_new_tokens)
        except RUN_ERRORS as err:
            yield self._error(session, err)
            return
        view, record = V.RunView(), []
        session.ar_prompt, session.ar_view = prompt, view
        notes = [] if self.models.ar is not None else [Notice("baseline", self.models.baseline_note)]

        def frame(json_=None, chart_=SKIP, extra=()):
            return {"ar_lane": V.spans_html(view), "ar_answer": V.answer_text(view),
                    "ar_stats": V.stats_html(view), "notices": _notices([*notes, *view.notices, *extra]),
                    "stats_json": json_ or {"status": "running", "events": view.count},
                    "chart": chart_, "session": session}
        try:
            for _ in self._stream(engine, prompt, config, view, record):
                if view.finished is None:
                    yield frame()
        except RUN_ERRORS as err:
            yield {**frame(), **self._error(session, err)}
            return
        settings = settings_for_trace(prompt, config, self.models.ar_name or self.models.name)
        q = self._record(session, prompt, view.finished, settings)
        yield frame(stats_dict(view.finished, q, self.label), self.chart(session, relative_view),
                    self._chart_note(q))

    def sweep(self, prompt, threshold_rule, unmask, temperature, top_p, seed, length_scale,
              attention, use_cache, max_new_tokens, relative_view=False, session=None):
        """A small grid of step ratios x thresholds on one prompt; points arrive on the chart."""
        yield from self._guarded(self._sweep, prompt, threshold_rule, unmask, temperature, top_p,
                                 seed, length_scale, attention, use_cache, max_new_tokens,
                                 relative_view, session)

    def _sweep(self, prompt, threshold_rule, unmask, temperature, top_p, seed, length_scale,
               attention, use_cache, max_new_tokens, relative_view, session):
        session = session if isinstance(session, Session) else Session()
        grid = sweep_grid(self.settings.sweep_limit, threshold_rule)
        try:
            prompt = check_prompt(prompt)
            configs = [self._config(self.models.pd, steps_ratio=r, threshold=t, threshold_rule=rule,
                                    unmask=unmask, temperature=temperature, top_p=top_p, seed=seed,
                                    length_scale=length_scale, attention=attention,
                                    use_cache=use_cache, max_new_tokens=max_new_tokens)
                       for r, t, rule in grid]
        except RUN_ERRORS as err:
            yield self._error(session, err)
            return
        results: list[dict] = []

        def status(i: int, line: str) -> str:
            return _notices([Notice("sweep", f"run {i} of {len(grid)}: {line}")])
        for i, ((ratio, thr, rule), config) in enumerate(zip(grid, configs, strict=True), start=1):
            what = f"steps ratio {ratio:g}, threshold {'off' if thr is None else f'{thr:g} ({rule})'}"
            view = V.RunView()
            try:
                for _ in self._stream(self.models.pd, prompt, config, view, []):
                    if view.finished is None:  # keep the stream live so Stop acts promptly
                        yield {"notices": status(i, what + " …"), "chart": SKIP, "session": session,
                               "stats_json": {"status": "running", "runs": results}}
            except RUN_ERRORS as err:
                yield self._error(session, err, stats_json={"error": str(err), "runs": results})
                return
            fin = view.finished
            q = self._record(session, prompt, fin, settings_for_trace(prompt, config, self.models.name))
            results.append({"steps_ratio": ratio, "threshold": thr, "threshold_rule": rule,
                            "seconds": fin.stats.total_seconds, "quality": q,
                            "forward_passes": fin.stats.forward_passes})
            yield {"notices": status(i, f"{what}: {fin.stats.total_seconds:.2f} s"),
                   "chart": self.chart(session, relative_view), "session": session,
                   "stats_json": {"status": "running", "runs": results}}
        missing = sum(r["quality"] is None for r in results)
        note = [Notice("sweep", f"done: {len(results)} runs on the chart, quality = {self.label}")]
        if missing:
            note.append(Notice("chart", f"{missing} run(s) committed no span tokens and are not "
                                        "on the chart"))
        yield {"notices": _notices(note), "chart": self.chart(session, relative_view),
               "session": session, "stats_json": {"status": "finished", "runs": results}}

    # -- after a run, replay and traces (no model needed) --

    def after_run(self, session=None) -> dict:
        """Replay slider, plan editor, trace download and attention picture of the last run."""
        session = session if isinstance(session, Session) else Session()
        events = session.events
        view = V.fold(events)
        out = {"replay": Update(dict(maximum=max(1, len(events)), value=len(events),
                                     interactive=bool(events))),
               "visibility": self.visibility(view, session.settings)}
        rows = plan_rows(view)
        out["plan_table"] = rows if rows else SKIP
        out["trace_file"] = None
        if events:
            try:
                out["trace_file"] = self.traces.write(V.trace_to_json(session.settings, events))
            except (V.TraceError, OSError) as err:
                out.update(notices=error_html(f"the trace could not be saved: {public_error(err)}"))
        return out

    @staticmethod
    def visibility(view: V.RunView, settings: dict):
        layout = chart.last_round_layout(view)
        if layout is None:
            return None
        return chart.visibility_figure(*layout, dense=settings.get("attention") == "dense")

    def _replay_values(self, session: Session, k: int) -> dict:
        view = V.fold(session.events[:k])
        return {"plan": V.plan_html(view), "spans": V.spans_html(view),
                "answer": V.answer_text(view), "notices": V.notices_html(view),
                "stats": V.stats_html(view, session.ar_seconds.get(session.prompt))}

    def replay_step(self, step, session=None) -> dict:
        """Frame `step` of the last run: the view after its first `step` events."""
        session = session if isinstance(session, Session) else Session()
        try:
            k = int(step)
        except (TypeError, ValueError):
            k = len(session.events)
        return self._replay_values(session, min(max(k, 0), len(session.events)))

    def play(self, session=None):
        """Replay the last run from the start at about 15 frames a second (bounded)."""
        session = session if isinstance(session, Session) else Session()
        n = len(session.events)
        if not n:
            yield {WARNING: "nothing to replay yet: generate or load a trace first"}
            return
        stride = max(1, math.ceil(n / MAX_REPLAY_FRAMES))
        for k in [*range(0, n, stride), n]:
            yield {"replay": k, **self._replay_values(session, k)}
            if k < n:
                self.sleep(1 / 15)

    def replay_trace(self, trace_file, session=None) -> dict:
        """Load a saved trace and show its last frame; no model is run."""
        session = session if isinstance(session, Session) else Session()
        try:
            settings, events = read_trace(trace_file)
        except V.TraceError as err:
            return self._error(session, err)
        session.settings, session.events = settings, events
        session.prompt = str(settings.get("prompt", ""))
        view = V.fold(events)
        summary = {"status": "replayed", "events": len(events),
                   "settings": {k: settings[k] for k in list(settings)[:40]}}
        if view.finished is not None:
            summary.update(dataclasses.asdict(view.finished.stats), text=view.finished.text)
        return {**self._replay_values(session, len(events)), "stats_json": summary,
                "session": session}

    def rechart(self, relative_view=False, session=None) -> dict:
        session = session if isinstance(session, Session) else Session()
        return {"chart": self.chart(session, relative_view)}
