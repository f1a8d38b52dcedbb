"""The app's API functions: a click in, a stream of output frames out.

`DemoApp` holds the loaded models and serves every session. Its public methods are the page's
endpoints; `pdiff.app.endpoints` holds their names, inputs and outputs (the gradio_client API)
and hands each one its knob group as one `Knobs` value. On their first line the state becomes
one `Session`; nothing passes a knob by position. Each yields (or returns) frozen `Frame`s, each
holding the outputs it changes, all built by `pdiff.app.frames` (which says how app.py reads
them); `error_frame` turns every error into one line. The model runs are `pdiff.app.runs`; here
are the endpoints, the after-run step, and replay (of a run or of a loaded trace).

Errors a user can cause (a bad knob, an empty prompt, a malformed plan or trace) come back as
one line in the notices area, never as a traceback. This module imports no gradio.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pdiff.app.cache import CacheCap, shared_folder
from pdiff.app.chart import visibility_figure
from pdiff.app.endpoints import CONTROLS
from pdiff.app.facts import Judge
from pdiff.app.fold import RunView, last_round_layout
from pdiff.app.frames import (
    Frame,
    Update,
    error_frame,
    frame,
    nothing_to_replay,
    public_error,
    replay_event,
    replay_position,
    run_lanes,
)
from pdiff.app.inputs import MAX_STEPS_RATIO, plan_rows
from pdiff.app.machine import device_words
from pdiff.app.playback import PlaybackError, play_schedule
from pdiff.app.runs import ModelRuns
from pdiff.app.session import FRAME_INTERVAL, RunRecord, Session
from pdiff.app.settings import AppSettings, Models, load_examples
from pdiff.app.speed import why_html
from pdiff.app.timeline import timeline_figure
from pdiff.app.trace import TraceError, TraceLimits, TraceStore, read_trace, trace_to_json
from pdiff.app.view import notices_list_html, partial_stats_html
from pdiff.config import ConfigError, Knobs
from pdiff.events import Notice

log = logging.getLogger("pdiff.app")

MAX_REPLAY_FRAMES = 150  # the play button shows at most this many frames

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
        self.sleep, self.clock = sleep, clock  # play's pace
        self.examples, self.example_plan = load_examples(models.kind)
        self.judge = Judge(models.quality_kind, models.quality_label)
        self.limits = TraceLimits.of(models.pd, settings.max_new_tokens)  # what an upload may hold
        self.cache = CacheCap((self.traces.folder,), settings.cache_mb * 2**20)
        self.runs = ModelRuns(models, settings, self.judge, self.device, interval, clock)

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

    # -- the endpoints (pdiff.app.endpoints: their names, inputs and outputs) --

    def generate(self, prompt, knobs: Knobs, compare_ar=False, relative_view=False, session=None):
        """Plan, then diffuse; optionally run the AR baseline after it on the same prompt."""
        yield from self._guarded(self.runs.planned(prompt, knobs, Session.of(session), None,
                                                   compare_ar, relative_view))

    def rerun_plan(self, prompt, plan_table, knobs: Knobs, compare_ar=False, relative_view=False,
                   session=None):
        """Diffuse with the editor's plan used verbatim (no plan is sampled)."""
        yield from self._guarded(self.runs.planned(prompt, knobs, Session.of(session), plan_table,
                                                   compare_ar, relative_view))

    def baseline(self, prompt, knobs: Knobs, relative_view=False, session=None):
        """The autoregressive baseline alone; its time becomes the speedup reference."""
        yield from self._guarded(self.runs.baseline(prompt, knobs, Session.of(session), relative_view))

    def sweep(self, prompt, knobs: Knobs, relative_view=False, session=None):
        """A small grid of step ratios x thresholds on one prompt; points arrive on the chart."""
        yield from self._guarded(self.runs.sweep(prompt, knobs, Session.of(session), relative_view))

    def after_run(self, session=None, run=LATEST) -> Frame:
        """Replay slider, plan editor, trace download and attention picture of `run` (the run
        whose step this is: None after a refused click; the session's latest by default), and
        where a stopped run stood. A loaded trace's step also restores its prompt and settings
        into the controls."""
        session = Session.of(session)
        record = session.current if run is LATEST else run
        if not isinstance(record, RunRecord) or not record.events:
            return Frame()
        session.show(record)  # from now on the session holds it (the run's own ref lets go)
        events, view = record.events, record.view
        out = {**replay_position(len(events), len(events)),  # the slider at 100 %: the whole run
               "visibility": self.visibility(view, record.settings)}
        out.update(self._timeline(record, session))
        rows = plan_rows(view)
        if rows:
            out["plan_table"] = rows
        out["trace_file"], notes = None, []
        if record.state == "stopped" and not record.loaded:
            line, partial = record.progress()
            notes = [*view.notices, Notice("stopped", line)]
            out.update(stats=partial_stats_html(partial),
                       stats_json=partial)
        try:
            out["trace_file"] = self.traces.write(trace_to_json(record.settings, events), record.id)
            self.cache.trim()
        except (TraceError, OSError) as err:
            notes.append(Notice("error", f"the trace could not be saved: {public_error(err)}"))
        if notes:
            out["notices"] = notices_list_html(notes)
        if record.loaded:
            out["controls"] = restored_controls(record.settings)
        return Frame(**out, run=None)

    def timeline(self, session=None) -> Frame:
        """The shown run's critical-path timeline (with the AR lane of its prompt) and its "why"."""
        session = Session.of(session)
        return Frame(**self._timeline(session.replayed, session))

    def _timeline(self, record: RunRecord, session: Session) -> dict:
        figure = timeline_figure(record.view, session.ar_view_for(record.prompt))
        # shown for a finished run only: a stopped one has no figure (an empty plot's icon)
        return {"timeline": Update({"value": figure, "visible": figure is not None}),
                "why": why_html(self.runs.why(record, session))}

    def replay_step(self, replay, session=None) -> Frame:
        """The run shown at `replay` percent (the replay slider, 0..100): the view after its first
        round(replay / 100 * n) of n events, and the line saying which event that is."""
        session = Session.of(session)
        record = session.replayed
        if not record.events:
            return nothing_to_replay()
        if isinstance(replay, bool) or not isinstance(replay, (int, float)) or not math.isfinite(replay):
            shown = str(replay)[:20]
            return error_frame(ConfigError(f"the replay step must be a whole number; got {shown!r}"))
        n = len(record.events)
        k = replay_event(replay, n)
        return self._replay(record, session, k, replay_at=replay_position(k, n)["replay_at"])

    def play(self, session=None, play_speed=1.0):
        """Replay the run shown from the start at `play_speed` (one of playback.SPEEDS; 1 is about
        15 frames a second, at most MAX_REPLAY_FRAMES frames). Frame i is due at i pauses after
        the start, by the clock: a frame whose time has passed (drawing and sending the ones
        before took longer) is skipped, so every speed keeps its pace. Stop ends it."""
        session = Session.of(session)
        record = session.replayed
        n = len(record.events)
        if not n:
            yield nothing_to_replay() | Frame(**replay_position(0, 0))  # every frame sets the slider
            return
        try:
            frames, pause = play_schedule(n, play_speed, MAX_REPLAY_FRAMES)
        except PlaybackError as err:
            yield Frame(warning=str(err))
            return
        session.begin()
        start = self.clock()
        for i, k in enumerate(frames):
            if session.stopping:
                return
            if k < n and self.clock() >= start + (i + 1) * pause:
                continue  # late: the next frame is due
            yield self._replay(record, session, k, **replay_position(k, n))
            if k < n:
                self.sleep(max(0.0, start + (i + 1) * pause - self.clock()))

    def stop(self, session=None) -> None:
        """The page's Stop: the session's run ends at its next event and shows what it had."""
        Session.of(session).stop()

    def replay_trace(self, trace_file, session=None) -> Frame:
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

    def rechart(self, relative_view=False, session=None) -> Frame:
        return Frame(chart=self.runs.chart(Session.of(session), relative_view))

    @staticmethod
    def visibility(view: RunView, settings: dict):
        layout = last_round_layout(view)
        if layout is None:
            return None
        return visibility_figure(*layout, dense=settings.get("attention") == "dense")

    # -- helpers --

    @staticmethod
    def _guarded(frames: Iterator[Frame]) -> Iterator[Frame]:
        """A click's frames; an unexpected failure (a bug, the device) becomes one line."""
        try:
            yield from frames
        except Exception as err:  # noqa: BLE001 - shown as a message, logged with its traceback
            yield error_frame(err, expected=False, run=None)

    def _replay(self, record: RunRecord, state: Session, k: int, **outputs) -> Frame:
        """Replay frame k of a run (and other outputs by name)."""
        view = record.view_at(k)
        return frame(run_lanes(view, state.ar_seconds.get(record.prompt), self.judge, record.prompt),
                     notices=view.notices, **outputs)


def restored_controls(settings: dict) -> dict:
    """The control values of a loaded trace's settings, by name (those in the trace). The
    settings are in today's spelling: `pdiff.app.trace` reads older traces so."""
    out = {name: settings[name] for name in CONTROLS if name in settings}
    if isinstance(out.get("steps_ratio"), (int, float)):
        out["steps_ratio"] = min(out["steps_ratio"], MAX_STEPS_RATIO)  # above 1 is the same run
    return out
