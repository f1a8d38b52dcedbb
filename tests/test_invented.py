"""Spec of `pdiff.notes.checker.invented_facts`: the facts an answer adds that the notes do not give.

Reference answers add none; a statement of an attribute whose value the prompt does not give is
one, unless a fact of that attribute is given (then it is a "wrong" value, not an invention).
"""

from __future__ import annotations

import re

import pytest

from pdiff.notes.checker import Invented, fact_results, invented_facts, parse_facts, score
from pdiff.notes.data import FORMS, Fact, make_split
from tests.test_checker import FORM_EXAMPLES, _other_value

HELDOUT = make_split("heldout", 200, seed=3)


def test_reference_answers_invent_no_fact() -> None:
    """The generator's held-out answers state only the facts of their prompts: none is invented."""
    for ex in HELDOUT:
        assert invented_facts(ex.prompt, ex.answer) == (), ex.answer
        assert score(ex.prompt, ex.answer).invented == 0


def test_an_added_marriage_is_one_invented_fact() -> None:
    """"X is married to Bob." added to an answer whose notes give no partner and no Bob is one
    invented fact, with its sentence; `score` names it and counts it against the answer:
    fact_accuracy = correct / (total + 1)."""
    unmarried = [ex for ex in HELDOUT if not re.search(r"\bBob\b", ex.prompt)
                 and not any(f.key in ("partner", "married to") for f in ex.facts)]
    assert len(unmarried) > 100
    for ex in unmarried:
        sentence = f"{ex.name} is married to Bob."
        answer = f"{ex.answer} {sentence}"
        assert invented_facts(ex.prompt, answer) == (Invented("partner", "Bob", sentence),)
        s = score(ex.prompt, answer)
        assert (s.invented, s.facts_correct, s.facts_total) == (1, len(ex.facts), len(ex.facts))
        assert s.fact_accuracy == len(ex.facts) / (len(ex.facts) + 1) and s.format_ok
        assert "not in your notes: partner: Bob" in s.problems


@pytest.mark.parametrize(("sentence", "key", "value"), [
    ("Aro is married to Vuvelu.", "partner", "Vuvelu"),
    ("It has a rating of 7 out of 10.", "rating", "7 out of 10"),
    ("It spends its life alone.", "social life", "alone"),
    ("Its motto is Dovra.", "motto", "Dovra"),
    ("Aro's shoe size is 44.", "shoe size", "44"),
    ("His price is 40 dollars, they say.", "price", "40 dollars"),  # "40" alone is the age
])
def test_each_way_of_stating_a_fact_is_found(sentence: str, key: str, value: str) -> None:
    """A predicate of any attribute of any kind, or "Its/His/<Name>'s <key> is <value>", with a
    value the notes do not give, is one invented fact, under the attribute's first key."""
    prompt = "Write about a person named Aro. Facts: job: baker; age: 40."
    answer = f"Aro has been a baker for many years. {sentence}"
    assert invented_facts(prompt, answer) == (Invented(key, value, sentence),)


@pytest.mark.parametrize("sentence", [
    "Its rating is very good.",  # a known key with a value not of its kind is not said
    "It's warm and is known for bread.",  # "It's" is no possessive
    "She's a baker who is kind.",
    "Aro's job as a kind baker is fun.",  # a key of more than three words
])
def test_what_states_no_attribute_invents_nothing(sentence: str) -> None:
    """Sentences that state no attribute in a form the checker knows add no invented fact."""
    assert invented_facts("Write about a person named Aro. Facts: job: baker.", sentence) == ()


@pytest.mark.parametrize("form", FORMS)
def test_a_given_attribute_said_with_another_value_is_wrong_not_invented(form: str) -> None:
    """Replacing a fact's value in the answer with another value of its kind marks the fact
    "wrong" and invents nothing: the notes give that attribute."""
    checked = 0
    for ex in FORM_EXAMPLES[form]:
        for i, fact in enumerate(parse_facts(ex.prompt)):
            other = _other_value(ex, fact)
            pattern = rf"(?<!\w){re.escape(fact.value)}(?!\w)"
            if other is None or len(re.findall(pattern, ex.answer)) != 1:
                continue
            answer = re.sub(pattern, other, ex.answer)
            assert fact_results(ex.prompt, answer)[i].mark == "wrong", (fact, answer)
            assert invented_facts(ex.prompt, answer) == (), (fact, answer)
            assert score(ex.prompt, answer).invented == 0
            checked += 1
    assert checked >= 50, checked


@pytest.mark.parametrize("key", ["founder", "founded by"])
@pytest.mark.parametrize("said", ["It owes its start to Kran.", "Its founder is Kran."])
def test_a_fact_of_the_attribute_under_any_key_makes_it_given(key: str, said: str) -> None:
    """A founder said with another name, beside a founder fact under either of its keys, is not
    invented: the notes give that attribute (`fact_results` marks the fact wrong where it reads
    the phrase as that fact's attribute)."""
    prompt = f"Tell me about the city Lagil. Facts: population: 4200; {key}: Stel."
    answer = f"It has a population of 4200. {said}"
    assert invented_facts(prompt, answer) == ()
    assert invented_facts("Tell me about the city Lagil. Facts: population: 4200.", answer) != ()
    if key == "founder" or "owes" in said:
        assert [r.mark for r in fact_results(prompt, answer)] == ["correct", "wrong"]


@pytest.mark.parametrize(("sentence", "said"), [
    ("It has a population of {}.", ("45000", "45,000", "46000")),  # thousands separators ignored
    ("It was founded by {}.", ("Dovik", "Dovik", "Kran")),  # the mayor's name, for another fact
    ("It stands beside {}.", ("the Osk", "Osk", "the Varn")),  # a leading article ignored
    ("Its motto is {}.", ("Lagil", "lagil", "Lagi")),  # whole words: "Lagi" is not in "Lagil"
])
def test_a_value_the_prompt_gives_is_not_invented(sentence: str, said: tuple[str, str, str]) -> None:
    """An attribute the facts do not give, said with a value the prompt has (as `score` matches
    values), is not invented; the same sentence with a value the prompt lacks is."""
    prompt = "Write about Lagil, seen by 45,000 visitors a year beside the Osk. Facts: mayor: Dovik."
    assert parse_facts(prompt) == (Fact("mayor", "Dovik"),)  # the premise: those are no facts
    in_prompt, also, new = said
    for value in (in_prompt, also):
        assert invented_facts(prompt, sentence.format(value)) == ()
    assert [i.value for i in invented_facts(prompt, sentence.format(new))] == [new]


def test_given_facts_replace_the_facts_read_from_the_prompt() -> None:
    """With `facts` given (a visitor set lists them), score, fact_results and invented_facts judge
    the answer against those facts, not against what the prompt parses to."""
    prompt = "Write about a person named Aro."
    given = (Fact("age", "40"), Fact("partner", "Ilse"))
    answer = "Aro is 40 years old. Aro is married to Bob."
    assert parse_facts(prompt) == ()
    assert [r.mark for r in fact_results(prompt, answer, given)] == ["correct", "wrong"]
    assert invented_facts(prompt, answer, given) == ()
    assert {i.key for i in invented_facts(prompt, answer)} == {"age", "partner"}
    s = score(prompt, answer, given)
    assert (s.facts_total, s.facts_correct, s.invented, s.fact_accuracy) == (2, 1, 0, 0.5)
    assert score(prompt, answer).facts_total == 0
