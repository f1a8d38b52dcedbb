"""The model runs behind the endpoints (pdiff.app.runs), with the tiny model: the page's Stop
ends a run at its next event, and the run's last frame shows what it had, with one set of
counts; and Play keeps its pace when drawing a frame is slow."""

from __future__ import annotations

from html import escape

import pytest

from pdiff.app.fold import STOPPED
from pdiff.app.handlers import DemoApp
from pdiff.app.inputs import threshold_props
from pdiff.app.playback import play_schedule
from pdiff.app.session import Session
from pdiff.app.settings import Models, settings_from_env
from pdiff.app.trace import TraceStore
from pdiff.config import Knobs
from pdiff.events import Finished

KNOBS = dict(steps_ratio=1.0, threshold=0.9, schedule="reference", unmask="entropy",
             temperature=0.2, top_p=0.95, seed=0, length_scale=10, attention="sparse",
             use_cache=True, max_new_tokens=64)
AR_KNOBS = Knobs(temperature=0.2, top_p=0.95, seed=0, max_new_tokens=16)
PLAN = [[1, "a", 2, ""], [1, "b", 2, "end"]]  # spans the tiny random model cannot plan itself
def sweep_knobs(schedule: str, max_new_tokens: int) -> Knobs:
    """A sweep's knobs (it sets the step ratio and the threshold itself)."""
    return Knobs.named({**KNOBS, "schedule": schedule, "max_new_tokens": max_new_tokens})


@pytest.fixture()
def app(engine, tmp_path):
    """The app on the tiny model, a frame after every event (interval 0)."""
    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": "128", "PDIFF_SWEEP_LIMIT": "2"},
                                 cuda_available=False)
    return DemoApp(Models(engine, None, "folder", "tiny", None), settings,
                   TraceStore(tmp_path / "traces"), interval=0.0, sleep=lambda s: None)


def run_until(frames, stop_when, session: Session) -> list:
    """Every frame of a click, pressing the page's Stop at the first frame `stop_when` accepts."""
    out = []
    for f in frames:
        out.append(f)
        if stop_when(f) and not session.stopping:
            session.stop()
    return out


def test_stop_mid_denoise_shows_what_the_run_had_with_one_set_of_counts(app):
    session = Session()
    frames = run_until(app.rerun_plan("Write about Velora.", PLAN, Knobs.named(KNOBS), session=session),
                       lambda f: any(r.step >= 1 for r in session.current.view.rounds.values()),
                       session)
    record = session.current
    assert record.state == "stopped" and not isinstance(record.events[-1], Finished)
    line, partial = record.progress()
    last = frames[-1]
    assert line.startswith("stopped at denoise step") and escape(line) in last.notices
    assert last.stats_json == partial and partial["events"] == len(record.events)
    assert f"<dt>committed tokens</dt><dd>{partial['committed_tokens']}</dd>" in last.stats  # the panel too
    step, steps = partial["denoise_steps"], record.view.ordered_rounds()[-1].steps
    assert f"step {step}/{steps}" in last.spans  # the cards count what the notice counts
    assert last.answer.startswith(STOPPED) and len(last.answer) > len(STOPPED)
    assert "error" not in last.notices
    after = app.after_run(session, record)  # the after-run step says the same
    assert escape(line) in after.notices and after.stats_json == partial


def test_stop_during_the_ar_baseline_keeps_the_planned_answer(app):
    session = Session()
    frames = run_until(app.rerun_plan("Write about Velora.", PLAN, Knobs.named(KNOBS), compare_ar=True,
                                      session=session),
                       lambda f: bool(f.ar_lane), session)
    record, ar_view = session.current, session.ar_view_for("Write about Velora.")
    assert record.state == "finished" and not record.failed and ar_view.finished is None
    last = frames[-1]
    assert f"the AR baseline stopped after {len(ar_view.text_tokens)} tokens" in last.notices
    assert last.answer == record.view.finished.text
    assert last.ar_answer.startswith(STOPPED)
    assert [p.mode for p in session.points] == ["planned"]  # the stopped AR run is not charted


def test_stop_of_the_baseline_and_of_the_sweep(app):
    session = Session()
    frames = run_until(app.baseline("Velora", AR_KNOBS, False, session),
                       lambda f: bool(f.ar_lane), session)
    assert frames[-1].ar_answer.startswith(STOPPED) and "stopped after" in frames[-1].notices
    assert session.ar_seconds == {}
    frames = run_until(app.sweep("Velora", sweep_knobs("paper", 16), False, session), lambda f: True, session)
    assert frames[-1].stats_json == {"status": "stopped", "runs": []}
    assert "the sweep stopped during run 1 of 2" in frames[-1].notices


def test_a_stop_before_a_click_does_not_stop_its_run(app):
    session = Session()
    session.stop()  # pressed with nothing running
    frames = list(app.rerun_plan("Velora", PLAN, Knobs.named(KNOBS), session=session))
    assert session.current.state == "finished" and not frames[-1].answer.startswith(STOPPED)


def event_shown(frame) -> int:
    """The event a replay frame shows: k of the line "event k of n" beside the replay slider."""
    return int(frame.replay_at.split()[1])


class SlowPage:
    """A clock and a sleep in fake seconds, where drawing a replay frame costs `cost`."""

    def __init__(self, cost: float) -> None:
        self.now, self.cost = 0.0, cost

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("cost", [0.0, 0.3])
def test_play_keeps_each_speed_s_pace_when_a_frame_is_slow_to_draw(app, monkeypatch, cost):
    session = run_until(app.rerun_plan("Velora", PLAN, Knobs.named(KNOBS)), lambda f: False,
                        Session())[-1].session
    n = len(session.events)
    page = SlowPage(cost)
    app.clock, app.sleep = page.clock, page.sleep
    draw = app._replay

    def slow_replay(*args, **kwargs):
        page.now += page.cost
        return draw(*args, **kwargs)

    monkeypatch.setattr(app, "_replay", slow_replay)
    took = {}
    for speed in (1.0, 0.25):
        page.now = 0.0
        shown = [event_shown(f) for f in app.play(session, speed)]
        frames, pause = play_schedule(n, speed, 150)
        assert shown[0] == 0 and shown[-1] == n and set(shown) <= set(frames)
        took[speed] = page.now
        nominal = (len(frames) - 1) * pause
        # the pace, however slow a frame: late frames are skipped, and the last one (always
        # shown) starts at most one drawing after its time
        assert nominal <= took[speed] <= nominal + 2 * cost + 1e-9
    assert took[0.25] / took[1.0] >= 3  # a quarter of the speed; drawn at each pause, 1.5 at 0.3 s


def test_play_ends_at_the_page_s_stop(app):
    session = run_until(app.rerun_plan("Velora", PLAN, Knobs.named(KNOBS)), lambda f: False,
                        Session())[-1].session
    shown = run_until(app.play(session, 1.0), lambda f: event_shown(f) >= 2, session)
    assert event_shown(shown[-1]) == 2 < len(session.events)


def test_the_threshold_slider_says_when_the_schedule_has_no_threshold():
    reference, paper = threshold_props("reference"), threshold_props("paper")
    assert not reference["interactive"] and "not used" in reference["label"]
    assert paper["interactive"] and "not used" not in paper["label"] + paper["info"]
    assert threshold_props("adaptive") == paper


def test_every_run_of_a_click_is_bounded(app, monkeypatch):
    """The planned run, its AR baseline, the baseline alone and each sweep run all follow one
    stream, within the request's denoise work (pdiff.app.work.bounded)."""
    import pdiff.app.runs as runs

    calls = []
    real = runs.bounded
    monkeypatch.setattr(runs, "bounded", lambda events, *a: calls.append(a) or real(events, *a))
    session = Session()
    list(app.rerun_plan("Velora", PLAN, Knobs.named(KNOBS), compare_ar=True, session=session))
    list(app.baseline("Velora", AR_KNOBS, False, session))
    list(app.sweep("Velora", sweep_knobs("paper", 16), False, session))
    assert len(calls) == 2 + 1 + 2
    assert len(session.points) == 5  # and each finished, on the chart


def test_a_refused_sweep_run_is_one_message_and_no_point(app):
    session = Session()
    frames = list(app.sweep("word " * 5000, sweep_knobs("paper", 16), False, session))
    assert frames[-1].warning and "error" in frames[-1].stats_json and session.points == []
