"""The latency/quality chart across prompts: a Pareto front joins one prompt's runs only, the
relative view compares each run with its own prompt's AR runs, and a point names its prompt."""

import pytest

from pdiff.app.chart import (
    AR_MODE,
    MAX_FRONTS,
    ChartPoint,
    ar_reference,
    chart_figure,
    pareto_front,
    relative_xy,
)
from pdiff.app.session import Session
from pdiff.events import Finished, Stats


def pt(prompt, latency, quality, mode="planned"):
    return ChartPoint(f"{prompt} {mode} {latency}", mode, latency, quality, {}, prompt)


# Together, B's fast planned run, A's runs and B's AR run make one front across both prompts.
TWO_PROMPTS = [pt("A", 2.0, 0.6, AR_MODE), pt("A", 1.0, 0.4),
               pt("B", 3.0, 0.9, AR_MODE), pt("B", 0.5, 0.3), pt("B", 4.0, 0.2)]


def fronts(fig):
    return [t for t in fig.data if t.mode == "lines"]


def placed(points, relative):
    """Each prompt's chart coordinates, as chart_figure places them."""
    out = {}
    for p in points:
        group = [q for q in points if q.prompt == p.prompt]
        xy = relative_xy(p, ar_reference(group)) if relative else (p.latency, p.quality)
        out.setdefault(p.prompt, []).append(pytest.approx(xy))
    return out


@pytest.mark.parametrize("relative", [False, True])
def test_a_front_never_joins_two_prompts(relative):
    """Every front trace holds one prompt's points only, and each prompt with two or more
    non-dominated runs gets its own front."""
    fig = chart_figure(TWO_PROMPTS, "q", relative=relative, paper=False)
    coords = placed(TWO_PROMPTS, relative)
    owners = []
    for trace in fronts(fig):
        xys = list(zip(trace.x, trace.y, strict=True))
        owner = [prompt for prompt, cs in coords.items() if all(xy in cs for xy in xys)]
        assert len(owner) == 1, xys
        owners.append(owner[0])
        group = [p for p in TWO_PROMPTS if p.prompt == owner[0]]
        assert len(xys) == len(pareto_front(group))
        assert owner[0] in trace.name
    assert sorted(owners) == ["A", "B"]


def test_relative_view_compares_each_prompt_with_its_own_ar():
    """A run's speedup and quality change are against its own prompt's AR runs, not the mean
    of every prompt's."""
    points = [pt("A", 2.0, 0.5, AR_MODE), pt("A", 1.0, 0.5),
              pt("B", 10.0, 0.8, AR_MODE), pt("B", 5.0, 0.4)]
    fig = chart_figure(points, "q", relative=True, paper=False)
    planned = next(t for t in fig.data if t.name == "planned")
    assert list(zip(planned.x, planned.y, strict=True)) == [pytest.approx((2.0, 0.0)),
                                                            pytest.approx((2.0, -50.0))]


def test_a_prompt_without_an_ar_run_is_left_out_of_the_relative_view_and_said_so():
    """A run whose prompt has no AR run is not compared with another prompt's; a note counts it."""
    points = [pt("A", 2.0, 0.5, AR_MODE), pt("A", 1.0, 0.5), pt("C", 1.0, 0.9)]
    fig = chart_figure(points, "q", relative=True, paper=False)
    planned = next(t for t in fig.data if t.name == "planned")
    assert len(planned.x) == 1
    assert any("1 run(s) not shown" in a.text for a in fig.layout.annotations)


def test_only_the_prompts_run_last_get_a_front():
    """With many prompts only the MAX_FRONTS run last have a front, each named by its prompt."""
    points = [q for i in range(MAX_FRONTS + 2) for q in (pt(f"P{i}", 1.0, 0.2), pt(f"P{i}", 2.0, 0.4))]
    names = [t.name for t in fronts(chart_figure(points, "q"))]
    assert names == [f"front: P{i}" for i in reversed(range(2, MAX_FRONTS + 2))]


def test_hover_and_front_name_a_prompt_short_and_escaped():
    """A point's hover and its front's name carry the prompt on one line, cut short, escaped."""
    prompt = "Write <b>about</b>\nVelora " + "and more " * 20
    fig = chart_figure([pt(prompt, 1.0, 0.2), pt(prompt, 2.0, 0.4)], "q")
    hover = fig.data[0].text[0]
    assert "Write &lt;b&gt;about&lt;/b&gt; Velora" in hover and "<b>" not in hover
    assert "…" in hover and "more " * 20 not in hover
    (front,) = fronts(fig)
    assert front.name.startswith("front: Write &lt;b&gt;") and "\n" not in front.name


def test_a_recorded_point_carries_its_prompt():
    """Session.record puts the run's prompt on its chart point."""
    stats = Stats(mode="planned", prompt_tokens=3, plan_seconds=0.1, denoise_seconds=0.2,
                  total_seconds=0.3, forward_passes=4, prefill_forwards=1, plan_tokens=2,
                  denoise_steps=1, rounds=1, spans=1, generated_tokens=5, critical_path=4,
                  tokens_per_forward=1.25, mean_confidence=0.7)
    session = Session()
    session.record("Write about Velora.", Finished("text", (1,), (2,), (), stats), 0.5, {})
    assert session.points[-1].prompt == "Write about Velora."
