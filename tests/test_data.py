"""Spec of `pdiff.notes.data`, the "notes to text" generator: one invariant per test.

The generator must be deterministic, keep held-out entity names out of training, state every
fact of the prompt in its reference answer, and keep the shapes Planned Diffusion trains on
(2-4 one-sentence sections in round 1, at most one summary section in round 2).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from pdiff.notes.checker import parse_facts
from pdiff.notes.data import (
    KINDS,
    SPLITS,
    Example,
    make_example,
    make_name,
    make_split,
    name_split,
    read_jsonl,
    write_jsonl,
)

N = 1500  # examples per split for the shape checks


@pytest.fixture(scope="module", params=SPLITS)
def examples(request: pytest.FixtureRequest) -> list[Example]:
    return make_split(request.param, N, seed=3)


@pytest.fixture(scope="module")
def big_splits() -> dict[str, list[Example]]:
    return {s: make_split(s, 3000, seed=0) for s in SPLITS}


def _sections(ex: Example) -> list:
    return [s for r in ex.rounds for s in r]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_examples(split: str, seed: int) -> None:
    """make_split is a pure function of (split, n, seed)."""
    assert make_split(split, 50, seed) == make_split(split, 50, seed)


@pytest.mark.parametrize("split", SPLITS)
def test_different_seed_different_examples(split: str) -> None:
    """Another seed gives other examples."""
    assert make_split(split, 50, 0) != make_split(split, 50, 1)


def test_make_example_depends_only_on_rng() -> None:
    """Two generators in the same state give the same example."""
    assert make_example(random.Random(42)) == make_example(random.Random(42))


def test_longer_split_extends_shorter() -> None:
    """The first n examples do not depend on how many more are asked for."""
    assert make_split("train", 200)[:50] == make_split("train", 50)


@pytest.mark.parametrize("bad", ["test", "", "Train"])
def test_unknown_split_is_refused(bad: str) -> None:
    """Only the named splits exist."""
    with pytest.raises(ValueError):
        make_split(bad, 1)


def test_entity_names_disjoint_between_splits(big_splits: dict[str, list[Example]]) -> None:
    """No held-out entity name is ever a training entity name."""
    train = {ex.name for ex in big_splits["train"]}
    heldout = {ex.name for ex in big_splits["heldout"]}
    assert train and heldout and not train & heldout


@pytest.mark.parametrize("split", SPLITS)
def test_entity_names_belong_to_their_split(
    split: str, big_splits: dict[str, list[Example]]
) -> None:
    """Every entity name of a split hashes into that split."""
    assert all(name_split(ex.name) == split for ex in big_splits[split])


def test_heldout_names_never_appear_in_train_text(big_splits: dict[str, list[Example]]) -> None:
    """Held-out entity names occur nowhere in training prompts or answers, not even as values."""
    words = {w.strip(".,;:") for ex in big_splits["train"] for w in
             (ex.prompt + " " + ex.answer).split()}
    assert not {ex.name for ex in big_splits["heldout"]} & words


@pytest.mark.parametrize("split", SPLITS)
def test_names_come_from_their_split(split: str) -> None:
    """make_name only returns names whose hash puts them in the requested split."""
    rng = random.Random(5)
    assert all(name_split(make_name(rng, split)) == split for _ in range(500))


def test_heldout_prompts_are_distinct() -> None:
    """make_split("heldout", 200) gives 200 different prompts."""
    assert len({ex.prompt for ex in make_split("heldout", 200)}) == 200


def test_prompt_names_its_entity(examples: list[Example]) -> None:
    """The entity name appears in the instruction, and the kind is a known one."""
    for ex in examples:
        assert ex.name in ex.prompt.split(" Facts:")[0]
        assert ex.kind in KINDS


def test_every_kind_occurs(examples: list[Example]) -> None:
    """All entity kinds are generated."""
    assert {ex.kind for ex in examples} == set(KINDS)


def test_three_to_five_facts(examples: list[Example]) -> None:
    """Each prompt lists 3 to 5 facts with distinct keys."""
    for ex in examples:
        assert 3 <= len(ex.facts) <= 5
        assert len({f.key for f in ex.facts}) == len(ex.facts)


def test_prompt_facts_parse_back(examples: list[Example]) -> None:
    """The prompt's "Facts:" tail is machine-parsable into exactly the example's facts."""
    for ex in examples:
        assert parse_facts(ex.prompt) == ex.facts


@pytest.mark.parametrize("char", [";", ":", "<", ">", "."])
def test_fact_values_avoid_separator_chars(examples: list[Example], char: str) -> None:
    """No fact key or value contains a character that would break the "Facts:" syntax."""
    for ex in examples:
        for f in ex.facts:
            assert char not in f.value and char not in f.key


def test_round_shapes(examples: list[Example]) -> None:
    """Round 1 has 2-4 sections; an optional round 2 has exactly one; there is no round 3."""
    for ex in examples:
        assert 1 <= len(ex.rounds) <= 2
        assert 2 <= len(ex.rounds[0]) <= 4
        assert all(len(r) == 1 for r in ex.rounds[1:])


def test_about_half_have_a_summary_round(examples: list[Example]) -> None:
    """Round 2 appears in roughly half of the examples."""
    share = sum(len(ex.rounds) == 2 for ex in examples) / len(examples)
    assert 0.4 <= share <= 0.6


def test_topics_are_short_and_digit_free(examples: list[Example]) -> None:
    """Every topic is 1-3 words with no digits (a plan item's length follows its topic)."""
    for ex in examples:
        for s in _sections(ex):
            assert 1 <= len(s.topic.split()) <= 3
            assert not re.search(r"\d", s.topic)


def test_section_is_one_sentence_of_bounded_length(examples: list[Example]) -> None:
    """Each section text is one sentence of about 6-20 words (never fewer than 5)."""
    for ex in examples:
        for s in _sections(ex):
            assert 5 <= len(s.text.split()) <= 20, s.text
            assert s.text[0].isupper() and s.text.endswith(".")
            assert s.text.count(". ") == 0


def test_answer_joins_sections_in_order(examples: list[Example]) -> None:
    """Example.answer is every section text, in order, joined with one space."""
    for ex in examples[:100]:
        assert ex.answer == " ".join(s.text for s in _sections(ex))


def test_round_one_states_every_fact(examples: list[Example]) -> None:
    """Each fact value is written verbatim in some round-1 section, so round 2 is redundant."""
    for ex in examples:
        first = " ".join(s.text for s in ex.rounds[0]).lower()
        for f in ex.facts:
            assert f.value.lower() in first, (f, first)


def test_summary_restates_the_name(examples: list[Example]) -> None:
    """The round-2 sentence mentions the entity by name and at least one fact value."""
    for ex in examples:
        for (section,) in ex.rounds[1:]:
            assert ex.name in section.text
            assert any(f.value.lower() in section.text.lower() for f in ex.facts)


def test_instruction_wording_varies(examples: list[Example]) -> None:
    """The sentence before "Facts:" takes several forms, not one template."""
    forms = {ex.prompt.split(" Facts:")[0].replace(ex.name, "X")
             for ex in examples if ex.kind == "city"}
    assert len(forms) >= 5


def test_vocabulary_is_modest(big_splits: dict[str, list[Example]]) -> None:
    """Apart from made-up names and numbers, a few hundred distinct words make up the data."""
    words = set()
    for ex in big_splits["train"]:
        for w in (ex.prompt + " " + ex.answer).split():
            if not w[0].isupper() and not re.search(r"\d", w):
                words.add(w.strip(".,;:").lower())
    assert 100 <= len(words) <= 800


def test_jsonl_round_trip(tmp_path: Path, examples: list[Example]) -> None:
    """write_jsonl then read_jsonl gives the same examples; `instruction` holds the prompt."""
    path = tmp_path / "notes.jsonl"
    write_jsonl(examples[:50], path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50
    assert read_jsonl(path) == examples[:50]
    first = json.loads(lines[0])
    assert first["instruction"] == examples[0].prompt
    assert first["answer"] == examples[0].answer
    assert first["facts"] == [[f.key, f.value] for f in examples[0].facts]
    assert [[s["topic"] for s in r] for r in first["rounds"]] == [
        [s.topic for s in r] for r in examples[0].rounds
    ]
