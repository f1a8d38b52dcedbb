"""One visitor's state: the chart's points, the AR times per prompt, and the last run, folded.

A `Session` lives in the page's state. Its last run is kept as its events (for the trace and the
replay) and as the view they fold into, filled while the run streams, so nothing is folded
twice. `live_frames` is that streaming: it folds a run's events as the engine yields them and
lets a frame out at most every `FRAME_INTERVAL` seconds (at once on the events in `URGENT`, and
always for the end), with nothing computed ahead and replayed. `quality_of` is a run's quality
on the chart. This module knows nothing of gradio, models or HTML.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pdiff.app.chart import AR_MODE, ChartPoint
from pdiff.app.view import RunView, fold
from pdiff.events import Event, Finished, Notice, RoundEnd, SpansOpened
from pdiff.notes import checker

FRAME_INTERVAL = 0.07  # seconds between live frames: about 14 frames a second
URGENT = (SpansOpened, RoundEnd, Notice)  # events shown at once, whatever the throttle says
MAX_POINTS = 200  # chart points kept per session
MAX_AR_PROMPTS = 32  # prompts whose last AR time a session remembers


@dataclass
class Session:
    """One visitor's runs: chart points, AR times per prompt, and the last run for replay."""

    points: list[ChartPoint] = field(default_factory=list)
    ar_seconds: dict[str, float] = field(default_factory=dict)
    prompt: str = ""
    settings: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    view: RunView = field(default_factory=RunView)  # fold(events), kept as they arrive
    ar_prompt: str = ""
    ar_view: RunView | None = None
    runs: int = 0

    @classmethod
    def of(cls, value) -> Session:
        """`value` itself when it is a Session; a fresh one for a new visitor or an API call."""
        return value if isinstance(value, cls) else cls()

    def start(self, prompt: str, settings: dict) -> RunView:
        """Make a new run the last one; its events and view fill as it streams."""
        self.prompt, self.settings, self.events, self.view = prompt, settings, [], RunView()
        return self.view

    def load(self, settings: dict, events: list[Event], view: RunView) -> None:
        """Make a replayed trace the last run (`view` is fold(events))."""
        self.settings, self.events, self.view = settings, events, view
        self.prompt = str(settings.get("prompt", ""))

    def start_ar(self, prompt: str) -> RunView:
        """A new AR baseline run of `prompt`; its lane shows beside that prompt's runs."""
        self.ar_prompt, self.ar_view = prompt, RunView()
        return self.ar_view

    def ar_view_for(self, prompt: str) -> RunView | None:
        return self.ar_view if self.ar_prompt == prompt else None

    def view_at(self, k: int) -> RunView:
        """The last run after its first k events: the replay frame k."""
        return self.view if k >= len(self.events) else fold(self.events[:k])

    def record(self, prompt: str, finished: Finished, quality: float | None, settings: dict) -> None:
        """Count a finished run: a point on the chart (if it has a quality), and an AR time."""
        self.runs += 1
        stats = finished.stats
        if quality is not None:
            self.add_point(ChartPoint(f"run {self.runs}", stats.mode, stats.total_seconds, quality,
                                      settings))
        if stats.mode == AR_MODE:
            self.remember_ar(prompt, stats.total_seconds)

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
    """The chart's quality: the checker's score, or the mean commit confidence (None if none)."""
    if kind == "checker":
        return checker.score(prompt, finished.text).value
    return finished.stats.mean_confidence
