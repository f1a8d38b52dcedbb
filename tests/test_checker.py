"""Spec of `pdiff.notes.checker`: one invariant per test.

Reference answers from `pdiff.notes.data` are the fixed point: they state every fact and are clean.
Each damage a model can do (a dropped span, a wrong number, a leftover tag or mask, a repeated
span) must lower the score and be named in `problems`; no string input may crash the checker.
"""

from __future__ import annotations

import random
import re

import pytest

from pdiff.notes.checker import (
    FactResult,
    Score,
    fact_results,
    fact_stated,
    parse_facts,
    score,
)
from pdiff.notes.data import FORMS, SPLITS, Example, Fact, make_split
from pdiff.notes.lexicon import ATTRS, PRODUCTS, Attr
from pdiff.notes.sentences import format_problems
from pdiff.tags import CONTROL_TAGS


@pytest.fixture(scope="module", params=SPLITS)
def examples(request: pytest.FixtureRequest) -> list[Example]:
    return make_split(request.param, 1000, seed=11)


def _numeric(ex: Example) -> Fact | None:
    return next((f for f in ex.facts if re.match(r"\d+", f.value)), None)


def _with_number(fact: Fact, number: str) -> str:
    return re.sub(r"^\d+", number, fact.value)


def test_reference_answers_score_full_marks(examples: list[Example]) -> None:
    """Every fact of the prompt is stated in the reference answer, and its format is clean."""
    for ex in examples:
        s = score(ex.prompt, ex.answer)
        assert (s.facts_total, s.facts_correct) == (len(ex.facts), len(ex.facts))
        assert s.fact_accuracy == 1.0 and s.format_ok and s.value == 1.0, s.problems
        assert s.problems == ()


def test_dropping_a_section_lowers_the_score(examples: list[Example]) -> None:
    """Without one round-1 section (and the summary, which may restate it) facts go missing,
    unless each of its values is also a word of another section ("Its brand colour is silver."
    beside "known for its silver jewellery"): the checker reads values, not keys."""
    dropped = 0
    for ex in examples[:300]:
        for i, section in enumerate(ex.rounds[0]):
            kept = [s.text for j, s in enumerate(ex.rounds[0]) if j != i]
            values = [f.value for f in ex.facts if f.value in section.text]
            if all(re.search(rf"\b{re.escape(v)}\b", " ".join(kept)) for v in values):
                continue
            dropped += 1
            s = score(ex.prompt, " ".join(kept))
            assert s.fact_accuracy < 1.0 and s.value < 1.0
            assert any(p.startswith("missing fact") for p in s.problems)
    assert dropped > 1000


def test_wrong_number_lowers_the_score(examples: list[Example]) -> None:
    """Changing a numeric fact's value in the answer makes that fact count as missing."""
    checked = 0
    for ex in examples:
        fact = _numeric(ex)
        if fact is None or ex.answer.count(fact.value) != 1:  # "2" also inside "12 years"
            continue
        wrong = str(int(re.match(r"\d+", fact.value).group(0)) + 1)
        answer = ex.answer.replace(fact.value, _with_number(fact, wrong))
        s = score(ex.prompt, answer)
        assert s.facts_correct == len(ex.facts) - 1
        # (in the sentence form a key may read as its alias: "founded" for "founded in")
        assert any(p.startswith("missing fact") and p.endswith(f": {fact.value}") for p in s.problems)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("template", ["{v}1", "1{v}", "{v}.5", "{v},001", "9,{v}", "{v}x"])
def test_number_inside_a_longer_number_does_not_count(examples: list[Example],
                                                      template: str) -> None:
    """A number is matched as a whole word: "4200" is not found in "42001" or "14200"."""
    for ex in examples[:200]:
        fact = _numeric(ex)
        if fact is None:
            continue
        number = re.match(r"\d+", fact.value).group(0)
        glued = template.format(v=number)
        assert not fact_stated(fact, f"It has {_with_number(fact, glued)} in all.")


@pytest.mark.parametrize("template", ["{v}.", "({v})", "{v}, more", '"{v}"'])
def test_number_next_to_punctuation_counts(template: str) -> None:
    """Sentence punctuation around a value does not hide it."""
    for ex in make_split("train", 200, seed=2):
        for fact in ex.facts:
            assert fact_stated(fact, "We know " + template.format(v=fact.value))


def test_thousands_separator_matches() -> None:
    """A number written with thousands separators still counts ("4,200" states "4200")."""
    for ex in make_split("train", 300, seed=4):
        for fact in ex.facts:
            if fact.value.isdigit() and len(fact.value) > 3:
                grouped = f"{int(fact.value):,}"
                assert fact_stated(fact, f"About {grouped} people live there.")


def test_matching_ignores_case(examples: list[Example]) -> None:
    """Upper-casing the whole answer changes nothing about which facts are stated."""
    for ex in examples[:200]:
        assert score(ex.prompt, ex.answer.upper()).fact_accuracy == 1.0


@pytest.mark.parametrize("tag", list(CONTROL_TAGS.values()))
def test_leftover_control_tag_is_flagged(examples: list[Example], tag: str) -> None:
    """Any control tag or mask left in the answer breaks the format and is named, once."""
    for ex in examples[:50]:
        first, *rest = [s.text for r in ex.rounds for s in r]
        s = score(ex.prompt, " ".join([first, tag, *rest]))
        assert not s.format_ok
        assert [p for p in s.problems if p.startswith("leftover")] == [
            f"leftover control tag {tag} (1x)"
        ]
        assert s.value == pytest.approx(0.5 * s.fact_accuracy)


@pytest.mark.parametrize("fragment", ["<promise>", "<topic>", "<|endoftext|>", "[MASK]"])
def test_leftover_tag_fragment_is_flagged(fragment: str) -> None:
    """Pieces of tags and other special tokens are leftovers too."""
    ex = make_split("heldout", 1, seed=1)[0]
    s = score(ex.prompt, ex.answer + " " + fragment)
    assert not s.format_ok and any(fragment in p for p in s.problems)


def test_duplicated_sentence_is_flagged(examples: list[Example]) -> None:
    """A reference answer with one of its sentences repeated later fails the format check."""
    for ex in examples[:200]:
        texts = [s.text for r in ex.rounds for s in r]
        answer = " ".join(texts + [texts[0].upper()])
        s = score(ex.prompt, answer)
        assert not s.format_ok
        assert any(p.startswith("repeated sentence") for p in s.problems)
        assert s.fact_accuracy == 1.0


def test_short_repeated_sentence_is_allowed() -> None:
    """Sentences of fewer than four words may repeat (they are not spans worth flagging)."""
    assert format_problems("It is red. The lamp is made of steel. It is red.") == []


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_stuttered_phrase_is_flagged(examples: list[Example], n: int) -> None:
    """A phrase repeated back to back inside a sentence (one word: three times) is flagged."""
    for ex in examples[:100]:
        words = ex.answer.split()
        times = 3 if n == 1 else 2
        answer = " ".join(words[:2] + words[2:2 + n] * times + words[2 + n:])
        assert any(p.startswith("repeated span") for p in score(ex.prompt, answer).problems)


@pytest.mark.parametrize("answer", ["", "   ", "\n\t"])
def test_empty_answer_scores_zero(examples: list[Example], answer: str) -> None:
    """An empty answer states no facts and fails the format check."""
    s = score(examples[0].prompt, answer)
    assert (s.facts_correct, s.format_ok, s.value) == (0, False, 0.0)
    assert "empty answer" in s.problems


@pytest.mark.parametrize("prompt", ["", "Write a poem about the sea.", "facts are facts."])
def test_prompt_without_facts(prompt: str) -> None:
    """No "Facts:" list means nothing to verify: zero facts and fact_accuracy 0.0."""
    s = score(prompt, "The sea is wide and deep tonight.")
    assert parse_facts(prompt) == ()
    assert (s.facts_total, s.fact_accuracy) == (0, 0.0)
    assert s.format_ok


def _messy(ex: Example, sep: str, kv: str, head: str, tail: str) -> str:
    items = sep.join(f"{f.key.upper()}{kv}{f.value}" for f in ex.facts)
    return f"please   describe {ex.name} {head}{items}{tail}"


@pytest.mark.parametrize(
    ("sep", "kv", "head", "tail"),
    [
        (" ;", " :  ", "facts :", " ."),
        (";\n", ":", "\nFacts:\n", ".\nKeep it short."),
        ("\n- ", " = ", "Facts:\n- ", "\n"),
        ("; ", ": ", "FACTS - ", ". Thanks a lot."),
        ("\n\n", "\t:\t", "Facts:  ", ""),
    ],
)
def test_parse_facts_reads_hand_typed_lists(sep: str, kv: str, head: str, tail: str) -> None:
    """Odd spacing, upper-case keys, new lines, bullets, "=" and a trailing sentence all parse."""
    for ex in make_split("heldout", 100, seed=9):
        assert parse_facts(_messy(ex, sep, kv, head, tail)) == ex.facts


def test_parse_facts_reads_a_literal_typed_prompt() -> None:
    """The spec's own example, typed carelessly, parses to its four facts in order."""
    prompt = ("write a short profile of the city Velora.  facts:country :Dramen;population:  4200 ;"
              "  river: the   Osk;known for : glass lanterns .")
    assert parse_facts(prompt) == (
        Fact("country", "Dramen"), Fact("population", "4200"),
        Fact("river", "the Osk"), Fact("known for", "glass lanterns"),
    )


def test_parse_facts_reads_every_list_in_order() -> None:
    """Facts given in two places of one prompt all count, in the order they appear."""
    a, b = [ex for ex in make_split("train", 50, seed=6) if ex.form != "sentences"][:2]
    prompt = a.prompt + "\n" + b.prompt
    assert parse_facts(prompt) == a.facts + tuple(f for f in b.facts if f.key not in {g.key for g in a.facts})


@pytest.mark.parametrize(
    ("prompt", "facts"),
    [
        ("Write about Velora. Facts: country: Dramen; population: 4200.",
         [("country", "Dramen"), ("population", "4200")]),
        ("Describe the city Velora from these notes: founded: 1843, famous for: glass lanterns.",
         [("founded", "1843"), ("famous for", "glass lanterns")]),
        ("Write a profile of Mira.\n- works as: baker\n* home town: Kest\n\u2022 age: 41",
         [("works as", "baker"), ("home town", "Kest"), ("age", "41")]),
        ("job = nurse\nhobby = chess\nWrite a short text about Tomo.",
         [("job", "nurse"), ("hobby", "chess")]),
        ("Tell me about the Vark lamp: maker: Dovra, price: 40 dollars, colour: red.",
         [("maker", "Dovra"), ("price", "40 dollars"), ("colour", "red")]),
        ("The Velora river town. It was founded in 1843. Its motto is Onward. It is known for cheese.",
         [("founded", "1843"), ("motto", "Onward"), ("known for", "cheese")]),
        ("Mira's age is 41. Mira works as a baker. Write about Mira.",
         [("age", "41"), ("works as", "baker")]),
    ],
)
def test_parse_facts_reads_each_typed_form(prompt: str, facts: list[tuple[str, str]]) -> None:
    """Each way a visitor types facts parses to those facts: a "Facts:" tail, "from these
    notes", bullets, "=" lines before the instruction, commas, and short sentences."""
    assert parse_facts(prompt) == tuple(Fact(k, v) for k, v in facts)


def test_instruction_with_a_colon_is_not_a_fact() -> None:
    """A long lead-in before a colon ("Tell me about Velora: ...") is not read as a key."""
    assert parse_facts("Please tell me all about the town of Velora: it is old.") == ()


@pytest.mark.parametrize(
    "text",
    ["", "Facts:", "Facts: ;;; : ; :", "Facts: a:", "\x00\ud800<|mask|>", "Facts: é: ß; 名: 東京",
     "<" * 10_000, ": ; " * 5_000, "Facts: " + "k: v; " * 2_000],
)
def test_never_crashes_on_odd_strings(text: str) -> None:
    """Any string, as prompt or as answer, gives a Score with a value in [0, 1]."""
    for prompt, answer in ((text, text), (text, "x"), ("Facts: a: b.", text)):
        s = score(prompt, answer)
        assert isinstance(s, Score) and 0.0 <= s.value <= 1.0


def test_never_crashes_on_random_unicode() -> None:
    """Random code points, tags and separators in any mix never raise."""
    rng = random.Random(0)
    pieces = ["Facts:", ":", ";", ".", " ", "\n", "4200", *CONTROL_TAGS.values(), "é", "\u200b"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) if rng.random() < 0.5 else chr(rng.randrange(1, 0x2FFFF))
                       for _ in range(rng.randrange(0, 80)))
        s = score(text, text[::-1])
        assert 0 <= s.facts_correct <= s.facts_total


def test_huge_answer_is_scored() -> None:
    """A megabyte of answer is scored, and a fact buried in it is still found."""
    ex = make_split("train", 1, seed=3)[0]
    filler = " ".join(f"w{i}" for i in range(150_000))
    s = score(ex.prompt, filler + " " + ex.answer)
    assert s.fact_accuracy == 1.0


@pytest.mark.parametrize("format_ok", [True, False])
def test_value_halves_fact_accuracy_when_format_is_bad(format_ok: bool) -> None:
    """Score.value is fact_accuracy when the format is clean, half of it otherwise."""
    for ex in make_split("train", 50, seed=8):
        partial = " ".join(s.text for s in ex.rounds[0][1:])  # some facts missing
        answer = partial if format_ok else partial + " " + CONTROL_TAGS["mask"]
        s = score(ex.prompt, answer)
        assert s.format_ok is format_ok and 0.0 < s.fact_accuracy < 1.0
        assert s.value == (s.fact_accuracy if format_ok else s.fact_accuracy / 2)


# --- per-fact marks: correct, wrong, missing -----------------------------------------------------


def _attr_of(ex: Example, fact: Fact) -> Attr | None:
    fits = lambda a: not isinstance(a.values, tuple) or fact.value in a.values
    return next((a for a in ATTRS[ex.kind] if fact.key in a.keys and fits(a)), None)


def _other_value(ex: Example, fact: Fact) -> str | None:
    """Another value of the fact's own kind (another list word, number or name), not in the answer."""
    attr = _attr_of(ex, fact)
    pool = attr.values if attr is not None and isinstance(attr.values, tuple) else ()
    if attr is not None and attr.values == "use":
        pool = tuple(u for uses in PRODUCTS.values() for u in uses)
    if pool:
        return next((v for v in pool if v.lower() not in ex.answer.lower()), None)
    if re.match(r"\d", fact.value):
        return _with_number(fact, str(int(re.match(r"\d+", fact.value).group(0)) + 1))
    if re.fullmatch(r"(the )?[A-Z][a-z]+", fact.value):
        return re.sub(r"[A-Z][a-z]+$", "Quorbel", fact.value)
    return None


def _forms(split: str = "heldout", n: int = 600) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {form: [] for form in FORMS}
    for ex in make_split(split, n, seed=5):
        out[ex.form].append(ex)
    return out


FORM_EXAMPLES = _forms()


@pytest.mark.parametrize("form", FORMS)
def test_reference_answer_marks_every_fact_correct(form: str) -> None:
    """In every fact form, the reference answer states each fact: every mark is "correct"."""
    for ex in FORM_EXAMPLES[form]:
        results = fact_results(ex.prompt, ex.answer)
        assert [r.fact for r in results] == list(parse_facts(ex.prompt))
        assert len(results) == len(ex.facts)
        assert all(r.mark == "correct" for r in results), results


@pytest.mark.parametrize("form", FORMS)
def test_another_value_of_the_same_kind_is_marked_wrong(form: str) -> None:
    """Replacing one fact's value in the answer with another value of its kind marks that fact
    "wrong", names the value said, and leaves the other facts' marks as they were."""
    checked = 0
    for ex in FORM_EXAMPLES[form]:
        before = None  # the reference answer's marks: read once per example, when first needed
        for i, fact in enumerate(parse_facts(ex.prompt)):
            other = _other_value(ex, fact)
            hits = len(re.findall(rf"(?<!\w){re.escape(fact.value)}(?!\w)", ex.answer))
            if other is None or hits != 1:
                continue
            answer = re.sub(rf"(?<!\w){re.escape(fact.value)}(?!\w)", other, ex.answer)
            results = fact_results(ex.prompt, answer)
            assert results[i].mark == "wrong", (fact, answer)
            assert results[i].said.lower() == other.lower()
            before = fact_results(ex.prompt, ex.answer) if before is None else before
            assert [r.mark for j, r in enumerate(results) if j != i] == [
                r.mark for j, r in enumerate(before) if j != i]
            checked += 1
    assert checked >= 50, checked


@pytest.mark.parametrize("form", FORMS)
def test_a_dropped_section_marks_its_facts_missing(form: str) -> None:
    """Without a section, a fact whose value and attribute it alone stated is "missing"."""
    checked = 0
    for ex in FORM_EXAMPLES[form][:40]:
        if len(ex.rounds) > 1:  # a summary may restate a fact
            continue
        for i, section in enumerate(ex.rounds[0]):
            answer = " ".join(s.text for j, s in enumerate(ex.rounds[0]) if j != i)
            for r in fact_results(ex.prompt, answer):
                if fact_stated(r.fact, section.text) and not fact_stated(r.fact, answer):
                    assert r.mark == "missing", (r, answer)
                    checked += 1
    assert checked >= 20, checked


@pytest.mark.parametrize(("answer", "marks"), [
    ("It has a population of 4200.", ["correct", "missing"]),
    ("It has a population of many.", ["missing", "missing"]),  # not a number: not said
    ("It is known for its hot weather.", ["missing", "missing"]),  # not a "known for" value
    ("It was founded by a group of monks.", ["missing", "missing"]),  # not a name
    ("It was founded by Kran.", ["missing", "wrong"]),
    ("Its founder is Kran. It has a population of 900.", ["wrong", "wrong"]),
])
def test_wrong_means_the_attribute_said_with_another_value_of_its_kind(answer, marks) -> None:
    """A value of another kind, or a phrase of another attribute, is not a wrong statement."""
    prompt = "Tell me about the city Lagil. Facts: population: 4200; founder: Stel."
    assert [r.mark for r in fact_results(prompt, answer)] == marks


def test_an_unknown_key_is_wrong_when_said_with_another_value() -> None:
    """A key the data does not know ("Its shoe size is 44.") is judged by "<key> is <value>"."""
    prompt = "Write about a person named Aro. Facts: shoe size: 42."
    assert fact_results(prompt, "Aro's shoe size is 44.")[0] == FactResult(Fact("shoe size", "42"),
                                                                           "wrong", "44")
    assert fact_results(prompt, "Aro's shoe size is 42.")[0].mark == "correct"


@pytest.mark.parametrize("prompt", ["", "Explain how tides work.", None, 7])
def test_no_facts_no_marks(prompt) -> None:
    """A prompt without facts (or not a string) has no marks, and never raises."""
    assert fact_results(prompt, "Some answer.") == ()


def test_marks_agree_with_the_score(examples: list[Example]) -> None:
    """The facts marked "correct" are the ones `score` counts as stated."""
    for ex in examples[:200]:
        answer = " ".join(s.text for s in ex.rounds[0][1:])
        marks = fact_results(ex.prompt, answer)
        assert sum(r.mark == "correct" for r in marks) == score(ex.prompt, answer).facts_correct
