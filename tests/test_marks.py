"""Spec of the checker's per-fact marks beyond correct and missing (`fact_results`), and of the
questions that `parse_facts` does not read as facts (issue 34).

- "wrong": the answer says the fact's attribute with another value, also when the prompt's value
  is not one of the data's ("climate: foggy" answered "a dry climate") and when the answer's
  number is mangled ("1 160" for 1620).
- "unclear": the value is there (`score` counts it), but only inside sentences that are broken:
  a one-letter stub, a word that is no word ("mostlys"), a stutter or a leftover tag.
- A question ("What is the capital of France?") states no fact; a "key: value" item in it does.
"""

from __future__ import annotations

import re

import pytest

from pdiff.notes.checker import fact_results, fact_stated, invented_facts, parse_facts, score
from pdiff.notes.data import Example, Fact, make_split
from pdiff.notes.lexicon import ATTRS, Attr, value_shape
from pdiff.notes.sentences import data_words, sentence_flaw
from pdiff.tags import CONTROL_TAGS

HELDOUT = make_split("heldout", 300, seed=12)
LIST_ATTRS = [a for kind in ATTRS.values() for a in kind if isinstance(a.values, tuple)]
NUMERIC_ATTRS = [a for kind in ATTRS.values() for a in kind if value_shape(a).startswith(r"\d")]
FOGGY = "foggy"  # the issue's value: a word of no attribute's list


# --- wrong: another value said ------------------------------------------------------------------


def test_the_issues_foggy_climate_said_dry_is_wrong() -> None:
    """The issue's case: "climate: foggy", and the answer gives the city a dry climate."""
    prompt = "Tell me about the city Lagil. Facts: climate: foggy; population: 4200."
    answer = "Lagil has a dry climate for most of the year. It has a population of 4200."
    climate = fact_results(prompt, answer)[0]
    assert (climate.mark, climate.said) == ("wrong", "dry")
    assert invented_facts(prompt, answer) == ()  # a given attribute: wrong, not invented


@pytest.mark.parametrize("attr", LIST_ATTRS, ids=lambda a: a.keys[0])
def test_a_value_outside_the_list_is_wrong_when_a_list_value_is_said(attr: Attr) -> None:
    """A fact whose value is no word of its attribute's list still names the attribute: the
    answer saying the attribute with a list value marks it "wrong" and names that value."""
    assert not any(FOGGY in a.values for a in LIST_ATTRS)  # the premise: foggy is in no list
    prompt = f"Write about Aro. Facts: {attr.keys[0]}: {FOGGY}."
    for pred in attr.preds:
        said = attr.values[0]
        [result] = fact_results(prompt, f"Aro {pred.format(v=said)}.")
        assert (result.mark, result.said.lower()) == ("wrong", said.lower()), pred
        assert fact_results(prompt, f"Aro {pred.format(v=FOGGY)}.")[0].mark == "correct"


def test_a_value_read_with_the_keys_preposition_names_no_other_attribute() -> None:
    """ "It lives in large flocks." reads as "lives in: large flocks" (a social life, not a
    habitat): an answer saying only where it lives leaves that fact missing, not wrong."""
    prompt = "Tell me about an animal called the Sindle. It lives in large flocks."
    assert parse_facts(prompt) == (Fact("lives in", "large flocks"),)  # the premise
    [result] = fact_results(prompt, "The Sindle lives in forests all year.")
    assert result.mark == "missing"


def _numeric(ex: Example) -> list[tuple[int, Fact, str]]:
    """(index, fact, its number) of each numeric fact of a known attribute said once in the answer."""
    out = []
    for i, fact in enumerate(parse_facts(ex.prompt)):
        number = re.match(r"\d{2,}", fact.value)
        attrs = [a for a in NUMERIC_ATTRS if fact.key in a.keys]
        if number and attrs and len(re.findall(rf"(?<!\d){number[0]}(?!\d)", ex.answer)) == 1:
            out.append((i, fact, number[0]))
    return out


def test_the_issues_1_160_for_1620_is_wrong() -> None:
    """The issue's case: founded in 1620, and the answer writes "1 160"."""
    prompt = "Tell me about the city Lagil. Facts: founded: 1620."
    assert fact_results(prompt, "Lagil was founded in 1 160.")[0].said == "1 160"
    assert fact_results(prompt, "Lagil was founded in 1 160.")[0].mark == "wrong"


@pytest.mark.parametrize("spaced", [True, False])
def test_another_number_in_any_digits_is_wrong(spaced: bool) -> None:
    """A numeric fact's number replaced by another one, its digits spaced ("1 621") or too many
    for the attribute's shape ("16200" for a year), marks the fact "wrong" and names it; `score`
    counts it missing, as before."""
    checked = 0
    for ex in HELDOUT:
        correct = None  # the reference answer's count: read once per example, when first needed
        for i, _, number in _numeric(ex):
            other = str(int(number) + 1) if spaced else number + "0"
            written = f"{other[0]} {other[1:]}" if spaced else other
            answer = re.sub(rf"(?<!\d){number}(?!\d)", written, ex.answer)
            result = fact_results(ex.prompt, answer)[i]
            assert result.mark == "wrong" and result.said.replace(" ", "").startswith(other), answer
            correct = score(ex.prompt, ex.answer).facts_correct if correct is None else correct
            assert score(ex.prompt, answer).facts_correct == correct - 1
            checked += 1
    assert checked >= 100, checked


def test_the_facts_own_digits_only_spaced_are_not_another_value() -> None:
    """ "16 20" for 1620 says no other number: the fact is missing (not stated), not wrong."""
    checked = 0
    for ex in HELDOUT:
        for i, _, number in _numeric(ex):
            answer = re.sub(rf"(?<!\d){number}(?!\d)", f"{number[:2]} {number[2:]}".strip(), ex.answer)
            if len(number) > 2:
                assert fact_results(ex.prompt, answer)[i].mark == "missing", answer
                checked += 1
    assert checked >= 100, checked


def test_a_part_of_the_facts_value_is_no_other_value() -> None:
    """An answer giving a part of the fact's value (here a value that ran on into the next
    sentence of a badly typed prompt) contradicts nothing: the fact is missing, not wrong."""
    facts = (Fact("fable", "38702 The radio is called Eesnaia"),)
    assert fact_results("", "Its fable is 38702.", facts)[0].mark == "missing"
    assert fact_results("", "Its fable is 4.", facts)[0].mark == "wrong"


# --- unclear: stated only in a broken sentence ----------------------------------------------------


def test_the_issues_mangled_sentence_is_not_cleanly_stated() -> None:
    """The issue's case: the value is there, in "It w made mostlys about 850 grams."; the mark
    says so, with the sentence, while `score` still counts the fact as stated."""
    prompt = "Tell me about the Vark lamp. Facts: weight: 850 grams; colour: red."
    sentence = "It w made mostlys about 850 grams."
    answer = f"{sentence} The Vark lamp is red in colour."
    weight, colour = fact_results(prompt, answer)
    assert (weight.mark, weight.said) == ("unclear", sentence) and weight.why
    assert colour.mark == "correct"
    assert score(prompt, answer).facts_correct == 2


def _stub(sentence: str, word: str) -> str:
    return sentence.replace(f" {word} ", f" {word} w ", 1)


def _glued(sentence: str, word: str) -> str:
    return sentence.replace(f" {word} ", f" {word}s ", 1)


def _stutter(sentence: str, word: str) -> str:
    return sentence.replace(f" {word} ", f" {word} {word} {word} ", 1)


def _tag(sentence: str, word: str) -> str:
    return sentence.replace(f" {word} ", f" {word} {CONTROL_TAGS['mask']} ", 1)


def _clean_sentences(ex: Example) -> list[tuple[str, str]]:
    """(sentence, a lower-case word inside it that no value holds) of the answer's sentences."""
    values = " ".join(f.value.lower() for f in ex.facts)
    out = []
    for sentence in re.split(r"(?<=\.) ", ex.answer):
        words = sentence.split()[1:-1]
        word = next((w for w in words if w.islower() and w not in values and w + "s" not in data_words()
                     and w not in ("a", "an")), None)
        if word is not None and ex.answer.count(sentence) == 1:
            out.append((sentence, word))
    return out


@pytest.mark.parametrize("damage", [_stub, _glued, _stutter, _tag])
def test_a_value_only_in_a_broken_sentence_is_unclear(damage) -> None:
    """Breaking one sentence of a reference answer (a one-letter stub, a word with a letter
    glued on, a stutter, a leftover mask) marks each fact stated only there "unclear", with the
    broken sentence and its flaw; every other mark stays as it was, and `score` still counts
    those facts as stated."""
    checked = 0
    for ex in HELDOUT[:120]:
        clean = fact_results(ex.prompt, ex.answer)
        for sentence, word in _clean_sentences(ex):
            broken = damage(sentence, word)
            answer = ex.answer.replace(sentence, broken, 1)
            results = fact_results(ex.prompt, answer)
            for r, before in zip(results, clean):
                alone = fact_stated(r.fact, broken) and not fact_stated(r.fact, answer.replace(broken, ""))
                if alone:
                    assert (r.mark, r.said) == ("unclear", broken) and r.why, (r, broken)
                    checked += 1
                else:
                    assert r == before, (r, broken)
            assert score(ex.prompt, answer).facts_correct == len(ex.facts)
    assert checked >= 100, checked


def test_a_value_also_in_a_clean_sentence_is_correct() -> None:
    """A fact stated in a broken sentence and again in a clean one is marked correct."""
    prompt = "Tell me about the Vark lamp. Facts: weight: 850 grams."
    answer = "It w made mostlys about 850 grams. It weighs about 850 grams."
    assert fact_results(prompt, answer)[0].mark == "correct"


@pytest.mark.parametrize(("task", "style"), [("v5", "canonical"), ("v6", "canonical"), ("v5", "varied")])
def test_reference_answers_have_no_broken_sentence(task: str, style: str) -> None:
    """The data's own answers (every task and style) say only its words and the prompt's: no
    sentence of theirs is broken, and no fact is marked unclear."""
    for ex in make_split("train", 300, seed=13, task=task, style=style):
        words = {w.lower().removesuffix("'s") for w in re.findall(r"[\w']+", ex.prompt)}
        for sentence in re.split(r"(?<=[.!?])\s+", ex.answer):
            assert sentence_flaw(sentence, words) is None, (sentence, ex.prompt)
        assert all(r.mark != "unclear" for r in fact_results(ex.prompt, ex.answer))


def test_marks_agree_with_the_score_when_sentences_break() -> None:
    """The facts marked "correct" or "unclear" are exactly the ones `score` counts as stated."""
    for ex in HELDOUT[:100]:
        for sentence, word in _clean_sentences(ex)[:2]:
            answer = ex.answer.replace(sentence, _glued(sentence, word), 1)
            marks = [r.mark for r in fact_results(ex.prompt, answer)]
            assert marks.count("correct") + marks.count("unclear") == score(ex.prompt, answer).facts_correct


# --- questions state no fact ---------------------------------------------------------------------


@pytest.mark.parametrize(("question", "statement"), [
    ("What is the capital of France? Answer in one sentence.", "It is the capital of France."),
    ("What is the capital of France. Answer in one sentence.", "It is the capital of France."),
    ("Does Velora have 4200 people?", "Velora has 4200 people."),
    ("Is it known for cheese?", "It is known for cheese."),
    ("Who was it founded by?", "It was founded by Kran."),
    ("Its motto is Dovra?", "Its motto is Dovra."),
    ("Where does it live in the winter?", "It lives in the hills in the winter."),
    ("How many people live in it?", "It has 400 people."),
])
def test_a_question_is_not_read_as_a_fact(question: str, statement: str) -> None:
    """A sentence that ends with "?", or opens with a question word or an auxiliary verb, gives
    no fact, where the same words as a statement do."""
    assert parse_facts(statement) != ()  # the premise: the statement is read
    assert parse_facts(question) == ()


def test_a_question_drops_only_its_own_facts() -> None:
    """Turning one fact sentence of a held-out "sentences" prompt into a question drops exactly
    the facts that sentence gives; the others still parse, in order."""
    checked = 0
    for ex in make_split("heldout", 400, seed=14):
        if ex.form != "sentences":
            continue
        facts = parse_facts(ex.prompt)
        for sentence in re.findall(r"(?:It|[A-Z][a-z]+(?:'s)?) [^.?!]+\.", ex.prompt):
            own = parse_facts(sentence)
            if not own:
                continue
            asked = ex.prompt.replace(sentence, sentence[:-1] + "?", 1)
            assert parse_facts(asked) == tuple(f for f in facts if f not in own), sentence
            checked += 1
    assert checked >= 100, checked


def test_items_in_a_question_are_still_facts() -> None:
    """ "key: value" items count wherever they are typed, in a question too."""
    prompt = "Can you describe Velora from these notes: population: 4200; river: the Osk; please?"
    assert parse_facts(prompt) == (Fact("population", "4200"), Fact("river", "the Osk"))
