"""The app's API functions: a click in, a stream of output frames out.

`DemoApp` holds the loaded models and serves every session. Its public methods are the page's
endpoints, and their names and parameter names are the gradio_client API. On their first line
the named knobs become one `Knobs` value and the state one `Session`; below that nothing passes
a knob by position. Each yields (or returns) frames, dicts from output names to values, all
built by `pdiff.app.frames` (which says how app.py reads them); `error_frame` turns every error
into one line.

Live means live: a run's frames go out as the engine yields its events (`session.live_frames`).
Errors a user can cause (a bad knob, an empty prompt, a malformed plan or trace) come back as
one line in the notices area, never as a traceback. This module imports no gradio.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pdiff.app.cache import CacheCap, shared_folder
from pdiff.app.chart import chart_figure, visibility_figure
from pdiff.app.facts import Judge
from pdiff.app.frames import (
    SKIP,
    WARNING,
    Update,
    ar_lanes,
    error_frame,
    frame,
    nothing_to_replay,
    public_error,
    restored_controls,
    run_lanes,
    stats_dict,
    status,
)
from pdiff.app.inputs import (
    MAX_SPAN_UNITS,
    SWEEP_THRESHOLD,
    check_flag,
    check_prompt,
    plan_rows,
    rows_to_plan,
    run_config,
    sweep_grid,
)
from pdiff.app.machine import device_words
from pdiff.app.playback import PlaybackError, play_schedule
from pdiff.app.session import FRAME_INTERVAL, RunRecord, Session, live_frames, quality_of
from pdiff.app.settings import AppSettings, Models, load_examples
from pdiff.app.speed import why_html, why_line
from pdiff.app.timeline import timeline_figure
from pdiff.app.trace import TraceError, TraceLimits, TraceStore, read_trace, settings_for_trace, trace_to_json
from pdiff.app.view import (
    RunView,
    last_round_layout,
    notices_list_html,
    stats_rows_html,
)
from pdiff.app.work import bounded
from pdiff.config import ConfigError, GenerationConfig, Knobs
from pdiff.events import Event, Finished, Notice
from pdiff.plan import PlanError
from pdiff.tokenizer import TokenizerError

log = logging.getLogger("pdiff.app")

MAX_REPLAY_FRAMES = 150  # the play button shows at most this many frames
RUN_ERRORS = (ConfigError, PlanError, TokenizerError, ValueError)  # PromptError is a ValueError

LATEST = object()  # after_run's default: the session's latest run


# --- the app ------------------------------------------------------------------------------------


class DemoApp:
    """The app's behaviour: one loaded model (plus baseline) shared by every session."""

    def __init__(self, models: Models, settings: AppSettings, traces: TraceStore | None = None,
                 interval: float = FRAME_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, device: str | None = None) -> None:
        self.models, self.settings = models, settings
        self.device = device or device_words(settings.device)  # in words: "CPU (2 cores)"
        self.traces = traces or TraceStore()
        self.interval, self.clock, self.sleep = interval, clock, sleep
        self.examples, self.example_plan = load_examples(models.kind)
        self.judge = Judge(models.quality_kind, models.quality_label)
        self.limits = TraceLimits.of(models.pd, settings.max_new_tokens)  # what an upload may hold
        self.cache = CacheCap((self.traces.folder,), settings.cache_mb * 2**20)

    def cap_cache(self, *folders) -> None:
        """Hold `folders` (Gradio's cache of uploads and served files) and the trace folder
        under PDIFF_CACHE_MB together, trimming now and after each upload and export."""
        shared = [f for f in folders if shared_folder(f)]
        if shared:
            log.warning("cache cap: %s is shared with other programs; set GRADIO_TEMP_DIR to a "
                        "folder of the app's own to cap it", ", ".join(map(str, shared)))
        kept = tuple(Path(f) for f in folders if f not in shared)
        self.cache = CacheCap((*kept, self.traces.folder), self.cache.max_bytes)
        self.cache.trim()

    @property
    def label(self) -> str:
        return self.models.quality_label

    def chart(self, session: Session, relative: bool = False):
        return chart_figure(session.points, self.label, relative=bool(relative))

    # -- the endpoints: their names and parameter names are the API --

    def generate(self, prompt, steps_ratio, threshold, schedule, unmask, temperature,  # noqa: PLR0913
                 top_p, seed, length_scale, attention, use_cache, max_new_tokens, compare_ar=False,
                 relative_view=False, session=None):
        """Plan, then diffuse; optionally run the AR baseline after it on the same prompt."""
        knobs = Knobs.named(locals())
        yield from self._guarded(self._planned(prompt, knobs, Session.of(session), None,
                                               compare_ar, relative_view))

    def rerun_plan(self, prompt, plan_table, steps_ratio, threshold, schedule, unmask,  # noqa: PLR0913
                   temperature, top_p, seed, length_scale, attention, use_cache, max_new_tokens,
                   compare_ar=False, relative_view=False, session=None):
        """Diffuse with the editor's plan used verbatim (no plan is sampled)."""
        knobs = Knobs.named(locals())
        yield from self._guarded(self._planned(prompt, knobs, Session.of(session), plan_table,
                                               compare_ar, relative_view))

    def baseline(self, prompt, temperature, top_p, seed, max_new_tokens, relative_view=False,
                 session=None):
        """The autoregressive baseline alone; its time becomes the speedup reference."""
        knobs = Knobs.named(locals())
        yield from self._guarded(self._baseline(prompt, knobs, Session.of(session), relative_view))

    def sweep(self, prompt, schedule, unmask, temperature, top_p, seed, length_scale,  # noqa: PLR0913
              attention, use_cache, max_new_tokens, relative_view=False, session=None):
        """A small grid of step ratios x thresholds on one prompt; points arrive on the chart."""
        knobs = Knobs.named(locals())
        yield from self._guarded(self._sweep(prompt, knobs, Session.of(session), relative_view))

    def after_run(self, session=None, run=LATEST) -> dict:
        """Replay slider, plan editor, trace download and attention picture of `run` (the run
        whose step this is: None after a refused click; the session's latest by default), and
        where a stopped run stood. A loaded trace's step also restores its prompt and settings
        into the controls."""
        session = Session.of(session)
        record = session.current if run is LATEST else run
        if not isinstance(record, RunRecord) or not record.events:
            return {name: SKIP for name in ("replay", "visibility", "plan_table", "trace_file")}
        session.show(record)  # from now on the session holds it (the run's own ref lets go)
        events, view = record.events, record.view
        out = {"replay": Update(dict(maximum=max(1, len(events)), value=len(events),
                                     interactive=bool(events))),
               "visibility": self.visibility(view, record.settings)}
        out.update(self._timeline(record, session))
        rows = plan_rows(view)
        out["plan_table"] = rows if rows else SKIP
        out["trace_file"], notes = None, []
        if record.state == "stopped" and not record.loaded:
            line, partial = record.progress()
            notes = [*view.notices, Notice("stopped", line)]
            out.update(stats=stats_rows_html((k.replace("_", " "), str(v)) for k, v in partial.items()),
                       stats_json=partial)
        try:
            out["trace_file"] = self.traces.write(trace_to_json(record.settings, events), record.id)
            self.cache.trim()
        except (TraceError, OSError) as err:
            notes.append(Notice("error", f"the trace could not be saved: {public_error(err)}"))
        if notes:
            out["notices"] = notices_list_html(notes)
        if record.loaded:
            out.update(restored_controls(record.settings))
        return {**out, "run": None}

    def timeline(self, session=None) -> dict:
        """The shown run's critical-path timeline (with the AR lane of its prompt) and its "why"."""
        session = Session.of(session)
        return self._timeline(session.replayed, session)

    def _timeline(self, record: RunRecord, session: Session) -> dict:
        ar_view = session.ar_view_for(record.prompt)
        return {"timeline": timeline_figure(record.view, ar_view),
                "why": why_html(self._why(record, session))}

    def _why(self, record: RunRecord, session: Session) -> str:
        """A run's one-line speed explanation (plain text), against its prompt's AR run."""
        return why_line(record.view, session.ar_view_for(record.prompt), self.device,
                        dense=record.settings.get("attention") == "dense",
                        cached=record.settings.get("use_cache", True) is not False,
                        repeats=(session.times_of(record.settings), session.ar_times_of(record.prompt)))

    def replay_step(self, step, session=None) -> dict:
        """Frame `step` of the run shown: the view after its first `step` events."""
        session = Session.of(session)
        record = session.replayed
        if not record.events:
            return nothing_to_replay()
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
            return error_frame(ConfigError(f"the replay step must be a whole number; got {str(step)[:20]!r}"))
        return self._replay(record, session, min(max(int(step), 0), len(record.events)))

    def play(self, session=None, speed=1.0):
        """Replay the run shown from the start at `speed` (one of playback.SPEEDS; 1 is about
        15 frames a second, at most MAX_REPLAY_FRAMES frames)."""
        session = Session.of(session)
        record = session.replayed
        n = len(record.events)
        if not n:
            yield nothing_to_replay()
            return
        try:
            frames, pause = play_schedule(n, speed, MAX_REPLAY_FRAMES)
        except PlaybackError as err:
            yield {WARNING: str(err)}
            return
        for k in frames:
            yield self._replay(record, session, k, replay=k)
            if k < n:
                self.sleep(pause)

    def replay_trace(self, trace_file, session=None) -> dict:
        """Load a saved trace and show its last frame; no model is run. The trace is held to
        what a real run of this server's model could produce (`self.limits`)."""
        session = Session.of(session)
        self.cache.trim()  # the upload itself is young: it stays
        view = RunView(vocab_size=self.models.pd.model.config.vocab_size)
        try:
            settings, events = read_trace(trace_file, view, self.limits)
        except TraceError as err:
            return error_frame(err, session, run=None)
        record = session.load(settings, events, view)
        summary = {"status": "replayed", "events": len(events),
                   "settings": {k: settings[k] for k in list(settings)[:40]}}
        if view.finished is not None:
            summary.update(dataclasses.asdict(view.finished.stats), text=view.finished.text)
        return self._replay(record, session, len(events), stats_json=summary, session=session,
                            run=record)

    def rechart(self, relative_view=False, session=None) -> dict:
        return {"chart": self.chart(Session.of(session), relative_view)}

    @staticmethod
    def visibility(view: RunView, settings: dict):
        layout = last_round_layout(view)
        if layout is None:
            return None
        return visibility_figure(*layout, dense=settings.get("attention") == "dense")

    # -- runs with the model --

    def _planned(self, prompt: str, knobs: Knobs, session: Session, plan_table,
                 compare_ar: bool, relative: bool):
        """The planned run of a click (with the editor's plan, if given), then its AR baseline."""
        pd = self.models.pd
        try:
            check_prompt(prompt)
            check_flag(compare_ar, "compare_ar")
            check_flag(relative, "relative_view")
            plan = None if plan_table is None else rows_to_plan(plan_table, MAX_SPAN_UNITS)
            config = run_config(knobs.replace(plan=plan), pd, self.settings.max_new_tokens)
            baseline = self._ar_config(knobs) if compare_ar else None
            stream = self._started(pd, prompt, config)  # the engine's own checks run here
            stream = bounded(stream, config.max_new_tokens, config.schedule == "paper")
        except RUN_ERRORS as err:
            yield error_frame(err, session, run=None)
            return
        record = session.start(prompt, settings_for_trace(prompt, config, self.models.name))
        view = record.view
        judge, scope = self.judge, self.judge.notices(prompt)

        def draw(err=None, notes=(), result=None, chart=SKIP):
            out = frame(run_lanes(view, session.ar_seconds.get(prompt), judge, prompt),
                        ar_lanes(session.ar_view_for(prompt), judge, prompt),
                        notices=[*scope, *view.notices, *notes],
                        stats_json=status(view) if result is None else result, chart=chart,
                        session=session, run=record)
            if err is None:
                return out
            record.failed = True  # refused mid-run: not a stop
            return {**out, **error_frame(err, session)}

        finished = yield from self._follow(stream, view, record.events, draw)
        if finished is None:
            return
        quality = self._record(session, prompt, finished, record.settings)
        notes = self._chart_note(quality)
        result = stats_dict(finished, quality, self.label, session.ar_seconds.get(prompt))
        result["why"] = self._why(record, session)
        yield draw(notes=notes, result=result, chart=self.chart(session, relative))
        if baseline is None:
            return
        # the AR baseline, streamed beside the finished planned run
        ar_engine, ar_config = baseline
        ar_view = session.start_ar(prompt)
        if self.models.ar is None:
            notes = [*notes, Notice("baseline", self.models.baseline_note)]
        ar_finished = yield from self._follow(
            ar_engine.generate(prompt, ar_config), ar_view, [],
            lambda err=None: draw(err, [*notes, *ar_view.notices], result))
        if ar_finished is None:
            return
        ar_quality = self._record(session, prompt, ar_finished, settings_for_trace(
            prompt, ar_config, self.models.ar_name or self.models.name))
        result = {**stats_dict(finished, quality, self.label, session.ar_seconds.get(prompt)),
                  "ar": stats_dict(ar_finished, ar_quality, self.label), "why": self._why(record, session)}
        yield draw(notes=[*notes, *ar_view.notices], result=result, chart=self.chart(session, relative))

    def _baseline(self, prompt: str, knobs: Knobs, session: Session, relative: bool):
        try:
            check_prompt(prompt)
            engine, config = self._ar_config(knobs)
            stream = self._started(engine, prompt, config)
        except RUN_ERRORS as err:
            yield error_frame(err, session)
            return
        view = session.start_ar(prompt)
        notes = [] if self.models.ar is not None else [Notice("baseline", self.models.baseline_note)]
        notes = [*self.judge.notices(prompt), *notes]

        def draw(err=None, result=None, chart=SKIP, extra=()):
            out = frame(ar_lanes(view, self.judge, prompt), notices=[*notes, *view.notices, *extra],
                        stats_json=result or status(view), chart=chart, session=session)
            return out if err is None else {**out, **error_frame(err, session)}

        finished = yield from self._follow(stream, view, [], draw)
        if finished is None:
            return
        settings = settings_for_trace(prompt, config, self.models.ar_name or self.models.name)
        quality = self._record(session, prompt, finished, settings)
        yield draw(result=stats_dict(finished, quality, self.label),
                   chart=self.chart(session, relative), extra=self._chart_note(quality))

    def _sweep(self, prompt: str, knobs: Knobs, session: Session, relative: bool):
        pd, grid = self.models.pd, sweep_grid(self.settings.sweep_limit, knobs.schedule)
        try:
            check_prompt(prompt)
            configs = [run_config(knobs.replace(steps_ratio=r, schedule=s, threshold=SWEEP_THRESHOLD),
                                  pd, self.settings.max_new_tokens) for r, s in grid]
            stream = self._started(pd, prompt, configs[0])
        except RUN_ERRORS as err:
            yield error_frame(err, session)
            return
        results: list[dict] = []

        def draw(line: str, err=None, chart=SKIP):
            runs = {"runs": results}
            if err is not None:
                return error_frame(err, session, stats_json={"error": str(err), **runs})
            return frame(notices=[*self.judge.notices(prompt), Notice("sweep", line)], chart=chart,
                         session=session,
                         stats_json={"status": "running", **runs})

        for i, ((ratio, schedule), config) in enumerate(zip(grid, configs, strict=True), start=1):
            what = (f"run {i} of {len(grid)}: steps ratio {ratio:g}, " + ("reference schedule"
                    if schedule == "reference" else f"{schedule} threshold {config.threshold:g}"))
            stream = stream if i == 1 else pd.generate(prompt, config)
            stream = bounded(stream, config.max_new_tokens, config.schedule == "paper")
            fin = yield from self._follow(stream, RunView(), [], functools.partial(draw, what + " …"))
            if fin is None:
                return
            q = self._record(session, prompt, fin, settings_for_trace(prompt, config, self.models.name))
            results.append({"steps_ratio": ratio, "schedule": schedule, "threshold": config.threshold,
                            "seconds": fin.stats.total_seconds, "quality": q,
                            "forward_passes": fin.stats.forward_passes})
            yield draw(f"{what}: {fin.stats.total_seconds:.2f} s", chart=self.chart(session, relative))
        missing = sum(r["quality"] is None for r in results)
        note = [Notice("sweep", f"done: {len(results)} runs on the chart, quality = {self.label}")]
        if missing:
            note.append(Notice("chart", f"{missing} run(s) committed no span tokens and are not "
                                        "on the chart"))
        yield frame(notices=note, chart=self.chart(session, relative), session=session,
                    stats_json={"status": "finished", "runs": results})

    # -- helpers --

    @staticmethod
    def _guarded(frames: Iterator[dict]) -> Iterator[dict]:
        """A click's frames; an unexpected failure (a bug, the device) becomes one line."""
        try:
            yield from frames
        except Exception as err:  # noqa: BLE001 - shown as a message, logged with its traceback
            yield error_frame(err, expected=False, run=None)

    def _ar_config(self, knobs: Knobs) -> tuple[object, GenerationConfig]:
        """The AR baseline's engine and config: the click's sampling, seed and budget."""
        engine = self.models.ar or self.models.pd
        ar = Knobs(mode="autoregressive", temperature=knobs.temperature, top_p=knobs.top_p,
                   seed=knobs.seed, max_new_tokens=knobs.max_new_tokens)
        return engine, run_config(ar, engine, self.settings.max_new_tokens)

    @staticmethod
    def _started(engine, prompt: str, config: GenerationConfig) -> Iterator[Event]:
        """The engine's stream with its first event already drawn: the engine's own checks of
        the prompt and the plan have passed (or raised) before any frame or session change."""
        stream = engine.generate(prompt, config)
        first = next(stream)

        def events():
            try:
                yield first
                yield from stream
            finally:
                stream.close()  # a stopped run ends here: the engine releases its cache
        return events()

    def _follow(self, stream: Iterator[Event], view: RunView, record: list[Event],
                draw: Callable[..., dict]):
        """Fold a run into `view` (and `record`) live, yielding draw() as each frame until it
        finishes; return its Finished event. An error yields draw(err) and returns None."""
        try:
            for _ in live_frames(stream, view, record, self.interval, self.clock):
                if view.finished is None:
                    yield draw()
        except RUN_ERRORS as err:
            yield draw(err)
            return None
        except GeneratorExit:  # Stop or a disconnect closed the run (a refusal is logged as one)
            log.info("run stopped after %d events (%s)", len(record), view.mode)
            raise
        finally:
            stream.close()
        return view.finished

    def _record(self, session: Session, prompt: str, finished: Finished, settings: dict) -> float | None:
        quality = quality_of(self.models.quality_kind, prompt, finished)
        session.record(prompt, finished, quality, settings)
        return quality

    def _chart_note(self, quality) -> list[Notice]:
        if quality is not None:
            return []
        why = ("no facts could be read from the prompt" if self.judge.kind == "checker"
               else "this run committed no span tokens")
        return [Notice("chart", f"{why}, so it has no {self.label} and is not on the chart")]

    def _replay(self, record: RunRecord, state: Session, k: int, **outputs) -> dict:
        """Replay frame k of a run (and other outputs by name)."""
        view = record.view_at(k)
        return frame(run_lanes(view, state.ar_seconds.get(record.prompt), self.judge, record.prompt),
                     notices=view.notices, **outputs)

