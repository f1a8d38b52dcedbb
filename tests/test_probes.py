"""Spec of `pdiff.notes.probes`: the copy probe and the number probe.

The generator's own answers copy the name and every number exactly, so both probes pass them;
each kind of slip a small model makes (a respelled or re-cased name, a dropped, altered or
invented number) fails them.
"""

from __future__ import annotations

import re

import pytest

from pdiff.notes.probes import name_exact, name_misses, numbers_exact
from pdiff.notes.wide import probe_split

PROBE = probe_split(400, seed=2)


def _values(ex) -> list[str]:
    return [f.value for f in ex.facts]


def test_the_generators_answers_pass_both_probes() -> None:
    """Every reference answer of the probe set names its entity exactly and copies its numbers."""
    for ex in PROBE:
        misses = name_misses(ex.name, ex.prompt, ex.answer)
        assert name_exact(ex.name, ex.prompt, ex.answer), (ex.name, misses)
        assert numbers_exact(ex.prompt, ex.answer, _values(ex)), ex.answer


def _one_word_names():
    return [ex for ex in PROBE if re.fullmatch(r"[A-Za-z]{5,}", ex.name)][:40]


@pytest.mark.parametrize("slip", [
    lambda n: n[:2] + n,  # a stuttered syllable: "Velvelora"
    lambda n: n[:-2] + n[-1],  # a letter dropped
    lambda n: n[:-1] + ("x" if n[-1] != "x" else "q"),  # the last letter replaced
    lambda n: n.swapcase(),  # the case changed
])
def test_a_respelled_name_fails_the_copy_probe(slip) -> None:
    """One occurrence of the name respelled is enough to fail, even with the name said right
    elsewhere."""
    cases = _one_word_names()
    assert cases
    for ex in cases:
        wrong = slip(ex.name)
        answer = ex.answer + f" {wrong} is well liked."
        assert not name_exact(ex.name, ex.prompt, answer), (ex.name, wrong)


def test_an_answer_without_the_name_fails_the_copy_probe() -> None:
    ex = _one_word_names()[0]
    assert not name_exact(ex.name, ex.prompt, ex.answer.replace(ex.name, "It"))


def _with_numbers():
    return [ex for ex in PROBE if any(re.search(r"\d", v) for v in _values(ex))][:60]


def test_an_altered_dropped_or_invented_number_fails_the_number_probe() -> None:
    cases = _with_numbers()
    assert len(cases) >= 30
    for ex in cases:
        number = next(m.group(0) for v in _values(ex) if (m := re.search(r"\d+", v)))
        altered = ex.answer.replace(number, str(int(number) + 1), 1)
        assert not numbers_exact(ex.prompt, altered, _values(ex)), (number, altered)
        assert not numbers_exact(ex.prompt, ex.answer + " It has 987654 fans.", _values(ex))
