"""The speed views: one timeline mark per forward, a "why" line read from the run, the thread
policy, and the start-up measurement they quote."""

from __future__ import annotations

import dataclasses
import threading
from html import escape

import pytest
import torch

from pdiff.app.fold import fold
from pdiff.app.machine import ForwardCost, choose_threads, measure_cost
from pdiff.app.settings import SettingsError, settings_from_env
from pdiff.app.speed import AGREE, count_words, denoise_widths, fmt_times, speed_note, why_html, why_line
from pdiff.app.timeline import AR, PLAN, TEXT, X_TITLE, forwards, span_lane, timeline_figure
from pdiff.loader import BUNDLED_AR, load_engine
from pdiff.plan import PlanRound
from pdiff.threads import ThreadPolicy

PROMPT = "Tell me about the city Lagil. Facts: country: Dregani; climate: hot; population: 4800."
PLAN_GIVEN = (PlanRound((("intro", 1), ("facts", 2)), "sync"), PlanRound((("end", 1),), "end"))
CASES = {  # name: (engine, knobs); together they reach every kind of forward the engine makes
    "planned": ("pd", {}),
    "planned, no cache": ("pd", dict(use_cache=False)),
    "planned, dense": ("pd", dict(attention="dense")),
    "given plan (prefills)": ("pd", dict(plan=PLAN_GIVEN)),
    "given plan, no cache": ("pd", dict(plan=PLAN_GIVEN, use_cache=False)),
    "budget cut": ("pd", dict(max_new_tokens=30)),
    "AR to its end token": ("ar", dict(mode="autoregressive")),
    "AR cut by the budget": ("ar", dict(mode="autoregressive", max_new_tokens=10)),
    "diffusion (prompt prefill)": ("pd", dict(mode="diffusion", max_new_tokens=40)),
    "no plan: AR fallback": ("tiny", dict(max_new_tokens=60)),
}


@pytest.fixture(scope="module")
def engines(engine):
    return {"pd": load_engine(), "ar": load_engine(BUNDLED_AR), "tiny": engine}


def run(engines, name: str, **extra):
    which, knobs = CASES[name]
    e = engines[which]
    return fold(e.generate(PROMPT, e.config(**{**knobs, **extra})))


@pytest.mark.parametrize("name", list(CASES))
def test_one_mark_per_forward(engines, name):
    """The timeline lists exactly as many forwards as the engine counted (its stats)."""
    view = run(engines, name)
    marks = forwards(view)
    assert len(marks) == view.finished.stats.forward_passes
    assert [f.index for f in marks] == list(range(1, len(marks) + 1))
    fig = timeline_figure(view)
    shown = sum(len(t.x) for t in fig.data if t.type == "bar" or t.mode == "markers")
    assert shown == view.finished.stats.forward_passes


def test_denoise_marks_carry_every_commit(engines):
    """A denoise forward is one mark across its round's span lanes; its tokens are the slots it
    committed, and together they commit every span slot."""
    view = run(engines, "planned")
    denoise = [f for f in forwards(view) if f.kind == "denoise"]
    assert len(denoise) == view.finished.stats.denoise_steps
    slots = sum(s.length for r in view.ordered_rounds() for s in r.spans)
    assert sum(f.tokens for f in denoise) == slots
    assert all(f.tokens == sum(f.per_lane) and len(f.lanes) == len(f.per_lane) for f in denoise)
    first = view.ordered_rounds()[0]
    assert denoise[0].lanes == tuple(span_lane(0, i, s.topic) for i, s in enumerate(first.spans))


def test_lanes_are_plan_spans_and_ar_when_compared(engines):
    """Lanes: the plan, then every span; the AR lane (with all AR forwards) only when given."""
    view, ar = run(engines, "planned"), run(engines, "AR to its end token")
    spans = [span_lane(r.round, i, s.topic) for r in view.ordered_rounds() for i, s in enumerate(r.spans)]
    alone = timeline_figure(view)
    assert list(alone.layout.yaxis.ticktext) == [PLAN, *spans]
    both = timeline_figure(view, ar)
    assert list(both.layout.yaxis.ticktext) == [PLAN, *spans, AR]
    ar_trace = [t for t in both.data if (t.name or "").startswith("AR forward")]
    assert len(ar_trace) == 1 and len(ar_trace[0].x) == ar.finished.stats.forward_passes
    assert set(ar_trace[0].y) == {len(spans) + 1}  # all in the AR lane


def test_fallback_text_has_its_own_lane(engines):
    """A run without a usable plan shows its AR-written text in a text lane."""
    view = run(engines, "no plan: AR fallback")
    assert view.text_tokens and TEXT in timeline_figure(view).layout.yaxis.ticktext


@pytest.mark.parametrize("plan", [None, PLAN_GIVEN])
def test_plan_and_ar_forwards_never_share_a_marker(engine, plan):
    """The run's one-token forwards and the AR baseline's are drawn with disjoint marker shapes,
    and each legend entry (its trace's first marker) differs: colour alone never tells them apart.
    With a given plan the run's first forward is a prefill; the legend still shows its dots."""
    view = fold(engine.generate(PROMPT, engine.config(max_new_tokens=60, plan=plan)))
    ar_view = fold(engine.generate(PROMPT, engine.config(mode="autoregressive", max_new_tokens=20)))
    fig = timeline_figure(view, ar_view)
    dots = {t.name: list(t.marker.symbol) for t in fig.data if t.type == "scatter" and t.mode == "markers"}
    ours = next(v for k, v in dots.items() if k.startswith("plan"))
    theirs = next(v for k, v in dots.items() if k.startswith("AR"))
    assert not set(ours) & set(theirs), dots
    assert ours[0] == "circle" or set(ours) <= {"square-open", "x-thin-open"}


def test_timeline_says_it_is_the_whole_run(engines):
    """The figure is the whole run whatever step a replay shows, and its x axis says so."""
    view, ar = run(engines, "planned"), run(engines, "AR to its end token")
    for fig in (timeline_figure(view), timeline_figure(view, ar)):
        assert fig.layout.xaxis.title.text == X_TITLE and "whole run" in X_TITLE


def test_no_timeline_before_the_run_finished(engines):
    view = run(engines, "planned")
    view.finished = None
    assert forwards(view) == [] and timeline_figure(view) is None


# --- the why line ---------------------------------------------------------------------------------


def timed(view, plan_s: float, denoise_s: float):
    """The view with its run's timings set to known values (all else as the run counted)."""
    s = view.finished.stats
    stats = dataclasses.replace(s, plan_seconds=plan_s, denoise_seconds=denoise_s,
                                total_seconds=plan_s + denoise_s)
    view.finished = dataclasses.replace(view.finished, stats=stats)
    return view


def verdict(ratio: float) -> str:
    return f"{fmt_times(ratio)} faster" if ratio >= 1 else f"{fmt_times(1 / ratio)} slower"


@pytest.mark.parametrize(("plan_s", "denoise_s", "ar_s"), [(1.0, 2.0, 6.0), (0.5, 4.0, 1.5)])
def test_why_line_numbers_come_from_the_run(engines, plan_s, denoise_s, ar_s):
    """Forwards, the cost factor and the wall-clock ratios are the run's own (and the AR's)."""
    view = timed(run(engines, "planned"), plan_s, denoise_s)
    ar = timed(run(engines, "AR to its end token"), ar_s, 0.0)
    s = view.finished.stats
    plan_fw = s.forward_passes - s.denoise_steps
    line = why_line(view, ar, "CPU (2 cores)")
    assert line.startswith(f"planned: {s.forward_passes} forwards (plan {plan_fw}, denoise "
                           f"{s.denoise_steps}) vs AR {ar.finished.stats.forward_passes}")
    factor = (denoise_s / s.denoise_steps) / (plan_s / plan_fw)
    width = sum(denoise_widths(view)) / s.denoise_steps
    assert (f"on this CPU (2 cores) a denoise forward over {width:.0f} tokens took "
            f"{fmt_times(factor)} a plan forward") in line
    n, ar_n = count_words(view.finished.text), count_words(ar.finished.text)
    whole = ar_s / (plan_s + denoise_s)
    assert (f"whole run {verdict(whole)} than AR ({plan_s + denoise_s:.2f} s vs AR {ar_s:.2f} s); "
            f"so per answer word it is {verdict(whole * n / ar_n)} ({n} words vs AR {ar_n})") in line
    assert "one timing each" in line


def _with_text(view, words: int, word: str = "w"):
    view.finished = dataclasses.replace(view.finished, text=" ".join([word] * words))
    return view


@pytest.mark.parametrize(("ar_s", "words", "ar_words", "disagree"), [
    (0.9, 12, 84, True),  # 3x faster whole, slower per word: the answers differ in length
    (0.9, 40, 50, False),  # both faster, within AGREE
    (0.9, 20, 10, True),  # both faster, but per word twice the whole run's
    (0.285, 11, 10, True),  # slower whole (0.95x), faster per word (1.05x): they point apart
    (0.285, 10, 10, False),  # equal answers: the two ratios are one
])
def test_whole_run_leads_and_a_disagreeing_per_word_ratio_says_so(engines, ar_s, words, ar_words,
                                                                   disagree):
    """The whole-run ratio comes first, then the per-word one; when they disagree (one faster,
    one slower, or more than AGREE apart) the line says the per-word figure is not the run's
    speed."""
    view = _with_text(timed(run(engines, "planned"), 0.1, 0.2), words)
    ar = _with_text(timed(run(engines, "AR to its end token"), ar_s, 0.0), ar_words)
    line = why_line(view, ar, "CPU")
    whole, per_word = ar_s / 0.3, ar_s / 0.3 * words / ar_words
    head, per = f"whole run {verdict(whole)} than AR", f"per answer word it is {verdict(per_word)}"
    assert head in line and per in line and line.index(head) < line.index(per)
    apart = (whole >= 1) != (per_word >= 1) or not 1 / AGREE <= per_word / whole <= AGREE
    assert apart is disagree
    assert ("the per-word figure counts the answer's words" in line) is disagree
    assert ("is not the run's speed" in line) is disagree


def test_broken_words_read_fast_per_word_but_the_whole_run_leads(engines):
    """The issue's case: a run 0.91x AR's speed whose answer has more (broken) words reads 1.4x
    faster per word; the line states the whole run's 1.1x slower first and flags the per-word
    figure."""
    view = timed(run(engines, "planned"), 0.11, 0.22)
    view.finished = dataclasses.replace(view.finished, text=" ".join(["ci ty"] * 10))  # 20 pieces
    ar = _with_text(timed(run(engines, "AR to its end token"), 0.3, 0.0), 13)
    line = why_line(view, ar, "CPU")
    whole, per_word = 0.3 / 0.33, 0.3 / 0.33 * 20 / 13
    assert verdict(whole) == "1.1× slower" and verdict(per_word) == "1.4× faster"
    assert line.index(f"whole run {verdict(whole)}") < line.index(verdict(per_word))
    assert "is not the run's speed" in line


def test_whole_run_is_stated_even_without_words(engines):
    """An answer with no words (only punctuation) still gets the whole-run ratio; no per-word one."""
    view = _with_text(timed(run(engines, "planned"), 0.1, 0.2), 5, "…")
    ar = _with_text(timed(run(engines, "AR to its end token"), 0.6, 0.0), 30)
    line = why_line(view, ar, "CPU")
    assert f"whole run {verdict(0.6 / 0.3)} than AR" in line and "per answer word" not in line


@pytest.mark.parametrize("text", ["Lagil is a city in Dregani.", "La gil is a ci ty in Dre gani",
                                  "Its population is 4,800 and it's hot."])
def test_words_count_as_written_and_punctuation_alone_does_not(text):
    """Every whitespace piece with a letter or digit counts, broken words included; pieces of bare
    punctuation add none."""
    assert count_words(text) == len(text.split())
    assert count_words(f"{text} — … , .") == count_words(text)


def test_repeated_timings_show_their_spread(engines):
    """With several runs of the same settings (same forwards) and of AR on the prompt, the line
    gives each one's range and the ratio of their medians, not one timing's ratio."""
    view = _with_text(timed(run(engines, "planned"), 0.1, 0.2), 30)
    ar = _with_text(timed(run(engines, "AR to its end token"), 0.6, 0.0), 30)
    pd_times, ar_times = [0.3, 0.25, 0.4], [0.6, 0.7]
    line = why_line(view, ar, "CPU", repeats=(pd_times, ar_times))
    assert "(0.25 to 0.40 s over 3 runs vs AR 0.60 to 0.70 s over 2 runs)" in line
    median_ratio = 0.7 / 0.3  # the upper median of two, the middle of three
    assert f"whole run {fmt_times(median_ratio)} faster" in line
    assert f"per answer word it is {fmt_times(median_ratio)} faster" in line  # equal answers
    assert "one timing each" not in line


def test_why_html_says_it_is_the_whole_run(engines):
    """On the page the why line says it covers the whole run (a replay's step does not move it),
    after the line itself, which still starts with the run's forwards."""
    line = why_line(timed(run(engines, "planned"), 1.0, 1.0), None, "CPU")
    html = why_html(line)
    assert "whole run" not in line and html.index(escape(line)) < html.index("whole run")
    assert html.startswith(f'<div class="pd pd-why">{escape(line)}') and why_html("") == ""


def test_session_keeps_the_timings_of_each_setting(engines):
    """The session records every run's seconds under its exact settings, and AR's per prompt."""
    from pdiff.app.session import Session

    session, view = Session(), run(engines, "planned")
    for seconds in (0.5, 0.7):
        session.record(PROMPT, dataclasses.replace(view.finished, stats=dataclasses.replace(
            view.finished.stats, total_seconds=seconds)), None, {"prompt": PROMPT, "seed": 0})
    session.record(PROMPT, view.finished, None, {"prompt": PROMPT, "seed": 1})
    assert session.times_of({"seed": 0, "prompt": PROMPT}) == [0.5, 0.7]
    assert session.times_of({"prompt": PROMPT, "seed": 1}) == [view.finished.stats.total_seconds]
    ar = run(engines, "AR to its end token").finished
    session.record(PROMPT, ar, None, {"prompt": PROMPT})
    assert session.ar_times_of(PROMPT) == [ar.stats.total_seconds] and session.ar_times_of("x") == []


def test_the_speed_note_says_why_the_bench_can_disagree():
    """'How it works' says the page times one prompt and the benchmark takes medians: the figures
    to quote (the README's Results can show planned slower where one run here was faster)."""
    for cost in (None, ForwardCost("CPU (2 cores)", 0.01, 0.05, 256)):
        note = speed_note(cost)
        assert "one prompt" in note and "medians over 200 prompts" in note and "Results" in note


def test_why_line_without_ar_says_what_it_can(engines):
    """Without the AR run: no AR figures, the span tokens against their cost, and how to measure."""
    view = timed(run(engines, "planned"), 1.0, 1.0)
    line = why_line(view, None, "GPU (X)")
    spans = sum(s.length for r in view.ordered_rounds() for s in r.spans)
    assert "vs AR" not in line and "on this GPU (X)" in line
    assert f"its {spans} span tokens" in line and "Compare with AR" in line


def test_denoise_widths_shrink_as_sparse_spans_finish(engines):
    """Sparse with a cache recomputes only unfinished blocks; dense recomputes all of them."""
    view = run(engines, "planned")
    sparse, dense = denoise_widths(view), denoise_widths(view, dense=True)
    assert len(sparse) == view.finished.stats.denoise_steps
    assert all(a <= b for a, b in zip(sparse, dense, strict=True)) and sparse == sorted(sparse, reverse=True)


@pytest.mark.parametrize(("narrow", "wide", "free"), [(0.010, 0.012, True), (0.010, 0.075, False)])
def test_speed_note_follows_the_measured_factor(narrow, wide, free):
    """'How it works' quotes the measured factor and calls parallel tokens free only if it is."""
    note = speed_note(ForwardCost("CPU (2 cores)", narrow, wide, 256))
    assert fmt_times(wide / narrow) in note and "CPU (2 cores)" in note
    assert ("nearly free" in note) is free and ("not free" in note) is not free


def test_measured_cost_is_a_real_timing(engine):
    """The start-up measurement times the model: positive, and wider is not cheaper per token."""
    cost = measure_cost(engine.model, "cpu", 64)
    assert 0 < cost.narrow_seconds and 0 < cost.wide_seconds and cost.wide_tokens == 64
    assert cost.wide_seconds / 64 < cost.narrow_seconds  # a wide forward shares its overhead


# --- threads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cores", [1, 2, 3, 16])
@pytest.mark.parametrize("runs", [1, 2, 5])
def test_runs_times_threads_never_exceed_the_cores(cores, runs):
    """Every run may use its threads at once: runs x threads <= cores (or 1 thread each)."""
    policy = ThreadPolicy(cores, runs)
    assert policy.threads_for(10_000) * runs <= max(cores, runs)
    assert policy.threads_for(1) == 1  # a 1-token step never gets more than one


def test_more_threads_only_for_wide_forwards():
    policy = ThreadPolicy(16, 2, wide=32)
    assert [policy.threads_for(n) for n in (1, 31, 32, 500)] == [1, 1, 8, 8]
    assert ThreadPolicy(16, 2, parallel=False).threads_for(500) == 1


def test_policy_rejects_a_bad_value():
    with pytest.raises(ValueError, match="runs must be a whole number >= 1, got 0"):
        ThreadPolicy(2, 0)


def test_apply_sets_only_the_calling_threads_count():
    """Two runs in two threads keep their own counts: one's wide forward does not widen the other."""
    policy, seen, barrier = ThreadPolicy(2, 1, wide=8), {}, threading.Barrier(2)

    def forward(name: str, tokens: int) -> None:
        policy.apply(tokens)
        barrier.wait()
        barrier.wait()  # both have set their counts
        seen[name] = torch.get_num_threads()

    threads = [threading.Thread(target=forward, args=a) for a in (("narrow", 1), ("wide", 100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == {"narrow": 1, "wide": 2}


class RecordingPolicy(ThreadPolicy):
    def apply(self, tokens: int) -> int:
        CALLS.append((tokens, self.threads_for(tokens)))
        return CALLS[-1][1]


CALLS: list[tuple[int, int]] = []


def test_engine_applies_the_policy_per_forward(engines):
    """The engine asks the policy before each forward: 1-token steps 1 thread, wide ones more."""
    e = engines["pd"]
    CALLS.clear()
    e.threads = RecordingPolicy(4, 1, wide=8)
    try:
        view = fold(e.generate(PROMPT, e.config()))
    finally:
        e.threads = None
    assert len(CALLS) == view.finished.stats.forward_passes
    assert all(n == (4 if tokens >= 8 else 1) for tokens, n in CALLS)
    assert {n for _, n in CALLS} == {1, 4}


def test_choose_threads_on_one_core_measures_nothing(engine):
    assert choose_threads(engine.model, runs=2, wide=64, cores=1).per_run == 1


def test_threads_setting():
    env = {"PDIFF_THREADS": "torch"}
    assert settings_from_env(env, cuda_available=False).threads == "torch"
    assert settings_from_env({}, cuda_available=False).threads == "auto"
    with pytest.raises(SettingsError, match="PDIFF_THREADS must be one of auto, torch; got '3'"):
        settings_from_env({"PDIFF_THREADS": "3"}, cuda_available=False)
