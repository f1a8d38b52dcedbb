"""The copy and number probes: is the entity's name, and is every number, copied exactly?

A small model respells an invented name ("Velora" -> "Velvelora", "Velra") and alters numbers
("12" -> "1", "61" -> "71"). The checker's fact accuracy sees only whether each value appears
somewhere; these two probes look at every occurrence:
- `name_exact`: the answer names the entity exactly as the prompt spells it, at least once, and
  has no near miss of it: no word that the prompt does not have, that is not a word of the
  answer's own phrasing (`TEMPLATE_WORDS`), and that looks like a piece of the name (a
  difflib ratio of `NEAR` or more, or the same first three letters). A change of case is a near
  miss too ("velora" given, "Velora" said).
- `numbers_exact`: every number of the given facts appears in the answer as written, and every
  number of the answer appears in the prompt.

Pure functions of strings; they know nothing of models or of the bench that reports them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from pdiff.notes.lexicon import ATTRS, PRODUCTS, SUMMARY_OPENERS, TOPICS

NEAR = 0.6  # difflib ratio from which a word not in the prompt counts as a respelled name
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_NUMBER = re.compile(r"(?<![\d.,])\d+(?:[.,]\d+)*(?![\d])")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _bare_words(text: str) -> list[str]:
    """The words of `text`, a possessive's "'s" taken off ("Mara's" is "Mara")."""
    return [w[:-2] if w.endswith("'s") else w for w in _words(text)]


def _template_words() -> frozenset[str]:
    """Every word the answers' own phrasing uses (lower-cased): predicates, topics, list values."""
    texts: list[str] = [*SUMMARY_OPENERS, *PRODUCTS, "It Its The This animal city and of years old"]
    for attrs in ATTRS.values():
        for a in attrs:
            texts += a.preds
            texts += a.values if isinstance(a.values, tuple) else ()
    texts += [t for topics in TOPICS.values() for t in topics]
    texts += [u for uses in PRODUCTS.values() for u in uses]
    return frozenset(w.lower() for t in texts for w in _words(t.replace("{v}", " ")))


TEMPLATE_WORDS = _template_words()


def _near(word: str, piece: str) -> bool:
    a, b = word.lower(), piece.lower()
    return a[:3] == b[:3] or difflib.SequenceMatcher(None, a, b).ratio() >= NEAR


def name_misses(name: str, prompt: str, answer: str) -> list[str]:
    """The answer's words that look like a respelling of `name` (see the module docstring)."""
    given = set(_words(prompt)) | set(_bare_words(prompt))
    pieces = [p for p in _words(name) if len(p) >= 2]
    return [w for w in dict.fromkeys(_bare_words(answer))
            if w not in given and w.lower() not in TEMPLATE_WORDS and any(_near(w, p) for p in pieces)]


def name_exact(name: str, prompt: str, answer: str) -> bool:
    """Whether the answer names the entity exactly, at least once, and never respells it."""
    said = re.search(rf"(?<![\w'-]){re.escape(name)}(?![\w-])(?!'(?!s\b))", answer) is not None
    return said and not name_misses(name, prompt, answer)


def numbers_of(text: str) -> list[str]:
    """The numbers written in `text`, as written ("45,000", "3.5", "1620")."""
    return [m.rstrip(".,") for m in _NUMBER.findall(text)]


def numbers_exact(prompt: str, answer: str, values: Iterable[str]) -> bool:
    """Whether every number of the given `values` appears in the answer as written, and every
    number of the answer appears in the prompt."""
    said, given = set(numbers_of(answer)), set(numbers_of(prompt))
    wanted = {n for v in values for n in numbers_of(v)}
    return wanted <= said and said <= given
