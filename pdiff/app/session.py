"""One visitor's state: the chart's points, the AR times per prompt, and their runs, folded.

A `Session` lives in the page's state. Each run is a `RunRecord` of its own: its id, prompt,
settings, events (for the trace and the replay) and the view they fold into, filled while the
run streams, so nothing is folded twice. A run's handler keeps its own record, so two runs of
one session never see each other's results; `shown` is the run the replay slider and Play show
(set when a run's after-run step shows it). `live_frames` is that streaming: it folds a run's
events as the engine yields them and lets a frame out at most every `FRAME_INTERVAL` seconds
(at once on the events in `URGENT`, and always for the end), with nothing computed ahead and
replayed. `quality_of` is a run's quality on the chart. This module knows nothing of gradio, models or HTML.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pdiff.app.chart import AR_MODE, ChartPoint
from pdiff.app.fold import RunView, fold
from pdiff.events import Event, Finished, Notice, RoundEnd, SpansOpened
from pdiff.notes import checker

FRAME_INTERVAL = 0.07  # seconds between live frames: about 14 frames a second
URGENT = (SpansOpened, RoundEnd, Notice)  # events shown at once, whatever the throttle says
MAX_POINTS = 200  # chart points kept per session
MAX_REPEATS = 20  # timings kept per run setting, for the speed line's spread
MAX_AR_PROMPTS = 32  # prompts whose last AR time a session remembers


@dataclass
class RunRecord:
    """One run (or loaded trace) of a session: what its after-run step, trace and replay show."""

    prompt: str = ""
    settings: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    view: RunView = field(default_factory=RunView)  # fold(events), kept as they arrive
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])  # names its trace file
    loaded: bool = False  # a replayed trace, not a run of this server
    failed: bool = False  # refused part-way (its error frame said why)

    @property
    def state(self) -> str:
        """finished | failed | stopped (closed before its Finished event) | empty (no event)."""
        if self.view.finished is not None:
            return "finished"
        if self.failed:
            return "failed"
        return "stopped" if self.events else "empty"

    def view_at(self, k: int) -> RunView:
        """The run after its first k events: the replay frame k."""
        return self.view if k >= len(self.events) else fold(self.events[:k])

    def progress(self) -> tuple[str, dict]:
        """Where a run that ended early stood: one line ("stopped at step k of n ...") and its
        partial stats, counted from the events it got to."""
        view = self.view
        opened = [r for r in view.ordered_rounds() if r.opened]
        plan_tokens = sum(len(r.plan) for r in view.rounds.values()) + len(view.text_tokens)
        steps = sum(r.step + 1 for r in opened)
        committed = sum(s.filled for r in opened for s in r.spans)
        slots = sum(s.length for r in opened for s in r.spans)
        stats = {"status": "stopped", "events": len(self.events), "rounds": len(view.rounds),
                 "spans": sum(len(r.spans) for r in opened), "plan_tokens": plan_tokens,
                 "denoise_steps": steps, "committed_tokens": committed, "span_tokens": slots}
        if opened and opened[-1].step >= 0 and opened[-1].texts is None:
            rnd = opened[-1]
            where = (f"stopped at denoise step {rnd.step + 1} of {rnd.steps} (round "
                     f"{len(opened)}): {committed} of {slots} span tokens written")
        elif opened and opened[-1].texts is None:
            where = f"stopped before the first denoise step of round {len(opened)}"
        else:
            where = f"stopped while planning round {len(opened) + 1}, after {plan_tokens} plan tokens"
        return where, stats


@dataclass
class Session:
    """One visitor's runs: chart points, AR times per prompt, and the run shown for replay."""

    points: list[ChartPoint] = field(default_factory=list)
    ar_seconds: dict[str, float] = field(default_factory=dict)
    current: RunRecord = field(default_factory=RunRecord)  # the latest started or loaded run
    shown: RunRecord = field(default_factory=RunRecord)  # the run the replay controls show
    ar_prompt: str = ""
    ar_view: RunView | None = None
    runs: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)  # seconds per run setting (JSON)
    stopping: bool = False  # the page's Stop was pressed: the click's run ends at its next event
    screen: dict = field(default_factory=dict)  # the page's value of each output, as last sent (gradio_layer)

    # The latest run, as before runs had records of their own (its handler holds its record).
    prompt = property(lambda self: self.current.prompt)
    settings = property(lambda self: self.current.settings)
    events = property(lambda self: self.current.events)
    view = property(lambda self: self.current.view)

    @classmethod
    def of(cls, value) -> Session:
        """`value` itself when it is a Session; a fresh one for a new visitor or an API call."""
        return value if isinstance(value, cls) else cls()

    def begin(self) -> None:
        """A click's run begins: a Stop pressed before it no longer applies."""
        self.stopping = False

    def stop(self) -> None:
        """The page's Stop: this session's run ends at its next event, and shows what it had
        (`pdiff.app.runs`)."""
        self.stopping = True

    def start(self, prompt: str, settings: dict) -> RunRecord:
        """A new run's record (the latest); its events and view fill as it streams."""
        self.current = RunRecord(prompt, settings)
        return self.current

    def load(self, settings: dict, events: list[Event], view: RunView) -> RunRecord:
        """A replayed trace's record (`view` is fold(events)), the latest run."""
        self.current = RunRecord(str(settings.get("prompt", "")), settings, events, view, loaded=True)
        return self.current

    @property
    def replayed(self) -> RunRecord:
        """The run the replay controls show; the latest before any after-run step showed one."""
        return self.shown if self.shown.events else self.current

    def show(self, record: RunRecord | None) -> RunRecord:
        """Make `record` the run the replay controls show (None: keep the one shown)."""
        if record is not None:
            self.shown = record
        return self.shown

    def start_ar(self, prompt: str) -> RunView:
        """A new AR baseline run of `prompt`; its lane shows beside that prompt's runs."""
        self.ar_prompt, self.ar_view = prompt, RunView()
        return self.ar_view

    def ar_view_for(self, prompt: str) -> RunView | None:
        return self.ar_view if self.ar_prompt == prompt else None

    def record(self, prompt: str, finished: Finished, quality: float | None, settings: dict) -> None:
        """Count a finished run: a point on the chart (if it has a quality), and an AR time."""
        self.runs += 1
        stats = finished.stats
        if quality is not None:
            self.add_point(ChartPoint(f"run {self.runs}", stats.mode, stats.total_seconds, quality,
                                      settings, prompt))
        if stats.mode == AR_MODE:
            self.remember_ar(prompt, stats.total_seconds)
        key = AR_MODE + prompt if stats.mode == AR_MODE else json.dumps(settings, sort_keys=True, default=str)
        self.times[key] = [*self.times.pop(key, []), stats.total_seconds][-MAX_REPEATS:]
        while len(self.times) > MAX_POINTS:
            self.times.pop(next(iter(self.times)))

    def times_of(self, settings: dict) -> list[float]:
        """The seconds of every recorded run with exactly these settings (the same forwards)."""
        return list(self.times.get(json.dumps(settings, sort_keys=True, default=str), []))

    def ar_times_of(self, prompt: str) -> list[float]:
        """The seconds of every recorded AR run of `prompt`."""
        return list(self.times.get(AR_MODE + prompt, []))

    def add_point(self, point: ChartPoint) -> None:
        self.points = (self.points + [point])[-MAX_POINTS:]

    def remember_ar(self, prompt: str, seconds: float) -> None:
        self.ar_seconds.pop(prompt, None)
        self.ar_seconds[prompt] = seconds
        while len(self.ar_seconds) > MAX_AR_PROMPTS:
            self.ar_seconds.pop(next(iter(self.ar_seconds)))


def live_frames(events: Iterable[Event], view: RunView, record: list[Event],
                interval: float = FRAME_INTERVAL,
                clock: Callable[[], float] = time.monotonic) -> Iterator[RunView]:
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


def quality_of(kind: str, prompt: str, finished: Finished) -> float | None:
    """The chart's quality: the checker's score, or the mean commit confidence; None when there is
    none (a prompt without facts has nothing to check, so its 0.0 is not plotted)."""
    if kind == "checker":
        scored = checker.score(prompt, finished.text)
        return scored.value if scored.facts_total else None
    return finished.stats.mean_confidence
