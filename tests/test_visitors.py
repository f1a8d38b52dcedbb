"""The visitor set (tests/data/visitors.jsonl) and the probes, on the bundled pair.

The visitor set is 120 notes prompts written blind, by a writer who saw only the page's scope
line and its examples: never the code or the data. It is frozen (its hash below) and never
trained on. The bundled models must keep the figures measured on it and on the copy and number
probe (scripts/measured-accuracy.py, on the shipped models at temperature 0), less MARGIN.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import pytest

from pdiff.loader import BUNDLED_AR, load_engine
from pdiff.notes.checker import score
from pdiff.notes.data import Fact, make_split
from pdiff.notes.probes import name_exact, numbers_exact, numbers_of
from pdiff.notes.wide import probe_split

PATH = Path(__file__).parent / "data" / "visitors.jsonl"
ROWS = [json.loads(line) for line in PATH.open(encoding="utf-8")]
FROZEN = "82183accea2f8293a8b92e8ba61773739f978a88088e9f70396bb597c194aac8"  # sha256 as committed
SAMPLE = ROWS[::5]  # 24 prompts, each fact count and kind, for the test run on the models
PROBE = probe_split(40)
# Measured with scripts/measured-accuracy.py (this file's computation, on the shipped models:
# PD v8 and AR v8, trained on task v5). The number probe is measured too, but both models copy
# no number prompt of the 40 whole (0.0), so a floor under it could not fail: it is asserted
# once a shipped model copies numbers, and the bench reports it meanwhile.
MEASURED = {
    "visitors": {"ar": 0.143, "pd_default": 0.154},
    "probe_name": {"ar": 0.2, "pd_default": 0.1},
    "probe_numbers": {"ar": 0.0, "pd_default": 0.0},
}
MARGIN = 0.05


def test_the_set_is_frozen():
    """The file is byte for byte the one written blind and committed before the generator changed."""
    assert hashlib.sha256(PATH.read_bytes()).hexdigest() == FROZEN


def test_every_fact_count_kind_and_many_formats():
    """120 prompts, 30 per kind, every count of facts from 1 to 12, and at least 8 formats."""
    assert len(ROWS) == 120
    assert {k: sum(r["kind"] == k for r in ROWS) for k in ("city", "product", "person", "animal")} == {
        "city": 30, "product": 30, "person": 30, "animal": 30}
    assert {len(r["facts"]) for r in ROWS} == set(range(1, 13))
    assert len({r["format"] for r in ROWS}) >= 8


def test_every_value_and_name_is_in_its_prompt():
    """A value the answer should copy is written in its prompt as listed, and so is the name."""
    for r in ROWS:
        assert r["name"] in r["instruction"]
        assert all(v in r["instruction"] for _, v in r["facts"]), r["facts"]


def test_the_set_is_not_in_the_training_data():
    """No visitor prompt is one the generator makes for training, in any task."""
    prompts = {r["instruction"] for r in ROWS}
    for task in ("v6", "v5"):
        assert not prompts & {ex.prompt for ex in make_split("train", 5000, seed=0, task=task)}


def _answers(engine, prompts: list[str], config) -> list[str]:
    return [engine.generate_text(p, config(temperature=0.0)).text for p in prompts]


@pytest.fixture(scope="module")
def engines():
    pd, ar = load_engine(), load_engine(BUNDLED_AR)
    return {"pd_default": (pd, pd.default_config),
            "ar": (ar, lambda **k: ar.config(mode="autoregressive", **k))}


def visitor_accuracy(engine, config, rows=SAMPLE) -> float:
    texts = _answers(engine, [r["instruction"] for r in rows], config)
    return statistics.mean(score(r["instruction"], t, [Fact(k, v) for k, v in r["facts"]]).value
                           for r, t in zip(rows, texts))


def probe_shares(engine, config, probe=PROBE) -> tuple[float, float]:
    """(the share of answers naming the entity exactly, the share copying every number exactly
    among the prompts whose facts hold a number)."""
    texts = _answers(engine, [ex.prompt for ex in probe], config)
    names = [name_exact(ex.name, ex.prompt, t) for ex, t in zip(probe, texts)]
    numbered = [(ex, t) for ex, t in zip(probe, texts) if any(numbers_of(f.value) for f in ex.facts)]
    numbers = [numbers_exact(ex.prompt, t, [f.value for f in ex.facts]) for ex, t in numbered]
    return statistics.mean(names), statistics.mean(numbers)


@pytest.mark.parametrize("model", ["ar", "pd_default"])
def test_the_bundled_pair_keeps_its_visitor_accuracy(engines, model):
    """On the sample of the visitor set, each model keeps its measured checker score."""
    engine, config = engines[model]
    assert visitor_accuracy(engine, config) >= MEASURED["visitors"][model] - MARGIN


@pytest.mark.parametrize("model", ["ar", "pd_default"])
def test_the_bundled_pair_copies_names_and_numbers(engines, model):
    """On 40 probe prompts (held-out invented names), each model keeps its measured share of
    exact names, and of exact numbers where that share is above MARGIN."""
    engine, config = engines[model]
    names, numbers = probe_shares(engine, config)
    assert names >= MEASURED["probe_name"][model] - MARGIN
    if MEASURED["probe_numbers"][model] > MARGIN:
        assert numbers >= MEASURED["probe_numbers"][model] - MARGIN


def test_the_sample_spans_every_kind_and_short_prompts():
    """The models' sample has every kind and prompts of 1 to 3 facts, where invention shows."""
    assert {r["kind"] for r in SAMPLE} == {"city", "product", "person", "animal"}
    assert any(len(r["facts"]) <= 3 for r in SAMPLE)
