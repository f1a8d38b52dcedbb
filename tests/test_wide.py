"""Spec of `pdiff.notes.wide`, task v6's composed prompts: one invariant per test.

A v6 prompt may give its facts in any count from 1 to 12, its name anywhere and in any shape,
and its numbers as people type them; the answer copies every value and the name exactly and
states the given facts and nothing else.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from pdiff.notes import data, wide
from pdiff.notes.data import Example, make_split, name_split
from pdiff.notes.wide import MAX_FACTS, make_wide_example, probe_split

N = 3000


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    rng = random.Random("test-wide")
    return [make_wide_example(rng) for _ in range(N)]


def _round_one(ex: Example) -> str:
    return " ".join(s.text for s in ex.rounds[0])


def test_same_rng_same_example() -> None:
    """An example is a function of its random stream alone."""
    a = [make_wide_example(random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert make_wide_example(random.Random(6)) != a[0]


def test_every_fact_count_from_one_to_the_maximum_occurs(examples: list[Example]) -> None:
    """Each count of facts from 1 to MAX_FACTS is drawn, none above it, the small ones as often as
    the large ones (a v5 prompt gives at least 4)."""
    counts = Counter(len(ex.facts) for ex in examples)
    assert set(counts) == set(range(1, MAX_FACTS + 1))
    assert min(counts.values()) > N / MAX_FACTS / 3


def test_values_are_written_in_the_prompt_verbatim(examples: list[Example]) -> None:
    """Every fact's value, and the entity's name, is a substring of the prompt as typed."""
    for ex in examples:
        assert ex.name in ex.prompt, ex.prompt
        for fact in ex.facts:
            assert fact.value in ex.prompt, (fact, ex.prompt)


def test_the_answer_copies_every_value_and_the_name_exactly(examples: list[Example]) -> None:
    """Round 1 states each given value verbatim, and names the entity as the prompt spells it."""
    for ex in examples:
        text = _round_one(ex)
        assert ex.name in text, (ex.name, text)
        for fact in ex.facts:
            assert fact.value in text, (fact, text)


def test_the_answer_states_only_the_given_facts(examples: list[Example]) -> None:
    """No section is made up: round 1 has at most one sentence per fact and one section per
    group of given facts, so a prompt of 2 facts gets a plan of at most 2 spans."""
    for ex in examples:
        sections = ex.rounds[0]
        sentences = sum(len(re.findall(r"\.(?=\s|$)", s.text)) for s in sections)
        assert 1 <= len(sections) <= len(ex.facts)
        assert sentences <= len(ex.facts), ex


def test_names_take_every_shape(examples: list[Example]) -> None:
    """Names of 2 to 16 letters a word, of several words, lower-case, upper-case and with a
    hyphen or an apostrophe all occur."""
    names = [ex.name for ex in examples]
    lengths = {len(w) for n in names for w in n.split()}
    assert {2, 16} <= lengths
    assert any(" " in n for n in names)
    assert any(n == n.lower() for n in names) and any(len(n) > 2 and n == n.upper() for n in names)
    assert any("-" in n or "'" in n for n in names)


def test_the_name_is_given_in_a_field_or_a_sentence_too(examples: list[Example]) -> None:
    """Some prompts name the entity only in a field ("name: ...") or a sentence, never in the
    instruction: their instruction says "this city" or nothing."""
    fields = [ex for ex in examples if re.search(r"(?im)^\W*(?:\d+[.)] )?(name|city|person|animal|"
                                                 r"product|species|item)\W*[:=-]", ex.prompt)]
    assert len(fields) > N / 20
    assert any(ex.prompt.lstrip().startswith(ex.name) or f". {ex.name} " in ex.prompt
               for ex in examples if ex.form == "v6-sentences")


@pytest.mark.parametrize("pattern", [r"\d,\d{3}", r"\$\d", r"\d\.\d", r"\d ?(?:kg|cm|mm|m|km/h|%)\b"])
def test_numbers_come_in_every_form(examples: list[Example], pattern: str) -> None:
    """Thousands separators, currency signs, decimals and units all occur in values."""
    assert any(re.search(pattern, f.value) for ex in examples for f in ex.facts)


@pytest.mark.parametrize("form", ["v6-kv", "v6-json", "v6-table", "v6-sentences"])
def test_every_body_occurs(examples: list[Example], form: str) -> None:
    """key/value items, a JSON object, a markdown table and plain English all occur."""
    assert sum(ex.form == form for ex in examples) > N / 20


def test_probe_names_are_held_out() -> None:
    """The probe's prompts are fixed and use only held-out names, which training never draws."""
    probe = probe_split(200, seed=1)
    assert probe == probe_split(200, seed=1)
    assert all(name_split(ex.name) == "heldout" for ex in probe)
    train = {ex.name for ex in make_split("train", 2000, seed=0, task="v6")}
    assert not train & {ex.name for ex in probe}


def test_task_v6_mixes_wide_and_v5_prompts() -> None:
    """Task v6's training split draws WIDE_SHARE of its examples from pdiff.notes.wide and the
    rest as task v5 does; the held-out split does not change."""
    train = make_split("train", 2000, seed=4, task="v6")
    share = sum(ex.form.startswith("v6-") for ex in train) / len(train)
    assert abs(share - data.WIDE_SHARE) < 0.05
    assert make_split("heldout", 200, seed=3, task="v6") == make_split("heldout", 200, seed=3)


def test_extra_keys_of_training_avoid_the_heldout_ones() -> None:
    """The wide pool of extra keys keeps out every held-out key, like task v5's pool."""
    held = set(data.extra_keys("heldout"))
    assert not held & set(wide._extra_pool("train"))
