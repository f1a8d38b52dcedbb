"""The model runs behind the app's endpoints: a planned run (with its AR baseline), the AR
baseline alone, and the sweep. Each is a plain generator of `Frame`s that folds the engine's
events into the visitor's `Session` live, so the page shows them as they come. This module
imports no gradio.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

from pdiff.app.chart import chart_figure
from pdiff.app.facts import Judge
from pdiff.app.fold import RunView, stopped_answer
from pdiff.app.frames import SKIP, Frame, ar_lanes, error_frame, frame, run_lanes, stats_dict, status
from pdiff.app.inputs import (
    MAX_SPAN_UNITS,
    SWEEP_THRESHOLD,
    check_prompt,
    rows_to_plan,
    run_config,
    sweep_grid,
)
from pdiff.app.session import RunRecord, Session, live_frames, quality_of
from pdiff.app.settings import AppSettings, Models
from pdiff.app.speed import why_line
from pdiff.app.trace import settings_for_trace
from pdiff.app.view import partial_stats_html
from pdiff.app.work import bounded
from pdiff.config import ConfigError, GenerationConfig, Knobs
from pdiff.events import Event, Finished, Notice
from pdiff.plan import PlanError
from pdiff.tokenizer import TokenizerError

log = logging.getLogger("pdiff.app")

RUN_ERRORS = (ConfigError, PlanError, TokenizerError, ValueError)  # PromptError is a ValueError


class ModelRuns:
    """The loaded models' runs for a click, each a generator of frames; `interval` seconds
    between live frames on `clock`."""

    def __init__(self, models: Models, settings: AppSettings, judge: Judge, device: str,
                 interval: float, clock: Callable[[], float]) -> None:
        self.models, self.settings, self.judge, self.device = models, settings, judge, device
        self.interval, self.clock = interval, clock

    @property
    def label(self) -> str:
        return self.models.quality_label

    def chart(self, session: Session, relative: bool = False):
        return chart_figure(session.points, self.label, relative=bool(relative))

    def why(self, record: RunRecord, session: Session) -> str:
        """A run's one-line speed explanation (plain text), against its prompt's AR run."""
        return why_line(record.view, session.ar_view_for(record.prompt), self.device,
                        dense=record.settings.get("attention") == "dense",
                        cached=record.settings.get("use_cache", True) is not False,
                        repeats=(session.times_of(record.settings), session.ar_times_of(record.prompt)))

    def planned(self, prompt: str, knobs: Knobs, session: Session, plan_table,
                compare_ar: bool, relative: bool) -> Iterator[Frame]:
        """The planned run of a click (with the editor's plan, if given), then its AR baseline."""
        pd = self.models.pd
        try:
            check_prompt(prompt)
            plan = None if plan_table is None else rows_to_plan(plan_table, MAX_SPAN_UNITS)
            config = run_config(knobs.replace(plan=plan), pd, self.settings.max_new_tokens)
            baseline = self._ar_config(knobs) if compare_ar else None
            stream = self._stream(pd, prompt, config)
        except RUN_ERRORS as err:
            yield error_frame(err, session, run=None)
            return
        session.begin()
        record = session.start(prompt, settings_for_trace(prompt, config, self.models.name))
        view, scope = record.view, self.judge.notices(prompt)

        def draw(err=None, notes=(), result=None, chart=SKIP):
            out = frame(run_lanes(view, session.ar_seconds.get(prompt), self.judge, prompt),
                        ar_lanes(session.ar_view_for(prompt), self.judge, prompt),
                        notices=[*scope, *view.notices, *notes],
                        stats_json=status(view) if result is None else result, chart=chart,
                        session=session, run=record)
            return with_error(out, err, session)

        finished = yield from self._follow(stream, view, record.events, draw, session)
        if finished is None:
            if session.stopping:
                line, partial = record.progress()
                yield draw(notes=[Notice("stopped", line)], result=partial) | Frame(
                    answer=stopped_answer(view), stats=partial_stats_html(partial))
            else:
                record.failed = True  # refused mid-run: not a stop
            return
        quality = self._record(session, prompt, finished, record.settings)
        notes = self._chart_note(quality)
        result = {**stats_dict(finished, quality, self.label, session.ar_seconds.get(prompt)),
                  "why": self.why(record, session)}
        yield draw(notes=notes, result=result, chart=self.chart(session, relative))
        if baseline is None:
            return
        # the AR baseline, streamed beside the finished planned run
        ar = yield from self._ar_run(prompt, baseline, session,
                                     lambda err, ar_notes: draw(err, [*notes, *ar_notes], result))
        if ar is not None:
            ar_finished, ar_quality, ar_notes = ar
            result = {**stats_dict(finished, quality, self.label, session.ar_seconds.get(prompt)),
                      "ar": stats_dict(ar_finished, ar_quality, self.label), "why": self.why(record, session)}
            yield draw(notes=[*notes, *ar_notes], result=result, chart=self.chart(session, relative))

    def baseline(self, prompt: str, knobs: Knobs, session: Session, relative: bool) -> Iterator[Frame]:
        """The AR baseline alone; its time becomes the prompt's speedup reference."""
        try:
            check_prompt(prompt)
            baseline = self._ar_config(knobs)
        except RUN_ERRORS as err:
            yield error_frame(err, session)
            return
        session.begin()
        scope = self.judge.notices(prompt)

        def draw(err, notes, result=None, chart=SKIP):
            view = session.ar_view_for(prompt)
            out = frame(ar_lanes(view, self.judge, prompt), notices=[*scope, *notes],
                        stats_json=result or status(view), chart=chart, session=session)
            return with_error(out, err, session)

        ar = yield from self._ar_run(prompt, baseline, session, draw)
        if ar is not None:
            finished, quality, notes = ar
            yield draw(None, [*notes, *self._chart_note(quality)], stats_dict(finished, quality, self.label),
                       self.chart(session, relative))

    def sweep(self, prompt: str, knobs: Knobs, session: Session, relative: bool) -> Iterator[Frame]:
        """A grid of step ratios x schedules on one prompt, run one after another; each finished
        run is a point on the chart."""
        pd, grid = self.models.pd, sweep_grid(self.settings.sweep_limit, knobs.schedule)
        try:
            check_prompt(prompt)
            configs = [run_config(knobs.replace(steps_ratio=r, schedule=s, threshold=SWEEP_THRESHOLD),
                                  pd, self.settings.max_new_tokens) for r, s in grid]
        except RUN_ERRORS as err:
            yield error_frame(err, session)
            return
        session.begin()
        results: list[dict] = []

        def draw(line: str, err=None, chart=SKIP):
            out = frame(notices=[*self.judge.notices(prompt), Notice("sweep", line)], chart=chart,
                        session=session, stats_json={"status": "running", "runs": results})
            return with_error(out, err, session)

        for i, ((ratio, schedule), config) in enumerate(zip(grid, configs, strict=True), start=1):
            what = (f"run {i} of {len(grid)}: steps ratio {ratio:g}, " + ("reference schedule"
                    if schedule == "reference" else f"{schedule} threshold {config.threshold:g}"))
            try:
                stream = self._stream(pd, prompt, config)
            except RUN_ERRORS as err:
                yield draw(what, err)
                return
            fin = yield from self._follow(stream, RunView(), [], functools.partial(draw, what + " …"),
                                          session)
            if fin is None and session.stopping:
                yield frame(notices=[Notice("stopped", f"the sweep stopped during {what}; its "
                                     f"{len(results)} finished run(s) are on the chart")],
                            session=session, stats_json={"status": "stopped", "runs": results})
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

    def _ar_run(self, prompt: str, baseline, session: Session, draw: Callable[..., Frame]):
        """The AR baseline of `prompt` (`baseline`: its engine and config), streamed as
        draw(err, notes) frames; returns (Finished, quality, notes), or None when the engine
        refused it (its error frame says why) or the page stopped it (its last frame shows what
        it had)."""
        engine, config = baseline
        try:
            stream = self._stream(engine, prompt, config)
        except RUN_ERRORS as err:
            yield error_frame(err, session)
            return None
        view = session.start_ar(prompt)
        own = [] if self.models.ar is not None else [Notice("baseline", self.models.baseline_note)]
        notes = lambda: [*own, *view.notices]  # noqa: E731
        finished = yield from self._follow(stream, view, [], lambda err=None: draw(err, notes()), session)
        if finished is None:
            if session.stopping:
                yield draw(None, [*notes(), ar_stopped(view)]) | Frame(ar_answer=stopped_answer(view))
            return None
        settings = settings_for_trace(prompt, config, self.models.ar_name or self.models.name)
        return finished, self._record(session, prompt, finished, settings), notes()

    def _ar_config(self, knobs: Knobs) -> tuple[object, GenerationConfig]:
        """The AR baseline's engine and config: the click's sampling, seed and budget."""
        engine = self.models.ar or self.models.pd
        ar = Knobs(mode="autoregressive", temperature=knobs.temperature, top_p=knobs.top_p,
                   seed=knobs.seed, max_new_tokens=knobs.max_new_tokens)
        return engine, run_config(ar, engine, self.settings.max_new_tokens)

    @staticmethod
    def _stream(engine, prompt: str, config: GenerationConfig) -> Iterator[Event]:
        """A run's events, the one stream every run follows: its first event already drawn (the
        engine's own checks of the prompt and the plan have passed, or raised, before any frame
        or session change), then the rest within the request's denoise work (`bounded`)."""
        events = engine.generate(prompt, config)
        first = next(events)

        def started():
            try:
                yield first
                yield from events
            finally:
                events.close()  # a stopped run ends here: the engine releases its cache
        return bounded(started(), config.max_new_tokens, config.schedule == "paper")

    def _follow(self, stream: Iterator[Event], view: RunView, record: list[Event],
                draw: Callable[..., Frame], session: Session):
        """Fold a run into `view` (and `record`) live, yielding draw() as each frame until it
        finishes; return its Finished event. An error yields draw(err) and returns None; so does
        the page's Stop (`session.stopping`), after the event it came during."""
        try:
            for _ in live_frames(until_stopped(stream, session), view, record, self.interval, self.clock):
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


def until_stopped(events: Iterator[Event], session: Session) -> Iterator[Event]:
    """A run's events until the page's Stop: the stream ends after the event it came during,
    so the run's last frame shows every event it had (the Stop of a gradio cancel closes the
    run instead, and its page keeps the last frame drawn)."""
    for ev in events:
        yield ev
        if session.stopping:
            return


def ar_stopped(view: RunView) -> Notice:
    return Notice("stopped", f"the AR baseline stopped after {len(view.text_tokens)} tokens")


def with_error(out: Frame, err: BaseException | None, session: Session) -> Frame:
    """A run's frame, with the error that ended it (if any) on top."""
    return out if err is None else out | error_frame(err, session)
