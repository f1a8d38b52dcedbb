"""The app's output frames (`Frame`: a value for each output a frame changes) and the one-line
errors.

Every handler's frames are built here (`frame`, the lanes of a run and of its AR baseline, the
stats JSON), and every refusal becomes one line (`error_frame`): no traceback, no server path.
app.py sends a frame's `changed()` outputs to the components of the same names, turns `Update`
into gr.update, and shows its `warning` as a toast. This module imports no gradio and runs no
model.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pdiff.app.facts import Judge
from pdiff.app.fold import RunView, answer_text, speedup
from pdiff.app.session import Session
from pdiff.app.view import notices_list_html, plan_html, spans_html, stats_html
from pdiff.events import Finished, Notice

log = logging.getLogger("pdiff.app")

SKIP = object()  # leave this output as it is


@dataclass(frozen=True)
class Update:
    """Change properties of an output component (app.py turns it into gr.update)."""

    props: dict


@dataclass(frozen=True)
class Frame:
    """One output frame: a value for each output it changes; the others stay SKIP. app.py has a
    component (or state) of the same name for each field but `controls` and `warning`."""

    # the planned run: its lanes, answer, stats and fact marks
    plan: Any = SKIP
    spans: Any = SKIP
    answer: Any = SKIP
    stats: Any = SKIP
    facts: Any = SKIP
    # the AR baseline beside it
    ar_lane: Any = SKIP
    ar_answer: Any = SKIP
    ar_stats: Any = SKIP
    ar_facts: Any = SKIP
    notices: Any = SKIP
    stats_json: Any = SKIP
    chart: Any = SKIP
    # what the after-run step shows
    replay: Any = SKIP  # the replay slider: the share of the run shown, in percent
    replay_at: Any = SKIP  # the line beside it: the event shown (`replay_position`)
    plan_table: Any = SKIP
    trace_file: Any = SKIP
    visibility: Any = SKIP
    timeline: Any = SKIP
    why: Any = SKIP
    session: Any = SKIP  # the visitor's Session
    run: Any = SKIP  # the RunRecord a run's (or a trace's) after-run step shows
    controls: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # a loaded trace's, by name
    warning: str | None = None  # not an output: a message app.py shows as a toast

    def changed(self) -> dict[str, Any]:
        """The outputs this frame sets, by name (the restored controls among them)."""
        return {**self._outputs(), **self.controls}

    def __or__(self, other: Frame) -> Frame:
        """This frame with `other`'s outputs (and warning) on top."""
        return dataclasses.replace(self, **other._outputs(), controls={**self.controls, **other.controls},
                                   warning=other.warning or self.warning)

    def _outputs(self) -> dict[str, Any]:
        """The outputs (not the controls) this frame sets, by name."""
        values = {name: getattr(self, name) for name in OUTPUTS}
        return {name: v for name, v in values.items() if v is not SKIP}


OUTPUTS = tuple(f.name for f in dataclasses.fields(Frame) if f.name not in ("controls", "warning"))


# --- frames -------------------------------------------------------------------------------------


def frame(*lanes: dict, notices: Iterable[Notice] = (), **outputs) -> Frame:
    """One output frame: the lanes given (`run_lanes`, `ar_lanes`), the notices, and any other
    outputs by name. Every handler's frames are built here."""
    out: dict = {}
    for lane in lanes:
        out.update(lane)
    return Frame(**{**out, "notices": notices_list_html(notices), **outputs})


def run_lanes(view: RunView, ar_seconds: float | None = None, judge: Judge | None = None,
              prompt: str = "") -> dict:
    """A run's plan, spans, answer and stats (with its speedup over an AR time); with a judge,
    the answer's fact marks and the stats' quality row."""
    quality = judge.quality_row(prompt, view) if judge else None
    return {"plan": plan_html(view), "spans": spans_html(view), "answer": answer_text(view),
            "stats": stats_html(view, ar_seconds, quality),
            **({"facts": judge.marks_html(prompt, view)} if judge else {})}


def ar_lanes(view: RunView | None, judge: Judge | None = None, prompt: str = "") -> dict:
    """The AR baseline's lane, answer and stats (and, with a judge, marks and quality); blank
    without a baseline run."""
    marks = {"ar_facts": judge.marks_html(prompt, view)} if judge else {}
    if view is None:
        return {"ar_lane": "", "ar_answer": "", "ar_stats": "", **marks}
    quality = judge.quality_row(prompt, view) if judge else None
    return {"ar_lane": spans_html(view), "ar_answer": answer_text(view),
            "ar_stats": stats_html(view, quality=quality), **marks}


def status(view: RunView) -> dict:
    return {"status": "finished" if view.finished is not None else "running", "events": view.count}


def stats_dict(finished: Finished, quality: float | None, label: str,
               ar_seconds: float | None = None) -> dict:
    """A finished run's result as JSON: its stats, quality, speedup over AR, and answer."""
    out = dataclasses.asdict(finished.stats)
    out.update(quality=quality, quality_label=label,
               speedup_vs_ar=speedup(finished.stats, ar_seconds), text=finished.text)
    return out


def error_html(message: str) -> str:
    return notices_list_html([Notice("error", message)])


# An absolute path of two or more parts ("/srv/models/x", "C:\\m\\x"); "<sync/>" is not one.
_SERVER_PATH = re.compile(r"(?<![\w.<])(?:[A-Za-z]:)?[/\\](?:[\w.~+@-]+[/\\])+[\w.~+@-]*")


def public_error(err: BaseException, limit: int = 200) -> str:
    """An unexpected exception as a user may see it: no server path (an OSError by its reason)."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return _SERVER_PATH.sub("<path>", text)[:limit]


def error_frame(err: BaseException, session: Session | None = None, *, expected: bool = True,
                **outputs) -> Frame:
    """An error as one line in the notices, the JSON and a toast.

    Expected errors (RUN_ERRORS: a refused input) say their own message; anything else (a bug,
    the device) is logged with its traceback and named without server paths.
    """
    if expected:
        message = str(err) or type(err).__name__
        log.info("refused: %s", message)
    else:
        log.error("run failed", exc_info=err)
        message = (f"the run failed ({type(err).__name__}: {public_error(err)}); "
                   "the server log has the details")
    outputs = {"stats_json": {"error": message}, **({} if session is None else {"session": session}),
               **outputs}
    return frame(notices=[Notice("error", message)], warning=message, **outputs)


def nothing_to_replay() -> Frame:
    message = "nothing to replay yet: generate, or load a trace, first"
    return frame(notices=[Notice("replay", message)], warning=message)


def replay_position(k: int, n: int) -> dict:
    """The replay slider's value (the share of the run's n events shown, in percent: its props
    never change) and the line beside it, for the view after the first k events."""
    if not n:
        return {"replay": 0, "replay_at": "no run to replay yet"}
    return {"replay": round(100 * k / n), "replay_at": f"event {k} of {n}"}


def replay_event(share: float, n: int) -> int:
    """The event a replay slider share (percent, clamped to 0..100) stands for in a run of n."""
    return round(min(max(share, 0), 100) / 100 * n)
