"""`python -m pdiff curve`: a learning-curve point is the checker's score of a real checkpoint on
the fixed curve prompts, the log keeps one row per run and step, and the chart draws every run."""

from __future__ import annotations

import dataclasses
import json
import re
import statistics

import pytest

from pdiff.loader import load_engine
from pdiff.notes.checker import score
from pdiff.notes.data import make_split
from pdiff.train import curve
from pdiff.train.loop import PRESETS_TRAIN, train


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A real (smoke-sized) training run's checkpoint folder, with its record."""
    out = tmp_path_factory.mktemp("curve") / "pd"
    train(dataclasses.replace(PRESETS_TRAIN["smoke"], steps=4, warmup=2), out, progress=False)
    return out


def test_a_point_is_the_checker_score_on_the_curve_prompts(smoke_run):
    """The point's score is the mean checker score of the checkpoint's greedy answers to the
    first n curve prompts, at the reference schedule, and its step is the run's."""
    point = curve.evaluate(smoke_run, n=2)
    engine = load_engine(smoke_run)
    config = engine.config(temperature=0.0)
    prompts = [ex.prompt for ex in make_split("heldout", 2, seed=curve.CURVE_SEED)]
    expected = statistics.mean(score(p, engine.generate_text(p, config).text).value for p in prompts)
    assert point["score"] == round(expected, 4)
    assert (point["kind"], point["step"], point["prompts"]) == ("pd", 4, 2)


def test_a_point_on_a_prompt_file_scores_against_its_given_facts(smoke_run, tmp_path):
    """With a prompt file (the visitor set's form), the point's score is the checker's against each
    line's given facts, and its step is the one asked for."""
    from pdiff.notes.data import Fact

    lines = [{"instruction": "Write about the town Quell. It has 812 people.", "facts": [["people", "812"]]},
             {"instruction": "A lamp called the Zib.", "facts": [["colour", "red"], ["price", "$19.99"]]}]
    path = tmp_path / "visitors.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    point = curve.evaluate(smoke_run, n=2, prompt_file=path, step=100)
    engine = load_engine(smoke_run)
    config = engine.config(temperature=0.0)
    expected = statistics.mean(
        score(x["instruction"], engine.generate_text(x["instruction"], config).text,
              [Fact(k, v) for k, v in x["facts"]]).value for x in lines)
    assert point["score"] == round(expected, 4)
    assert (point["step"], point["prompts"], point["prompt_set"]) == (100, 2, "visitors.jsonl")


def test_the_curve_prompts_are_not_the_bench_prompts():
    """The curve's fixed prompts are drawn with their own seed: none is a bench prompt (seed 0)."""
    bench = {ex.prompt for ex in make_split("heldout", 200)}
    assert not bench & {ex.prompt for ex in make_split("heldout", 50, seed=curve.CURVE_SEED)}


def test_the_log_keeps_one_row_per_run_and_step(tmp_path):
    """Appending a point of a (label, step) already in the log replaces it; other rows stay,
    sorted by label and step."""
    log = tmp_path / "curve.json"
    curve.append(log, {"step": 200, "score": 0.5}, "PD")
    curve.append(log, {"step": 100, "score": 0.4}, "PD")
    curve.append(log, {"step": 100, "score": 0.9}, "AR")
    rows = curve.append(log, {"step": 200, "score": 0.6}, "PD")
    assert rows == json.loads(log.read_text())
    assert [(r["label"], r["step"], r["score"]) for r in rows] == [
        ("AR", 100, 0.9), ("PD", 100, 0.4), ("PD", 200, 0.6)]


def test_the_chart_draws_each_run_through_its_points():
    """One polyline per label, through one circle per row; a higher score sits higher."""
    rows = [{"label": "PD", "step": 100, "score": 0.2}, {"label": "PD", "step": 300, "score": 0.8},
            {"label": "AR", "step": 200, "score": 0.5}]
    svg = curve.svg(rows)
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3
    pd = re.findall(r'points="([^"]+)"', svg)[0].split()
    (x1, y1), (x2, y2) = (map(float, p.split(",")) for p in pd)
    assert x2 > x1 and y2 < y1  # later step to the right, higher score higher up (SVG y grows down)


def test_the_legend_is_wide_enough_for_the_longest_label():
    """A long run name widens the chart instead of running off its right edge; the plot keeps
    its width."""
    short = curve.svg([{"label": "PD", "step": 1, "score": 0.5}])
    name = "PD from AR v3, 2 mask copies + stratified t"
    long = curve.svg([{"label": name, "step": 1, "score": 0.5}])
    width = lambda svg: int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    legend_x = float(re.search(rf'<text x="([\d.]+)"[^>]*>{re.escape(name)}</text>', long).group(1))
    assert legend_x + 6 * len(name) <= width(long)  # ~6 px a character at 12 px sans-serif
    grid = lambda svg: re.search(r'<line x1="48" x2="([\d.]+)"', svg).group(1)
    assert grid(long) == grid(short) and width(long) > width(short)


def test_every_run_has_a_colour_of_its_own():
    """Up to ten runs, no two lines share a colour (six runs once drew the first and the
    sixth in the same blue)."""
    rows = [{"label": f"run {i}", "step": 1, "score": 0.5} for i in range(10)]
    colours = re.findall(r'<polyline fill="none" stroke="([^"]+)"', curve.svg(rows))
    assert len(colours) == 10 and len(set(colours)) == 10


def test_the_step_axis_names_the_batch_its_runs_share():
    """The x axis says which batch a step is when every run has the same (rows logged before the
    batch size was recorded are 16s), and no batch when runs differ."""
    row = lambda label, batch: {"label": label, "step": 1, "score": 0.5, "batch_size": batch}  # noqa: E731
    assert "training step (batch 32)" in curve.svg([row("a", 32), row("b", 32)])
    assert "training step (batch 16)" in curve.svg([row("a", None), row("b", 16)])
    assert re.search(r">training step</text>", curve.svg([row("a", 16), row("b", 32)]))


def test_the_score_axis_starts_a_tenth_below_the_lowest_score():
    """Close scores stay apart: the axis runs from the tenth below the lowest score to 1, and
    a score at that tenth sits on the bottom line."""
    for low, scores in ((0.9, [0.95, 0.99]), (0.4, [0.466, 0.9]), (0.0, [0.05])):
        rows = [{"label": "a", "step": i, "score": v} for i, v in enumerate(scores + [low])]
        chart = curve.svg(rows)
        ticks = [float(t) for t in re.findall(r'text-anchor="end">([\d.]+)</text>', chart)]
        assert ticks[0] == low and ticks[-1] == 1.0
        bottom = re.search(r'<line x1="\d+" x2="[\d.]+" y1="([\d.]+)"', chart)[1]
        assert re.findall(r'points="([^"]+)"', chart)[0].split()[-1].endswith("," + bottom)
