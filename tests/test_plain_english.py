"""Spec of the plain-English fact reader (`pdiff.notes.plain`, through `parse_facts`): the facts
of 20 prompts written by hand, the way visitors wrote theirs (`tests/data/plain_english.jsonl`:
several clauses in a sentence, thousands separators, cities, products, people and pets), and
what the checker then makes of an answer that states them, or says one of them wrongly.

The facts in the file were written by hand beside each prompt; nothing here is the output of
the reader copied back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pdiff.app.facts import Judge, fact_marks_html
from pdiff.app.session import quality_of
from pdiff.app.settings import QUALITY_LABELS
from pdiff.events import Finished, Stats
from pdiff.notes.checker import fact_results, parse_facts, score
from pdiff.notes.data import Fact
from pdiff.notes.lexicon import ATTRS

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "data" / "plain_english.jsonl").read_text().splitlines()]
IDS = [f"{i}-{row['kind']}" for i, row in enumerate(ROWS)]


def _facts(row: dict) -> tuple[Fact, ...]:
    return tuple(Fact(k, v) for k, v in row["facts"])


def test_the_file_holds_20_prompts_of_every_kind():
    """20 prompts, of all four kinds, each with at least three facts."""
    assert len(ROWS) == 20
    assert {row["kind"] for row in ROWS} == {"city", "product", "person", "animal"}
    assert all(len(row["facts"]) >= 3 for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_plain_english_prompt_reads_as_its_facts(row):
    """Each prompt reads as the facts written beside it, in order, one per clause."""
    assert parse_facts(row["instruction"]) == _facts(row)


def test_thousands_separators_are_read_in_lists_too():
    """ "population: 45,000" keeps its whole number (it read as "45" or as nothing)."""
    assert parse_facts("Facts: population: 45,000; country: Dramen.") == (
        Fact("population", "45,000"), Fact("country", "Dramen"))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_an_answer_restating_the_facts_marks_them_correct(row):
    """An answer that says every value (numbers without their separators) is marked all correct."""
    answer = " ".join(f"We note {f.value.replace(',', '')}." for f in _facts(row))
    assert [r.mark for r in fact_results(row["instruction"], answer)] == ["correct"] * len(row["facts"])


def _said_with(fact: Fact, value: str) -> str | None:
    """The fact's attribute said with `value`, in the data's first phrasing; None if not a known one."""
    for kind in ATTRS.values():
        for attr in kind:
            if fact.key in attr.keys:
                return "It " + attr.preds[0].format(v=value) + "."
    return None


def _numeric_facts():
    for row in ROWS:
        for i, (key, value) in enumerate(row["facts"]):
            m = re.match(r"[\d,]+", value)
            if m and _said_with(Fact(key, value), value):
                yield pytest.param(row, i, id=f"{row['kind']}-{key}")


@pytest.mark.parametrize(("row", "i"), list(_numeric_facts()))
def test_a_number_said_wrongly_is_flagged(row, i):
    """Saying a numeric fact's attribute with another number marks it "wrong" and names it."""
    fact = _facts(row)[i]
    number = re.match(r"[\d,]+", fact.value)[0]
    other = str(int(number.replace(",", "")) + 7)
    answer = _said_with(fact, fact.value.replace(number, other, 1))
    result = fact_results(row["instruction"], answer)[i]
    assert result.mark == "wrong" and other in result.said.replace(",", "")


def _finished(text: str) -> Finished:
    return Finished(text, (), (), (), Stats("planned", 5, 0.1, 0.2, 1.0, 9, 0, 4, 5, 1, 2, 20, 9,
                                            20 / 9, 0.5))


def test_a_prompt_without_facts_is_not_plotted():
    """No facts read: the checker has nothing to score, so the run has no chart quality (not 0.0)."""
    assert quality_of("checker", "Explain how tides work.", _finished("Tides rise.")) is None
    prompt = ROWS[0]["instruction"]
    assert quality_of("checker", prompt, _finished("Nothing.")) == 0.0  # facts, none stated


def test_a_halved_score_says_why_beside_the_fact_line():
    """A score halved for a repeated sentence says so, with the fact accuracy it halves, in the
    stats row and in the fact line (so "3 of 4 stated" beside 0.38 is explained)."""
    row = ROWS[0]
    sentence = "It has many old streets and quiet squares."
    answer = " ".join(f"We note {f.value}." for f in _facts(row)[1:]) + f" {sentence} {sentence}"
    scored = score(row["instruction"], answer)
    assert not scored.format_ok and scored.value == scored.fact_accuracy / 2
    from pdiff.app.fold import RunView

    view = RunView()
    view.apply(_finished(answer))
    _, shown = Judge("checker", QUALITY_LABELS["checker"]).quality_row(row["instruction"], view)
    for text in (shown, fact_marks_html(row["instruction"], answer)):
        assert f"{scored.fact_accuracy:.2f} of the facts" in text and "halved" in text
        assert "repeated sentence" in text and f"{scored.value:.2f}" in text
