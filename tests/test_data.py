"""Spec of `pdiff.notes.data`, the "notes to text" generator: one invariant per test.

The generator must be deterministic, keep held-out entity names (and extra keys) out of
training, give facts in every form people type them, copy every fact of the prompt exactly into
its reference answer, and keep the shapes Planned Diffusion trains on (4-6 sections of 2-3
sentences in round 1; a one-sentence summary round only when the prompt asks for one).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from pdiff.notes import data
from pdiff.notes.checker import parse_facts
from pdiff.notes.data import (
    FORMS,
    KINDS,
    SPLITS,
    TASKS,
    Example,
    make_example,
    make_name,
    make_split,
    name_split,
    read_jsonl,
    write_jsonl,
)
from pdiff.notes.lexicon import ATTR_KEYS, EXTRA_KEYS, MORE_EXTRA_KEYS, TOPICS

N = 1500  # examples per split for the shape checks


def _extras(ex: Example) -> set[str]:
    """The keys of `ex`'s extra details: every key that is not an attribute's."""
    return {f.key for f in ex.facts if f.key not in ATTR_KEYS}


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
    """The entity name appears in the prompt, and the kind is a known one."""
    for ex in examples:
        assert ex.name in ex.prompt
        assert ex.kind in KINDS


def test_every_kind_occurs(examples: list[Example]) -> None:
    """All entity kinds are generated."""
    assert {ex.kind for ex in examples} == set(KINDS)


@pytest.mark.parametrize(("split", "task", "fewest"),
                         [("heldout", "v5", 8), ("train", "v4", 8), ("train", "v5", 4)])
def test_four_or_eight_to_seventeen_facts(split: str, task: str, fewest: int) -> None:
    """Each prompt gives 8 to 17 facts with distinct keys; task v5's training prompts (with
    one-fact sections) from 4."""
    examples = make_split(split, N, seed=3, task=task)
    assert min(len(ex.facts) for ex in examples) == fewest
    for ex in examples:
        assert fewest <= len(ex.facts) <= 17
        assert len({f.key for f in ex.facts}) == len(ex.facts)


def test_every_fact_form_occurs(examples: list[Example]) -> None:
    """All six ways of giving facts are generated, each often enough to learn."""
    counts = {form: sum(ex.form == form for ex in examples) for form in FORMS}
    assert all(n >= len(examples) / 12 for n in counts.values()), counts


_FORM_MARKS = {  # what each form looks like in the prompt
    "facts": lambda p: re.search(r"(Facts|Notes|Details|Information): \w[^,]*: [^,]*;", p),
    "notes": lambda p: re.search(r"(from these notes|Notes): \w[^;]*: [^;]*, ", p),
    "bullets": lambda p: re.search(r"\n[-*\u2022] \w[^\n]*: ", p),
    "equals": lambda p: " = " in p and ": " not in p,
    "commas": lambda p: re.search(r": \w[^;]*: [^;]*, ", p) and "from these notes" not in p,
    "sentences": lambda p: ":" not in p and "=" not in p and re.search(r"\b(Its|It|\w+'s) ", p),
}


@pytest.mark.parametrize("form", FORMS)
def test_prompt_has_the_shape_of_its_form(examples: list[Example], form: str) -> None:
    """A prompt of each form looks like that form (headings, separators, bullets, sentences)."""
    for ex in [e for e in examples if e.form == form]:
        assert _FORM_MARKS[form](ex.prompt), ex.prompt


@pytest.mark.parametrize("form", FORMS)
def test_prompt_facts_parse_back(examples: list[Example], form: str) -> None:
    """Every form's facts read back from the prompt, in order: key and value for "key: value"
    forms; the value for sentences, where a phrase shared by two key names reads as one of them
    ("It lives in large flocks" may read as "lives in: large flocks", the tail of the value)."""
    for ex in [e for e in examples if e.form == form]:
        got = parse_facts(ex.prompt)
        if form == "sentences":
            assert len(got) == len(ex.facts), ex.prompt
            assert all(w.value.endswith(g.value) for g, w in zip(got, ex.facts)), ex.prompt
        else:
            assert got == ex.facts, ex.prompt


def test_instruction_comes_before_or_after(examples: list[Example]) -> None:
    """The instruction opens the prompt in most examples and closes it in the others."""
    opens = sum(ex.prompt.split()[0] in {"Write", "Describe", "Give", "Tell", "Summarise",
                                         "Introduce"} for ex in examples)
    assert 0.5 * len(examples) < opens < 0.9 * len(examples)


def test_key_names_vary(examples: list[Example]) -> None:
    """The same attribute is typed under different names ("founded" / "established in",
    "known for" / "famous for", "maker" / "made by", "job" / "works as")."""
    keys = {f.key for ex in examples for f in ex.facts}
    for pair in (("founded", "established in"), ("known for", "famous for"), ("maker", "made by"),
                 ("job", "works as")):
        assert set(pair) <= keys, pair


@pytest.mark.parametrize("char", [";", ":", "=", ",", "<", ">", ".", "\n"])
def test_fact_values_avoid_separator_chars(examples: list[Example], char: str) -> None:
    """No fact key or value contains a character that would break a "key: value" list."""
    for ex in examples:
        for f in ex.facts:
            assert char not in f.value and char not in f.key


def test_round_shapes(examples: list[Example]) -> None:
    """Round 1 has 4-7 sections (4-6 fact groups and maybe extra details); an optional round 2
    has exactly one; there is no round 3."""
    for ex in examples:
        assert 1 <= len(ex.rounds) <= 2
        assert 4 <= len(ex.rounds[0]) <= 7
        assert all(len(r) == 1 for r in ex.rounds[1:])


def test_summary_round_only_when_asked(examples: list[Example]) -> None:
    """A summary round follows exactly the prompts that ask for one (about 1 in 5)."""
    for ex in examples:
        assert (len(ex.rounds) == 2) == ("summary" in ex.prompt), ex.prompt
    share = sum(len(ex.rounds) == 2 for ex in examples) / len(examples)
    assert 0.12 <= share <= 0.28


def test_summary_is_one_short_sentence(examples: list[Example]) -> None:
    """The round-2 summary is one sentence of at most 20 words that names the entity and
    restates one fact value."""
    for ex in examples:
        for (section,) in ex.rounds[1:]:
            assert len(section.text.split()) <= 20 and section.text.count(". ") == 0
            assert ex.name in section.text
            assert any(f.value.lower() in section.text.lower() for f in ex.facts)


def test_topics_are_short_and_digit_free(examples: list[Example]) -> None:
    """Every topic is 1-4 words with no digits (a plan item's length follows its topic)."""
    for ex in examples:
        for s in _sections(ex):
            assert 1 <= len(s.topic.split()) <= 4
            assert not re.search(r"\d", s.topic)


def _values_in(text: str, ex: Example) -> int:
    return sum(f.value.lower() in text.lower() for f in ex.facts)


def test_sections_are_two_or_three_sentences_of_two_to_four_facts(examples: list[Example]) -> None:
    """Each fact-group section is 2-3 sentences stating 2-4 facts, 8-50 words (task v5's training
    split: also one sentence of one fact); the optional extra-details section states 1-2 facts,
    one sentence each."""
    fewest = 1 if name_split(examples[0].name) == "train" else 2
    for ex in examples:
        for s in ex.rounds[0]:
            sentences = len(re.findall(r"\.(?: |$)", s.text))
            assert s.text[0].isupper() and s.text.endswith(".")
            if s.topic in ("other details", "more facts", "extras"):
                assert 1 <= sentences <= 2 and 1 <= _values_in(s.text, ex) <= 2 + sentences
            else:
                assert fewest <= sentences <= 3, s.text
                assert fewest <= _values_in(s.text, ex), s.text
                assert 4 * fewest <= len(s.text.split()) <= 50, s.text


def test_answers_are_long_enough_for_the_plan_to_be_small(examples: list[Example]) -> None:
    """Answers average 60 to 160 words (about 150 tokens; task v5's training split, with its
    one-fact sections, from 50): a plan of 4-7 items is a small part."""
    fewest = 50 if name_split(examples[0].name) == "train" else 60
    mean = sum(len(ex.answer.split()) for ex in examples) / len(examples)
    assert fewest <= mean <= 160, mean


def test_answer_joins_sections_in_order(examples: list[Example]) -> None:
    """Example.answer is every section text, in order, joined with one space."""
    for ex in examples[:100]:
        assert ex.answer == " ".join(s.text for s in _sections(ex))


def test_round_one_copies_every_fact_exactly(examples: list[Example]) -> None:
    """Each fact value is written verbatim, case included, in some round-1 section."""
    for ex in examples:
        first = " ".join(s.text for s in ex.rounds[0])
        for f in ex.facts:
            assert f.value in first, (f, first)


def test_extra_keys_are_stated_as_given(examples: list[Example]) -> None:
    """A fact under an extra key ("motto") is stated with that key and its exact value."""
    seen = 0
    for ex in examples:
        for f in ex.facts:
            if f.key in _extras(ex):
                seen += 1
                assert f"{f.key} is {f.value}." in ex.answer
    assert seen > len(examples) / 10


def test_heldout_extra_keys_never_occur_in_training(big_splits: dict[str, list[Example]]) -> None:
    """Extra keys split like names: held-out prompts use keys training never sees."""
    train = set().union(*map(_extras, big_splits["train"]))
    heldout = set().union(*map(_extras, big_splits["heldout"]))
    assert train and heldout and not train & heldout
    # and the wide pool's own keys share no word with them (task v3's "colour code" stays)
    words = lambda keys: {w for k in keys for w in k.split()}  # noqa: E731
    assert not words(heldout) & words(train - set(EXTRA_KEYS))


def test_the_wide_pool_trains_on_many_keys(big_splits: dict[str, list[Example]]) -> None:
    """Training draws its extra details from the wide pool (task v4): over a hundred keys, most of
    them beyond task v3's 25, every one from the lexicon's two lists."""
    train = set().union(*map(_extras, big_splits["train"]))
    assert len(train) > 100 and len(train - set(EXTRA_KEYS)) > 75
    assert train <= set(EXTRA_KEYS) | set(MORE_EXTRA_KEYS)
    narrow = set().union(*map(_extras, make_split("train", 3000, seed=0, task="v3")))
    assert narrow <= set(EXTRA_KEYS) and len(narrow) < 30


@pytest.mark.parametrize("task", [t for t in TASKS if t != "v5"])  # v5: make_split's default
def test_the_task_leaves_heldout_prompts_alone(task: str) -> None:
    """Held-out prompts, the benchmark's and the learning curve's, are the same whichever task
    training uses; the training prompts are not."""
    assert make_split("heldout", 300, seed=0) == make_split("heldout", 300, seed=0, task=task)
    assert make_split("train", 300, seed=0) != make_split("train", 300, seed=0, task=task)


_NARROW_LETTERS = set("".join(data._ONSETS + data._VOWELS + data._ENDINGS))


def test_task_v5_trains_on_wider_names_and_one_fact_sections(big_splits: dict[str, list[Example]]) -> None:
    """Task v5's training names use letters task v4's never do ("Quillon", "Tillby") and lengths
    down to 3, all still from the training half of the name space; some sections state a single
    fact. The held-out split has neither."""
    for split, wide in (("train", True), ("heldout", False)):
        names = {ex.name for ex in big_splits[split]}
        odd = {n for n in names if set(n.lower()) - _NARROW_LETTERS}
        assert (len(odd) > len(names) / 5) == wide and bool(odd) == wide
        assert any(len(n) == 3 for n in names) == wide
        assert all(name_split(n) == split for n in names)
        one = [s for ex in big_splits[split] for s in ex.rounds[0]
               if s.text.count(". ") == 0 and s.topic != TOPICS["extra"][0]]
        assert (len(one) > len(big_splits[split])) == wide and bool(one) == wide


def test_instruction_wording_varies(examples: list[Example]) -> None:
    """The instruction takes several forms, not one template."""
    starts = {" ".join(ex.prompt.split()[:2]) for ex in examples if ex.kind == "city"}
    assert len(starts) >= 8


def test_vocabulary_is_modest(big_splits: dict[str, list[Example]]) -> None:
    """Apart from made-up names and numbers, a few hundred distinct words make up the data."""
    words = set()
    for ex in big_splits["train"]:
        for w in (ex.prompt + " " + ex.answer).split():
            if not w[0].isupper() and not re.search(r"\d", w):
                words.add(w.strip(".,;:").lower())
    assert 100 <= len(words) <= 1200


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


# ---- the canonical style (v3): the reference answer is a function of the prompt ----------


def test_prompts_do_not_depend_on_the_style() -> None:
    """Both styles draw the same prompts: only the reference answers differ."""
    canonical, varied = make_split("heldout", 200, seed=7), make_split("heldout", 200, seed=7, style="varied")
    assert [ex.prompt for ex in canonical] == [ex.prompt for ex in varied]
    assert [ex.facts for ex in canonical] == [ex.facts for ex in varied]
    assert sum(a.answer != b.answer for a, b in zip(canonical, varied)) > 150


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style must be one of"):
        make_split("train", 1, style="poetic")


def _attr_of(ex: Example, fact):
    from pdiff.notes.lexicon import ATTRS

    return next((a for a in ATTRS[ex.kind] if fact.key in a.keys), None)


def _facts_by_attr(ex: Example) -> dict:
    return {a: f for f in ex.facts if (a := _attr_of(ex, f)) is not None}


def test_the_same_facts_give_the_same_answer() -> None:
    """The canonical answer depends on the facts and the entity only, not on the order, the
    form or the key words the prompt gives them in: re-drawn with the facts in another order,
    under other key synonyms, the answer is unchanged."""
    from pdiff.notes import data

    changed = 0
    for ex in make_split("train", 300, seed=5):
        by_attr = _facts_by_attr(ex)
        chosen = list(by_attr)
        values = {a: f.value for a, f in by_attr.items()}
        extras = [f for f in ex.facts if f not in by_attr.values()]
        summary = len(ex.rounds) == 2
        subject = _first_subject(ex)
        possessive = f"{ex.name}'s" if ex.kind == "person" else "Its"
        random.Random(len(chosen)).shuffle(chosen)
        again = data._canonical_rounds(ex.kind, chosen, values, extras, summary, subject, possessive)
        changed += chosen != list(by_attr)
        assert again == ex.rounds, ex.prompt
    assert changed > 250


def _first_subject(ex: Example) -> str:
    """The entity as the answer names it first: "Velora", "The Velora lamp", "The Velora"."""
    text = ex.rounds[0][0].text
    if ex.kind in ("city", "person"):
        return ex.name
    words = text.split()
    return " ".join(words[:3] if ex.kind == "product" else words[:2])


def test_each_attribute_is_stated_one_way(big_splits: dict[str, list[Example]]) -> None:
    """Every fact is said with its attribute's first predicate, and never with another one."""
    for ex in big_splits["train"][:1000]:
        for attr, fact in _facts_by_attr(ex).items():
            assert attr.preds[0].format(v=fact.value) in ex.rounds[0][0].text + " " + ex.answer
            assert not any(p.format(v=fact.value) in ex.answer for p in attr.preds[1:]
                           if p.format(v=fact.value) not in attr.preds[0].format(v=fact.value))


def test_sections_follow_the_lexicon_order_with_fixed_topics(big_splits: dict[str, list[Example]]) -> None:
    """Sections come in the kind's group order, each under its group's first topic, and facts
    inside a section in the lexicon's order."""
    from pdiff.notes.lexicon import ATTRS, TOPICS

    for ex in big_splits["train"][:1000]:
        by_attr = _facts_by_attr(ex)
        groups = list(dict.fromkeys(a.group for a in ATTRS[ex.kind] if a in by_attr))
        sections = [s for s in ex.rounds[0] if s.topic != TOPICS["extra"][0]]
        assert [s.topic for s in sections] == [TOPICS[g][0] for g in groups]
        for group, section in zip(groups, sections):
            members = [a for a in ATTRS[ex.kind] if a in by_attr and a.group == group]
            at = [section.text.index(a.preds[0].format(v=by_attr[a].value)) for a in members]
            assert at == sorted(at), section.text


def test_subject_rule_is_fixed(big_splits: dict[str, list[Example]]) -> None:
    """The entity's name opens every section; later sentences of a section open with "It" (a
    person is always named); summaries open with "In short,"."""
    for ex in big_splits["train"][:1000]:
        first = _first_subject(ex)
        for s in ex.rounds[0]:
            sentences = re.split(r"(?<=\.) ", s.text)
            if s.topic == "other details":
                continue
            assert sentences[0].startswith(first + " "), s.text
            again = first if ex.kind == "person" else "It"
            assert all(x.startswith(again + " ") for x in sentences[1:]), s.text
        for (summary,) in ex.rounds[1:]:
            assert summary.text.startswith("In short, ")


def test_extra_details_follow_the_prompt_order(big_splits: dict[str, list[Example]]) -> None:
    """Extra details are stated in the order the prompt gives them."""
    seen = 0
    for ex in big_splits["train"]:
        extras = [f for f in ex.facts if f.key in _extras(ex)]
        if len(extras) == 2:
            seen += 1
            assert ex.answer.index(f"{extras[0].key} is {extras[0].value}.") < ex.answer.index(
                f"{extras[1].key} is {extras[1].value}.")
    assert seen > 50
