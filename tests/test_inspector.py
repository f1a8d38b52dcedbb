"""The token inspector: a committed slot's step, confidence and candidates, drawn, replayed and
saved; and Play's speed."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from pdiff import events as E
from pdiff.app.fold import RunView, fold
from pdiff.app.handlers import MAX_REPLAY_FRAMES, DemoApp
from pdiff.app.inspector import shown
from pdiff.app.playback import SPEEDS, PlaybackError, check_speed, play_schedule, speed_label
from pdiff.app.session import Session
from pdiff.app.settings import Models, settings_from_env
from pdiff.app.trace import TraceError, TraceStore, trace_from_json, trace_to_json
from pdiff.app.view import spans_html
from pdiff.plan import PlanRound

C = E.Candidate
HOSTILE = '<async>"\'&'  # a candidate's text is untrusted: it must show as these characters
CANDS = (C(7, " lantern", 0.61), C(8, HOSTILE, 0.2), C(9, "\n", 0.1), C(10, "a", 0.05), C(11, "b", 0.01))


def run_events() -> list[E.Event]:
    """One round, one span of 3 slots: slot 0 at step 0, slots 1 and 2 at step 1."""
    steps = [
        E.DenoiseStep(0, 0, ((" lantern", None, None),), ((7, 0, 0),), ((0,),),
                      ((0.98, None, None),), ((CANDS,),)),
        E.DenoiseStep(0, 1, ((" lantern", " x", " y"),), ((7, 12, 13),), ((1, 2),),
                      ((0.98, 0.9, 0.5),), (((C(12, " x", 0.9),), (C(13, " y", 0.5), C(12, " x", 0.4))),)),
    ]
    return [E.Started("planned", (1, 2), 2), E.SpansOpened(0, (E.PlanItem("a", 1, 3),), "end", 2),
            *steps]


SLOT = re.compile(r'tabindex="0" data-step="(\d+)" data-conf="([^"]*)">([^<]*)'
                  r'<span class="pd-tip" role="tooltip"><b>([^<]*)</b><s>([^<]*)</s>(.*?)</span></span>')

ROW = re.compile(r"<i[^>]*>([^<]*)</i><u>([^<]*)</u>")  # a candidate: its text and probability


def slots(html: str) -> list[dict]:
    """Each inspectable slot of a spans HTML: its attributes, text and tooltip, read back."""
    return [dict(step=int(step), conf=conf, text=unescape(text), head=head, sub=sub,
                 top=[(unescape(t), float(p)) for t, p in ROW.findall(rows)],
                 chosen=re.findall(r"<i class=pd-chosen>([^<]*)</i>", rows))
            for step, conf, text, head, sub, rows in SLOT.findall(html)]


def listed(cands) -> list[tuple[str, float]]:
    return [(shown(c.text), c.prob) for c in cands]


# --- the slot HTML --------------------------------------------------------------------------------


def test_committed_slot_carries_step_confidence_and_candidates():
    """A committed slot holds its 1-based step and its confidence as data attributes; its
    tooltip says both and lists the five candidates, most likely first, with probabilities,
    the committed token marked."""
    first, second, third = slots(spans_html(fold(run_events())))
    assert (first["step"], first["conf"], first["text"]) == (1, "0.9800", " lantern")
    assert first["head"].startswith("step 1 · confidence 0.98 ") and "top 5" in first["sub"]
    assert first["top"] == listed(CANDS) and first["chosen"] == ["␣lantern"]
    assert (second["step"], second["top"], third["top"]) == (2, [("␣x", 0.9)], [("␣y", 0.5), ("␣x", 0.4)])


def test_confidence_and_candidates_name_their_scales():
    """The confidence (under the sampling settings) and the candidates (temperature 1) disagree
    by design, so the tooltip names both scales and gives the committed token's probability on
    the candidates' scale beside its confidence: 0.98 and 0.61 for the same token, explained."""
    first, second, _ = slots(spans_html(fold(run_events())))
    conf, raw = float(first["conf"]), dict(first["top"])["␣lantern"]
    assert first["head"] == (f"step 1 · confidence {conf:.2f} under the sampling settings; "
                             f"{raw:.2f} at temperature 1")
    assert "temperature 1" in first["sub"] and "before the sampling settings" in first["sub"]
    assert second["head"].endswith(f"; {dict(second['top'])['␣x']:.2f} at temperature 1")


def test_candidate_text_is_escaped_never_markup():
    """A candidate `<async>"'&` is shown as those characters: no raw tag or quote in the HTML."""
    html = spans_html(fold(run_events()))
    assert "<async>" not in html and "&lt;async&gt;&quot;&#x27;&amp;" in html
    assert slots(html)[0]["top"][1][0] == HOSTILE


def test_only_committed_slots_are_inspectable():
    """After step 0 only slot 0 has the inspector; the masked slots have none."""
    html = spans_html(fold(run_events()[:3]))
    assert len(slots(html)) == 1 and html.count('tabindex="0"') == 1


def test_slots_without_candidates_keep_their_title():
    """A step from an older trace (no candidates) draws the slot with its title, no inspector."""
    old = [E.DenoiseStep(*[getattr(e, f) for f in ("round", "step", "tokens", "token_ids",
                                                    "committed", "confidence")])
           if isinstance(e, E.DenoiseStep) else e for e in run_events()]
    html = spans_html(fold(old))
    assert slots(html) == [] and 'title="p=0.98 · step 1"' in html


# --- traces ---------------------------------------------------------------------------------------


def test_trace_round_trip_keeps_the_candidates():
    """A trace written with candidates reads back to equal events."""
    events = run_events()
    assert trace_from_json(trace_to_json({"prompt": "p"}, events)) == ({"prompt": "p"}, events)


def test_trace_without_candidates_still_loads():
    """A trace written before candidates existed (no "top" field) loads, with no candidates."""
    data = json.loads(trace_to_json({}, run_events()))
    for ev in data["events"]:
        ev.pop("top", None)
    _, events = trace_from_json(json.dumps(data))
    assert [e.top for e in events if isinstance(e, E.DenoiseStep)] == [(), ()]


def _with_first(cands) -> str:
    """A trace whose first step's only candidates are `cands` (dicts or anything)."""
    data = json.loads(trace_to_json({}, run_events()))
    data["events"][2]["top"] = [[cands]]
    return json.dumps(data)


def _c(token_id=7, text="a", prob=0.5) -> dict:
    return {"token_id": token_id, "text": text, "prob": prob}


@pytest.mark.parametrize("cands, fragment", [
    ([_c(i, prob=0.1) for i in range(6)], "at most 5"),
    ([_c(prob=1.5)], "outside [0, 1]"),
    ([_c(prob=-0.1)], "outside [0, 1]"),
    ([_c(1, prob=0.2), _c(2, prob=0.3)], "most-likely-first"),
    ([_c(1, prob=0.7), _c(2, prob=0.6)], "most-likely-first"),
    ([_c(1, prob=0.3), _c(1, prob=0.2)], "same token twice"),
    ([_c(-1)], "vocabulary"),
    ([_c(prob="0.5")], "wrong type"),
    ([{"token_id": 1, "text": "a"}], "not a pdiff event"),
    ([[1, "a", 0.5]], "not a pdiff event"),
])
def test_bad_candidates_are_refused(cands, fragment):
    """Candidates no real run writes are a TraceError naming the problem."""
    with pytest.raises(TraceError, match=re.escape(fragment)):
        trace_from_json(_with_first(cands))


def test_candidates_must_match_the_committed_slots():
    """Candidates for more slots than the step committed are refused."""
    data = json.loads(trace_to_json({}, run_events()))
    data["events"][2]["top"] = [[[_c()], [_c()]]]
    with pytest.raises(TraceError, match="do not match its committed slots"):
        trace_from_json(json.dumps(data))


def test_candidate_ids_are_checked_against_the_vocabulary():
    """With the model's vocabulary size known, an id at or past it is refused; below, it loads."""
    text = trace_to_json({}, run_events())
    trace_from_json(text, RunView(vocab_size=14))
    with pytest.raises(TraceError, match="vocabulary of 13 tokens"):
        trace_from_json(text, RunView(vocab_size=13))


# --- the app: a real run, replay at a scrubbed step, and Play's speed ------------------------------


@pytest.fixture()
def app(engine, tmp_path):
    settings = settings_from_env({"PDIFF_MAX_NEW_TOKENS": "128"}, cuda_available=False)
    models = Models(engine, None, "folder", "tiny", None)
    pauses: list[float] = []
    now = [0.0]  # Play is paced by the clock: its sleep passes this clock's time

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    demo = DemoApp(models, settings, TraceStore(tmp_path / "traces"), sleep=sleep, clock=lambda: now[0])
    demo.pauses = pauses
    return demo


@pytest.fixture()
def session(app):
    plan = (PlanRound((("intro", 1), ("facts", 2)), "end"),)
    events = list(app.models.pd.generate("Tell me about Velora.", app.models.pd.config(plan=plan)))
    session = Session()
    session.load({"prompt": "Tell me about Velora."}, events, fold(events))
    return session


def test_replay_at_a_scrubbed_step_shows_that_steps_candidates(app, session):
    """Scrubbed to just after a denoise step, the page inspects exactly the slots committed by
    then, each with the step and the candidates its own step emitted."""
    events = session.events
    k, step = next((i + 1, e) for i, e in enumerate(events)
                   if isinstance(e, E.DenoiseStep) and e.step == 2)
    want = {}
    for e in events[:k]:
        if isinstance(e, E.DenoiseStep):
            for s, committed in enumerate(e.committed):
                for slot, cands in zip(committed, e.top[s], strict=True):
                    want[(s, slot)] = (e.step + 1, listed(cands))
    out = app.replay_step(100 * k / len(events), session)  # the slider's share that gives event k
    assert out.replay_at == f"event {k} of {len(events)}"
    shown = slots(out.spans)
    assert len(shown) == len(want) < sum(len(t) for t in step.tokens)  # some still masked
    assert sorted((d["step"], d["top"]) for d in shown) == sorted(want.values())
    assert all(1 <= len(top) <= 5 for _, top in want.values())


def test_trace_replay_checks_ids_against_the_loaded_model(app, session, tmp_path):
    """A trace whose candidate id is past the model's vocabulary is refused on load."""
    data = json.loads(trace_to_json({}, session.events))
    first = next(e for e in data["events"] if e["type"] == "DenoiseStep" and e["top"][0])
    first["top"][0][0][0]["token_id"] = app.models.pd.model.config.vocab_size
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert "vocabulary" in app.replay_trace(str(bad), Session()).warning


@pytest.mark.parametrize("speed", SPEEDS)
def test_play_speed_scales_the_playing_time(app, session, speed):
    """At speed s Play takes 1/s of the normal playing time (within a frame), still starting at
    frame 0 and ending at the last event, never faster than 15 frames a second."""
    n = len(session.events)
    normal = list(app.play(session))
    normal_time, app.pauses[:] = sum(app.pauses), []
    played = list(app.play(session, speed))
    frames = [int(f.replay_at.split()[1]) for f in played]  # "event k of n", beside the slider
    assert frames[0] == 0 and frames[-1] == n and frames == sorted(set(frames))
    assert [f.replay for f in played] == [round(100 * k / n) for k in frames]  # the slider's share
    assert sum(app.pauses) == pytest.approx(normal_time / speed, abs=2 / 15)
    assert min(app.pauses) >= 1 / 15 - 1e-9 and len(normal) <= MAX_REPLAY_FRAMES + 1


@pytest.mark.parametrize("speed", [3, 0, -1, 100, "fast", None, float("nan")])
def test_play_refuses_a_speed_the_page_does_not_offer(app, session, speed):
    """Any other speed is one message naming the choices, and no frame."""
    out = list(app.play(session, speed))
    assert len(out) == 1 and ", ".join(speed_label(s) for s in SPEEDS) in out[0].warning
    with pytest.raises(PlaybackError):
        check_speed(speed)


def test_the_slowest_play_speed_gives_time_to_narrate_each_step():
    """A short run (30 events: one plan, a few steps) plays for at least 15 s at the slowest
    speed, about half a second an event or more, so an educator can talk over it; at 0.5x it
    took 4 s."""
    n = 30
    frames, pause = play_schedule(n, min(SPEEDS), MAX_REPLAY_FRAMES)
    assert pause * (len(frames) - 1) >= 15 and pause * (len(frames) - 1) / n >= 0.5


def test_play_schedule_is_bounded_for_any_run_length():
    """For 1 to 10,000 events, normal speed shows at most MAX_REPLAY_FRAMES + 1 frames."""
    for n in (1, 2, 149, 150, 151, 1000, 10_000):
        frames, pause = play_schedule(n, 1.0, MAX_REPLAY_FRAMES)
        assert frames[0] == 0 and frames[-1] == n and len(frames) <= MAX_REPLAY_FRAMES + 1
        assert pause == pytest.approx(1 / 15)
