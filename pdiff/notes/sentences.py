"""Is an answer's text clean? The format checks of the checker, whole answer and sentence by sentence.

`format_problems` lists what spoils a whole answer: it is empty, it has a leftover control tag
(`pdiff.tags.CONTROL_TAGS`) or a tag fragment (a chat-special token, a "[MASK]"), it repeats a
sentence of 4+ words, or it stutters (a phrase of 2 to `MAX_STUTTER_WORDS` words said twice back
to back, or one word three times in a row).

`sentence_flaw` says what breaks one sentence: the same tags and stutters, a one-letter stub
("w"), or a lower-case word that the data's answers never say (`data_words`) and the prompt does
not give ("mostlys"). The checker marks a fact "unclear" when only broken sentences state it.

It deliberately knows nothing of facts or their values (`pdiff.notes.checker` matches those),
nor of grammar beyond the data's own words: a capitalised word may be a name, so it is no flaw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from pdiff.notes import lexicon, wide
from pdiff.notes.lexicon import KNOWN_KEYS, VALUE_SHAPES
from pdiff.notes.plain import PHRASES
from pdiff.notes.probes import TEMPLATE_WORDS
from pdiff.tags import CONTROL_TAGS

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")
# Generic leftovers beyond the exact control tags: chat-special tokens and tag fragments.
_GENERIC_TAG = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|</?(?:promise|topic|async|sync)\b[^<>]{0,40}>|\[(?:PAD|MASK|UNK)\]",
    re.IGNORECASE,
)
MAX_STUTTER_WORDS = 6  # longest phrase checked for back-to-back repetition
MAX_REPEATS_LISTED = 5  # repeated sentences named in problems, at most
_LETTERS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # a word of letters: "Mara's", "w", "mostlys"
_ONE_LETTER_WORDS = {"a", "A", "I"}


def split_sentences(text: str) -> list[str]:
    """The text's sentences: split after ".", "!" or "?" and a space, and at new lines."""
    return _SENT_SPLIT.split(text)


def _normalise(sentence: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(sentence))


def _stutter(words: tuple[str, ...]) -> str | None:
    """A phrase of 2-6 words said twice back to back, or one word said three times in a row."""
    for i in range(len(words) - 2):
        if words[i] == words[i + 1] == words[i + 2]:
            return words[i]
    for n in range(2, MAX_STUTTER_WORDS + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i] == words[i + n] and words[i:i + n] == words[i + n:i + 2 * n]:
                return " ".join(words[i:i + n])
    return None


def format_problems(answer: str) -> list[str]:
    """Reasons the answer's format is not clean; empty when it is."""
    problems: list[str] = []
    if not answer.strip():
        return ["empty answer"]
    rest = answer
    for tag in CONTROL_TAGS.values():
        if tag in rest:
            problems.append(f"leftover control tag {tag} ({rest.count(tag)}x)")
            rest = rest.replace(tag, " ")
    for frag in dict.fromkeys(m.group(0) for m in _GENERIC_TAG.finditer(rest)):
        problems.append(f"leftover tag fragment {frag}")
    seen: set[tuple[str, ...]] = set()
    repeated: dict[tuple[str, ...], str] = {}
    for sentence in split_sentences(answer):
        words = _normalise(sentence)
        if len(words) >= 4 and words in seen:
            repeated.setdefault(words, sentence.strip()[:80])
        seen.add(words)
    for sentence in list(repeated.values())[:MAX_REPEATS_LISTED]:
        problems.append(f"repeated sentence: {sentence!r}")
    if len(repeated) > MAX_REPEATS_LISTED:
        problems.append(f"... and {len(repeated) - MAX_REPEATS_LISTED} more repeated sentences")
    stutter = _stutter(_normalise(answer))
    if stutter:
        problems.append(f"repeated span: {stutter!r}")
    return problems


# --- broken sentences ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def data_words() -> frozenset[str]:
    """Every word (lower-cased) that the data's answers say beside a prompt's own words: the
    answers' phrasing (`pdiff.notes.probes.TEMPLATE_WORDS`), every key and heading, the
    instructions, the plain-English phrases and the units of the value rules. A bundled model
    learned only these; a lower-case word outside them and the prompt is a broken one."""
    texts = [*KNOWN_KEYS, *wide.WIDE_EXTRA_KEYS, *(k for keys in wide.MORE_KEYS.values() for k in keys),
             *lexicon.INSTRUCTIONS, *lexicon.HEADS, *lexicon.SUMMARY_ASKS, *lexicon.SUMMARY_OPENERS,
             *lexicon.SUMMARY_TOPICS, *lexicon.SENTENCE_KEYS.values(), *(t for _, t in PHRASES),
             "a an and the it its this"]  # the joins of `pdiff.notes.data._sentence` and `_fix`
    units = {u for shape in VALUE_SHAPES.values()  # "dollars" in r"\d+ dollars", not "d"
             for u in re.findall(r"[a-z]{2,}", re.sub(r"\\.", " ", shape))}
    return TEMPLATE_WORDS | words_of(*(re.sub(r"\{\w\}", " ", t) for t in texts)) | units  # not "{s}"


def _bare(word: str) -> str:
    return word[:-2] if word.lower().endswith("'s") else word


def words_of(*texts: str) -> frozenset[str]:
    """The words of letters of the texts, lower-cased, without a trailing "'s" ("Mara's": "mara")."""
    return frozenset(_bare(w).lower() for t in texts for w in _LETTERS.findall(t))


def sentence_flaw(sentence: str, allowed: Iterable[str] = ()) -> str | None:
    """What breaks one sentence of an answer, or None when it is well formed: a leftover control
    tag or tag fragment, a stuttered phrase (`format_problems`' checks), a one-letter stub ("w"),
    or a lower-case word that is neither one of `data_words` nor of `allowed` (the prompt's and
    the facts' words, lower-cased: `words_of`): "mostlys". A capitalised word may be a name: it
    is no flaw."""
    for tag in CONTROL_TAGS.values():
        if tag in sentence:
            return f"leftover control tag {tag}"
    fragment = _GENERIC_TAG.search(sentence)
    if fragment:
        return f"leftover tag fragment {fragment[0]}"
    stutter = _stutter(_normalise(sentence))
    if stutter:
        return f"repeated span {stutter!r}"
    known = data_words() | set(allowed)
    for word in map(_bare, _LETTERS.findall(sentence)):
        if len(word) == 1 and word not in _ONE_LETTER_WORDS and word.lower() not in known:
            return f"stub word {word!r}"
        if word.islower() and word not in known:
            return f"not a word: {word!r}"
    return None
