"""Facts written as plain English sentences, read clause by clause.

A visitor writes "It was founded in 1620, has 45,000 people, sits on the river Tam and is famous
for its clock tower." That is one sentence with four facts. `sentence_facts` finds sentences
that open with a subject ("It", "She", "The lamp", "Mara Voss") and a verb, cuts the rest into
clauses where a comma or an "and" is followed by another verb, and reads each clause as one
fact:
1) a phrase of the data's sentence form (`SENTENCE_KEYS`: "was founded in", "is famous for"),
   taken as the key the data types, so prompts of the "sentences" form read back as written;
2) "its <key> is <value>" ("..., and its climate is mild"), the key as written;
3) a phrase people use for a known attribute (`PHRASES` below, and the lexicon's predicates
   when the value has the attribute's kind: "plays tennis at the weekend" is a sport);
4) otherwise the clause's verb (with its preposition) as the key: "loves long walks" is
   "loves: long walks", so a fact the tables do not know is still checked by its value.

Values keep their case and their thousands separators ("45,000"; the checker matches "45000"
too); a leading "its", "his", "her" or "their", and "about" before a number, are dropped.
It knows nothing of "key: value" lists (that is `pdiff.notes.checker`), nor of answers.
"""

from __future__ import annotations

import re

from pdiff.notes.lexicon import ATTRS, SENTENCE_KEYS, value_shape

# Phrases visitors use that the data's tables do not have: (key, template with {v}).
PHRASES = (
    ("population", "has {v} people"), ("population", "has {v} inhabitants"),
    ("population", "has {v} residents"), ("population", "is home to {v} people"),
    ("river", "sits on {v}"), ("river", "lies on {v}"), ("river", "stands on {v}"),
    ("river", "is on {v}"), ("mayor", "is led by {v}"), ("mayor", "has a mayor called {v}"),
    ("mayor", "has a mayor named {v}"), ("country", "is a city in {v}"), ("country", "is in {v}"),
    ("material", "is made of {v}"), ("material", "is made from {v}"),
    ("price", "costs {v}"), ("price", "sells for {v}"), ("weight", "weighs {v}"),
    ("colour", "comes in {v}"), ("maker", "is made by {v}"), ("launched", "came out in {v}"),
    ("warranty", "has a warranty of {v}"), ("warranty", "comes with a {v} warranty"),
    ("age", "is {v} years old"), ("job", "works as a {v}"), ("job", "works as an {v}"),
    ("job", "is a {v} by trade"), ("workplace", "works at {v}"), ("home town", "grew up in {v}"),
    ("home town", "comes from {v}"), ("pet", "has a pet {v}"), ("pet", "keeps {v}"),
    ("hobby", "enjoys {v}"), ("favourite food", "likes {v} best"), ("diet", "eats {v}"),
    ("diet", "feeds on {v}"), ("habitat", "lives in {v}"), ("lifespan", "lives for {v}"),
    ("lifespan", "lives up to {v}"), ("size", "grows to {v}"), ("siblings", "has {v} siblings"),
)
# Verbs a clause may open with: these, and the first word of every template above or in the data.
_VERBS = {"is", "was", "are", "were", "has", "had", "have", "lives", "works", "sits", "lies",
          "stands", "costs", "weighs", "comes", "came", "eats", "loves", "likes", "enjoys", "plays",
          "keeps", "grows", "makes", "holds", "sells", "uses", "speaks", "owns", "hunts", "feeds",
          "reaches", "counts", "dates", "earns", "spends", "grew", "offers", "runs", "drinks",
          "prefers", "teaches", "drives", "needs", "sleeps", "sings", "paints", "reads", "lived"}
_VERB_TEMPLATES = [t for _, t in PHRASES] + [t.removeprefix("{s} ") for t in SENTENCE_KEYS.values()]
_VERBS |= {t.split()[0] for t in _VERB_TEMPLATES} | {
    p.split()[0] for kind in ATTRS.values() for a in kind for p in a.preds}
_VERB = "(?:" + "|".join(sorted(_VERBS, key=len, reverse=True)) + r")\b"
# A subject, then a verb: "It", "She", "The lamp", "My dog Rex", "Mara Voss".
_SUBJECT = re.compile(
    r"(?:It|He|She|They|(?:The|This|That|My|Our)(?:\s+[\w'-]+){1,3}?"
    r"|[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+){0,2})\s+(?=" + _VERB + ")")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?](?!\d)[^.!?\n]*)*?(?:[.!?](?=\s|$)|\n|$)")
# A new clause: a comma or "and" before a verb (its subject may be said again: "and it is") or
# before "its <key> is".
_NEXT = r"(?:(?:(?:it|he|she|they)\s+)?(?=" + _VERB + r")|(?=(?:its|his|her|their)\s))"
_CLAUSE_BREAK = re.compile(r"\s*,\s*(?:and\s+|but\s+)?" + _NEXT + r"|\s+(?:and|but)\s+" + _NEXT,
                           re.IGNORECASE)
_ITS_CLAUSE = re.compile(r"(?:its|his|her|their)\s+(?P<k>[a-z][a-z ]{0,30}?)\s+is\s+(?P<v>.+)",
                         re.IGNORECASE)
_LEAD = re.compile(r"^(?:its|his|her|their)\s+|^(?:about|around|roughly|nearly|some)\s+(?=\d)",
                   re.IGNORECASE)
_PREPOSITIONS = ("in", "on", "at", "for", "as", "to", "with", "by", "from", "of")


def _template_pattern(template: str, value: str = r"(?P<v>.+?)") -> re.Pattern[str]:
    before, after = (re.escape(p) for p in template.split("{v}"))
    return re.compile(rf"{before}{value}{after}", re.IGNORECASE)


def _table() -> list[tuple[str, int, re.Pattern[str]]]:
    """(key, phrase length, full-clause pattern), the data's sentence phrases first."""
    out, seen = [], set()
    for key, template in SENTENCE_KEYS.items():  # a template shared by keys reads as the first
        phrase = template.removeprefix("{s} ").removesuffix(".")
        if phrase not in seen:
            seen.add(phrase)
            out.append((key, len(phrase), _template_pattern(phrase)))
    for key, template in PHRASES:
        out.append((key, len(template), _template_pattern(template)))
    for kind in ATTRS.values():
        for attr in kind:
            for pred in attr.preds:  # only with a value of the attribute's kind
                shaped = _template_pattern(pred, f"(?P<v>{value_shape(attr)})")
                out.append((attr.keys[0], len(pred), shaped))
    return sorted(out, key=lambda row: -row[1])  # the longest phrase that fits wins


_TABLE: list[tuple[str, int, re.Pattern[str]]] = []


def _clean(value: str) -> str:
    value = " ".join(value.strip().strip("\"'").split()).rstrip(".,;:!?")
    return _LEAD.sub("", value)


def clause_fact(clause: str) -> tuple[str, int, str] | None:
    """(key, phrase length, value) of one clause that opens with a verb; None if it has no value."""
    if not _TABLE:
        _TABLE.extend(_table())
    clause = clause.strip().rstrip(".!?").strip()
    its = _ITS_CLAUSE.fullmatch(clause)
    if its and _clean(its["v"]):
        return " ".join(its["k"].lower().split()), 0, _clean(its["v"])
    for key, length, pattern in _TABLE:
        m = pattern.fullmatch(clause)
        if m and _clean(m["v"]):
            return key, length, _clean(m["v"])
    words = clause.split()
    n = 2 if len(words) > 2 and words[1].lower() in _PREPOSITIONS else 1
    key, value = " ".join(words[:n]).lower(), _clean(" ".join(words[n:]))
    return (key, len(key), value) if value else None


def sentence_facts(prompt: str) -> list[tuple[int, int, str, str]]:
    """(start, -phrase length, key, value) of each fact the prompt states in a sentence."""
    out = []
    for sentence in _SENTENCE.finditer(prompt):
        text, at = sentence.group(0), sentence.start()
        subject = _SUBJECT.match(text.lstrip())
        if subject is None:
            continue
        at += len(text) - len(text.lstrip()) + subject.end()
        rest = text.lstrip()[subject.end():]
        pos = 0
        for piece in _CLAUSE_BREAK.split(rest):
            start = rest.index(piece, pos)
            pos = start + len(piece)
            fact = clause_fact(piece)
            if fact is not None:
                key, length, value = fact
                out.append((at + start, -length, key, value))
    return out
