"""The view: folding hand-written event streams into lanes, states, stats, charts and traces."""

from __future__ import annotations

import json
from html import escape

import numpy as np
import pytest
import torch

from pdiff import events as E
from pdiff.app.chart import (
    PAPER_LABEL,
    ChartPoint,
    chart_figure,
    pareto_front,
    relative_xy,
    visibility_figure,
    visibility_grid,
    visibility_matrix,
)
from pdiff.app.fold import answer_text, fold, last_round_layout, plan_chips
from pdiff.app.trace import TraceError, trace_from_json, trace_to_json
from pdiff.app.view import (
    CONFIDENCE_TIP,
    MASK_GLYPH,
    legend_html,
    notices_html,
    plan_html,
    span_card_html,
    spans_html,
    stats_html,
)
from pdiff.config import GenerationConfig
from pdiff.tags import IM_END, MASK, PROMISE, SYNC, TOPIC_END


def plan(rnd, texts, forced=False):
    return [E.PlanToken(rnd, 100 + i, t, forced) for i, t in enumerate(texts)]


def step(rnd, k, tokens, committed, conf):
    ids = tuple(tuple(0 if t is None else 1 for t in span) for span in tokens)
    return E.DenoiseStep(rnd, k, tokens, ids, committed, conf)


STATS = E.Stats("planned", 5, 0.5, 1.0, 1.5, 9, 0, 12, 5, 2, 3, 20, 17, 20 / 9, 0.7)
ROUND0 = plan(0, [PROMISE, "intro", " 2", TOPIC_END, PROMISE, "body", " 1", TOPIC_END, SYNC])
ROUND0_STEPS = [
    step(0, 0, (("Hi", None, None, None), (None, "x")), ((0,), (1,)),
         ((0.9, None, None, None), (None, 0.5))),
    step(0, 1, (("Hi", " there", None, None), (None, "x")), ((1,), ()),
         ((0.9, 0.5, None, None), (None, 0.5))),
    step(0, 2, (("Hi", " there", "!", "[PAD]"), ("y", "x")), ((2, 3), (0,)),
         ((0.9, 0.5, 0.8, 0.6), (0.3, 0.5))),
]
ROUND1 = plan(1, [PROMISE, "end", " 1", TOPIC_END, IM_END])
ROUND1_STEPS = [
    step(1, 0, (("Bye", None),), ((0,),), ((0.7, None),)),
    step(1, 1, (("Bye", "."),), ((1,),), ((0.7, 0.9),)),
]
EVENTS = [
    E.Started("planned", (1, 2, 3, 4, 5), 5), *ROUND0,
    E.SpansOpened(0, (E.PlanItem("intro", 2, 4), E.PlanItem("body", 1, 2)), "sync", 3),
    *ROUND0_STEPS, E.RoundEnd(0, ("Hi there!", "yx")), *ROUND1,
    E.SpansOpened(1, (E.PlanItem("end", 1, 2),), "end", 2),
    *ROUND1_STEPS, E.RoundEnd(1, ("Bye.",)),
    E.Finished("Hi there! yx Bye.", (1, 2, 3, 4, 5), (7, 8), ((E.PlanItem("intro", 2, 4),
               E.PlanItem("body", 1, 2)), (E.PlanItem("end", 1, 2),)), STATS),
]


def upto(event) -> E.Event:
    """The prefix of EVENTS that ends with `event`."""
    return EVENTS[: EVENTS.index(event) + 1]


# --- plan lane -------------------------------------------------------------------------------------


def test_chip_appears_only_when_its_item_is_complete():
    """Before </topic> an item is partial text, never a chip; after it, it is a chip."""
    writing = fold(upto(ROUND0[2]))
    assert plan_chips(writing.rounds[0]) == ([], "intro 2")
    done = fold(upto(ROUND0[3]))
    chips, partial = plan_chips(done.rounds[0])
    assert [(c.topic, c.units) for c in chips] == [("intro", 2)] and partial is None


def test_chips_show_opened_length_in_tokens():
    """Once the round's spans open, each chip carries the opened length in tokens."""
    view = fold(upto(EVENTS[10]))
    assert isinstance(EVENTS[10], E.SpansOpened)
    assert [(c.topic, c.length) for c in plan_chips(view.rounds[0])[0]] == [("intro", 4), ("body", 2)]
    assert "4 tok" in plan_html(view)


def test_forced_plan_tokens_are_styled_apart():
    """A user-supplied (forced) plan token gets pd-forced; a sampled one does not."""
    forced = plan_html(fold(plan(0, [PROMISE, "a", " 1", TOPIC_END], forced=True)))
    sampled = plan_html(fold(plan(0, [PROMISE, "a", " 1", TOPIC_END])))
    assert "pd-chip pd-forced" in forced and "pd-forced" not in sampled


# --- span lanes ------------------------------------------------------------------------------------


def test_slot_is_new_in_its_step_and_old_after():
    """A slot committed at step 2 is 'new' in step 2's fold and 'old' in step 3's."""
    at2, at3 = fold(upto(ROUND0_STEPS[1])), fold(upto(ROUND0_STEPS[2]))
    for view, want in ((at2, "new"), (at3, "old")):
        rnd = view.rounds[0]
        assert view.slot_state(rnd, rnd.spans[0], 1) == want


def test_masked_slots_are_counted_and_drawn_as_glyphs():
    """After step 1, span 1 has 3 masked slots: 3 glyphs, and never the mask tag itself."""
    view = fold(upto(ROUND0_STEPS[0]))
    span = view.rounds[0].spans[0]
    assert span.masked == 3
    html = spans_html(view)
    assert html.count(MASK_GLYPH) == 3 + 1 and MASK not in html and "mask|" not in html


def test_card_shows_filled_over_total():
    """A card reports filled/total slots."""
    html = spans_html(fold(upto(ROUND0_STEPS[1])))
    assert '<span class="pd-fill">2/4</span>' in html and '<span class="pd-fill">1/2</span>' in html


def test_mean_confidence_is_over_committed_slots():
    """Mean confidence averages the committed slots only, and the card prints it."""
    view = fold(upto(ROUND0_STEPS[1]))
    span = view.rounds[0].spans[0]
    assert span.mean_confidence == pytest.approx(0.7)
    assert f"model confidence {span.mean_confidence:.2f}" in spans_html(view)


def test_card_says_confidence_is_not_a_correctness_check():
    """The card names its number as the model's confidence, not a check of the text, and its
    tooltip says what the confidence is; the bare "mean p=" label is gone."""
    view = fold(upto(ROUND0_STEPS[1]))
    html = span_card_html(view, view.rounds[0], 0)
    conf = f"{view.rounds[0].spans[0].mean_confidence:.2f}"
    assert f"model confidence {conf} (not a correctness check)" in html and "mean p=" not in html
    assert f'class="pd-conf" title="{escape(CONFIDENCE_TIP)}"' in html
    assert "not whether the text is right" in CONFIDENCE_TIP


def test_confidence_is_on_hover():
    """Every committed slot's title gives its commit probability."""
    assert 'title="p=0.90 · step 1"' in spans_html(fold(upto(ROUND0_STEPS[0])))


def test_rounds_are_shown_in_order():
    """The second round's cards come after the first round's."""
    html = spans_html(fold(EVENTS))
    assert 0 < html.index(">body<") < html.index(">end<")


def test_finished_round_has_no_new_slots():
    """After RoundEnd no slot of that round is drawn as committed-this-step."""
    assert "pd-new" not in spans_html(fold(upto(EVENTS[14])))
    assert isinstance(EVENTS[14], E.RoundEnd)


def test_model_text_is_escaped_everywhere():
    """Token, topic and notice text like <script> appears as text, never as markup."""
    evil = "<script>"
    events = [*plan(0, [PROMISE, evil, " 1", TOPIC_END, IM_END]),
              E.SpansOpened(0, (E.PlanItem(evil, 1, 1),), "end", 1),
              step(0, 0, ((evil,),), ((0,),), ((0.5,),)), E.TextToken(1, evil),
              E.Notice("malformed_item", evil)]
    view = fold(events)
    html = plan_html(view) + spans_html(view) + notices_html(view)
    assert evil not in html and html.count("&lt;script&gt;") >= 5


def test_text_tokens_fill_the_autoregressive_lane():
    """TextToken events are shown, in order, in an 'autoregressive' lane."""
    html = spans_html(fold([E.TextToken(1, "Hello"), E.TextToken(2, " world")]))
    assert "autoregressive" in html and html.index("Hello") < html.index(" world")


def test_notices_are_listed():
    """Each notice is one list item with its kind."""
    html = notices_html(fold([E.Notice("budget", "cut"), E.Notice("no_plan", "fell back")]))
    assert html.count("<li") == 2 and "budget" in html and notices_html(fold([])) == ""


def test_step_before_its_spans_is_refused():
    """A denoise step of a round whose spans never opened is a ValueError, not a silent skip."""
    with pytest.raises(ValueError, match="before its spans"):
        fold([ROUND0_STEPS[0]])


def test_legend_names_every_slot_state():
    """The legend shows masked, new, old and [PAD] slots."""
    html = legend_html()
    assert all(f"pd-tok pd-{s}" in html for s in ("masked", "new", "old", "old pd-pad"))


def test_notices_speak_words_not_codes():
    """A notice's kind is shown in words ("plan item not understood"), never as its code."""
    html = notices_html(fold([E.Notice("malformed_item", "item 2 has no length")]))
    assert "plan item not understood" in html and "malformed_item" not in html


def test_ar_stats_show_no_plan_or_spans():
    """An AR run's stats name its decode time and leave out plan time, plan tokens and spans."""
    ar = E.Stats("autoregressive", 5, 0.4, 0.0, 0.4, 20, 0, 20, 0, 0, 0, 20, 20, 1.0, 0.8)
    html = stats_html(fold([E.Started("autoregressive", (1, 2), 2),
                            E.Finished("x", (1, 2), tuple(range(20)), (), ar)]))
    assert "decode time" in html and "forward passes" in html
    assert not any(k in html for k in ("plan time", "plan tokens", "rounds · spans"))


# --- answer, stats, replay -------------------------------------------------------------------------


def test_answer_only_when_finished():
    """The answer is empty until Finished, then Finished.text."""
    assert answer_text(fold(EVENTS[:-1])) == "" and answer_text(fold(EVENTS)) == "Hi there! yx Bye."


def test_stats_show_speedup_only_with_an_ar_reference():
    """Speedup vs AR is AR seconds over this run's seconds, shown only when given, and named the
    whole-run ratio (answers of unequal length are compared per word in the why line)."""
    view = fold(EVENTS)
    assert "2.00×" in stats_html(view, ar_seconds=3.0)
    assert "speedup vs AR (whole run)" in stats_html(view, ar_seconds=3.0)
    assert "speedup" not in stats_html(view) and "critical path" in stats_html(view)
    assert "pd-empty" in stats_html(fold(EVENTS[:-1]))


def test_replay_frame_equals_live_state():
    """fold(events[:k]) renders exactly what the live view showed after k events."""
    live = fold([])
    for k, ev in enumerate(EVENTS, start=1):
        live.apply(ev)
        replay = fold(EVENTS[:k])
        assert (plan_html(replay), spans_html(replay)) == (plan_html(live), spans_html(live)), k


# --- chart -----------------------------------------------------------------------------------------


def pt(label, latency, quality, mode="planned"):
    return ChartPoint(label, mode, latency, quality, {"steps_ratio": 1.0})


def test_a_point_names_its_schedule_and_only_a_threshold_it_reads():
    """A point's hover names its schedule; its threshold only under a schedule that reads one."""
    def hover(**settings):
        fig = chart_figure([ChartPoint("p", "planned", 1.0, 0.5, settings)], "q")
        return fig.data[0].text[0]

    assert "schedule=adaptive, threshold=0.8" in hover(schedule="adaptive", threshold=0.8)
    reference = hover(steps_ratio=1.0, schedule="reference", threshold=0.8)
    assert "schedule=reference" in reference and "threshold" not in reference


def test_pareto_front_excludes_dominated_and_keeps_ties():
    """Dominated points (slower and no better, or worse and no faster) leave the front; equal
    points both stay."""
    points = [pt("a", 1, 0.5), pt("tie", 1, 0.5), pt("b", 2, 0.9), pt("worse", 2, 0.4),
              pt("slower", 3, 0.9), pt("fast", 0.5, 0.1), pt("nan", 0.1, float("nan"))]
    assert [p.label for p in pareto_front(points)] == ["fast", "a", "tie", "b"]


def test_relative_point_is_speedup_and_percent_change():
    """Relative coordinates: AR latency / latency, and quality change vs AR in percent."""
    assert relative_xy(pt("p", 1.0, 0.76), (2.0, 0.8)) == pytest.approx((2.0, -5.0))


def test_chart_marks_ar_and_names_the_quality():
    """The AR run is its own trace with its own marker; the y-axis title is the quality name."""
    fig = chart_figure([pt("p", 1, 0.5), pt("ar", 2, 0.6, "autoregressive")], "checker score")
    symbols = {t.name: t.marker.symbol for t in fig.data if t.mode == "markers"}
    assert symbols["autoregressive baseline"] != symbols["planned"]
    assert fig.layout.yaxis.title.text == "checker score"


@pytest.mark.parametrize("points", [[], [pt("p", 1, 0.5)]])
def test_absolute_chart_spans_the_score_range(points):
    """The quality axis runs over the 0..1 score, empty or not (not plotly's default -1..4)."""
    low, high = chart_figure(points, "checker score").layout.yaxis.range
    assert -0.1 <= low <= 0 and 1 <= high <= 1.1


def test_relative_chart_shows_the_paper_points():
    """The relative view carries the paper's two published points, labelled as such."""
    fig = chart_figure([pt("p", 1, 0.5), pt("ar", 2, 0.6, "autoregressive")], "q", relative=True)
    paper = [t for t in fig.data if t.name == PAPER_LABEL]
    assert len(paper) == 1 and list(zip(paper[0].x, paper[0].y, strict=True)) == [(1.27, -0.87), (1.81, -5.4)]


# --- attention visibility --------------------------------------------------------------------------


def test_sparse_spans_do_not_see_each_other():
    """Sparse: no span token sees another span's token; each sees its own block."""
    m = visibility_matrix(3, 2, [2, 3], dense=False)
    assert not m[5:7, 7:10].any() and not m[7:10, 5:7].any()
    assert m[5:7, 5:7].all() and m[7:10, 7:10].all()


def test_dense_spans_see_their_whole_round():
    """Dense: every span token sees every token of its round's blocks."""
    assert visibility_matrix(3, 2, [2, 3], dense=True)[5:10, 5:10].all()


def test_prefix_is_causal_and_seen_by_spans():
    """Prompt and plan are causal (lower triangle), never see spans; spans see all the prefix."""
    m = visibility_matrix(3, 2, [2, 3], dense=False)
    assert (m[:5, :5] == np.tril(np.ones((5, 5), bool))).all() and not m[:5, 5:].any()
    assert m[5:, :5].all()


def test_grid_is_the_block_mean_of_the_matrix():
    """The downsampled grid equals the mean of the full matrix over each cell."""
    m = visibility_matrix(7, 5, [6, 4, 9], dense=False)
    grid, edges = visibility_grid(7, 5, [6, 4, 9], dense=False, max_cells=8)
    assert len(grid) <= 8
    cells = list(zip(edges[:-1], edges[1:], strict=True))
    want = [[m[a:b, c:d].mean() for c, d in cells] for a, b in cells]
    assert np.allclose(grid, want)


def test_long_run_picture_stays_small():
    """A long run is drawn with at most 64 x 64 cells."""
    fig = visibility_figure(2000, 300, [400] * 8, dense=True)
    assert np.asarray(fig.data[0].z).shape[0] <= 64 and np.asarray(fig.data[0].z).shape[1] <= 64


def test_last_round_layout_counts_earlier_rounds_as_context():
    """The last round's context is prompt + round 1 (plan, tagged blocks, <sync/>); plans and
    blocks leave out their terminator and count their <async> tags."""
    assert last_round_layout(fold(EVENTS)) == (5 + 8 + (6 + 4) + 1, 4, [4])


@pytest.mark.parametrize("attention", ["sparse", "dense"])
def test_attention_picture_is_what_the_engine_lets_the_model_see(engine, attention):
    """The picture is Layout.visibility of the engine's own run: it covers the whole sequence, and
    for the last round's queries (its plan and its spans) it is exactly the model's mask."""
    plan = ("<promise>-<topic>intro 2</topic><promise>-<topic>body 1</topic><sync/>"
            "<promise>-<topic>end 1</topic><promise>-<topic>more 2</topic><|im_end|>")
    config = GenerationConfig(temperature=0.0, plan=plan, attention=attention, max_new_tokens=120,
                              length_scale=3)
    stream, events = engine.generate("Write about Velora.", config), []
    for ev in stream:
        events.append(ev)
        if isinstance(ev, E.Finished):  # the run is still alive: read the layout it used
            layout = stream.gi_frame.f_locals["run"].layout
    context, plan_len, blocks = last_round_layout(fold(events))
    n = layout.length
    assert context + plan_len + sum(blocks) == n and len(blocks) == 2
    positions = torch.arange(n, device=layout.ids.device)
    seen = layout.visibility(positions, positions).cpu().numpy()  # what the model was given
    dense = attention == "dense"
    assert (visibility_matrix(context, plan_len, blocks, dense)[context:] == seen[context:]).all()
    grid, _ = visibility_grid(context, plan_len, blocks, dense, max_cells=n)  # drawn cell by cell
    assert (grid[context:] == seen[context:]).all()


# --- traces ----------------------------------------------------------------------------------------


def test_trace_round_trip_gives_equal_events():
    """Export then import returns the same settings and equal events."""
    settings = {"mode": "planned", "seed": 3}
    assert trace_from_json(trace_to_json(settings, EVENTS)) == (settings, EVENTS)


def test_trace_holds_only_settings_and_events():
    """An exported trace has no keys beyond its format tag, settings and events."""
    assert set(json.loads(trace_to_json({}, EVENTS))) == {"format", "version", "settings", "events"}


@pytest.mark.parametrize(("old", "new"), [
    ({"threshold": None, "threshold_rule": "paper"}, {"schedule": "reference"}),
    ({"threshold": 0.8, "threshold_rule": "adaptive"}, {"schedule": "adaptive", "threshold": 0.8}),
    ({"threshold": 0.7, "threshold_rule": "paper"}, {"schedule": "paper", "threshold": 0.7}),
])
def test_a_trace_from_before_the_schedule_knob_reads_in_todays_spelling(old, new):
    """A trace whose settings spell the schedule as before `schedule` was a knob (threshold None
    for the reference, the rule as threshold_rule) reads with the schedule as one knob, the other
    settings as written; they are a run's settings."""
    settings, events = trace_from_json(trace_to_json({"seed": 3, **old}, EVENTS))
    assert settings == {"seed": 3, **new} and events == EVENTS
    assert GenerationConfig.from_dict(settings).schedule == new["schedule"]


def _trace(events) -> str:
    return json.dumps({"format": "pdiff-trace", "version": 1, "settings": {}, "events": events})


@pytest.mark.parametrize("text,fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a pdiff trace"),
    (json.dumps({"format": "pdiff-trace", "version": 1, "settings": {}, "events": {}}), "events"),
    (_trace([{"type": "Exploit", "x": 1}]), "not a pdiff event"),
    (_trace([{"type": "TextToken", "token_id": "1", "text": "a"}]), "wrong type"),
    (_trace([E.to_dict(ROUND0_STEPS[0])]), "does not follow"),
    (" " * (20 * 1024 * 1024 + 1), "over 20 MB"),
    (json.dumps({"format": "pdiff-trace", "version": 1, "events": [],
                 "settings": {"threshold": 0.5, "threshold_rule": "sometimes"}}),
     "threshold_rule must be one of"),
])
def test_bad_traces_raise_a_clear_trace_error(text, fragment):
    """Bad JSON, wrong shape, unknown or mistyped events, inconsistent order and oversize input
    all raise TraceError with a one-line message and no code or path."""
    with pytest.raises(TraceError, match=fragment) as err:
        trace_from_json(text)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message and ".py" not in message


def test_paper_points_sit_on_their_own_axes():
    """The paper's points (7B, AlpacaEval, GPU) are never on this model's quality axis: they have
    their own x and y axes, in a panel beside this model's, titled as the paper's."""
    fig = chart_figure([pt("p", 1, 0.5), pt("ar", 2, 0.6, "autoregressive")], "q", relative=True)
    paper = next(t for t in fig.data if t.name == PAPER_LABEL)
    ours = [t for t in fig.data if t.name != PAPER_LABEL]
    assert PAPER_LABEL == "paper: 7B, AlpacaEval, GPU"
    assert (paper.xaxis, paper.yaxis) == ("x2", "y2")
    assert all(t.xaxis in (None, "x") and t.yaxis in (None, "y") for t in ours)
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0]  # side by side, not overlaid
    assert "AlpacaEval" in fig.layout.yaxis2.title.text and "AlpacaEval" not in fig.layout.yaxis.title.text


def _round_of(steps_scheduled: int, steps_used: int, ended: bool) -> list:
    """One round of one 4-slot span: `steps_used` denoise steps of a schedule of `steps_scheduled`."""
    events = [E.Started("planned", (1,), 1), *plan(0, [PROMISE, "intro", " 1", TOPIC_END, IM_END]),
              E.SpansOpened(0, (E.PlanItem("intro", 1, 4),), "end", steps_scheduled)]
    per = -(-4 // steps_used)  # slots a step, the last step takes the rest
    tokens = [None] * 4
    for k in range(steps_used):
        new = tuple(i for i in range(k * per, min(4, (k + 1) * per)))
        for i in new:
            tokens[i] = "w"
        events.append(step(0, k, (tuple(tokens),), (new,), (tuple(0.9 if t else None for t in tokens),)))
    return [*events, E.RoundEnd(0, ("w w w w",))] if ended else events


@pytest.mark.parametrize(("scheduled", "used"), [(4, 2), (4, 4), (2, 4)])
def test_the_step_header_says_whether_the_step_ratio_acted(scheduled, used):
    """A round that ended before its scheduled steps (the adaptive threshold: the ratio is only a
    cap) says the ratio did not act; one that used them all shows used/scheduled; one that took
    more (the paper's threshold adds steps) says how many were added. While running: k/scheduled."""
    done = spans_html(fold(_round_of(scheduled, used, ended=True)))
    running = spans_html(fold(_round_of(scheduled, used, ended=False)))
    assert f"step {used}/{scheduled}" in running
    if used < scheduled:
        assert "did not act" in done and f"cap of {scheduled}" in done and f"{used} steps" in done
    elif used == scheduled:
        assert f"step {used}/{scheduled}" in done and "did not act" not in done
    else:
        assert f"the threshold added {used - scheduled}" in done
