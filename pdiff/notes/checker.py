"""Quality checker for "notes to text" answers: are the prompt's facts stated, and is the text clean?

`parse_facts` reads the facts of a prompt in every form `pdiff.notes.data` writes (and as a person
types them: odd spacing and case): "key: value" or "key = value" items separated by ";", commas or
new lines, with or without a heading ("Facts:", "from these notes:") or bullets, "Its motto is
Dovra.", and sentences in plain English, clause by clause (`pdiff.notes.plain`: "It was founded
in 1620, has 45,000 people and sits on the river Tam." is three facts). A question states
nothing: no fact is read from a sentence that ends with "?" or opens with a question word or an
auxiliary verb ("What is the capital of France?"), though a "key: value" item counts anywhere.
`score` then counts the facts whose value appears in the answer as a whole word or phrase,
case-insensitively, and checks the format: a non-empty answer with no leftover control tags or
masks and no repeated sentence or stuttered phrase (`pdiff.notes.sentences.format_problems`).
`Score.value` is the one number for charts.

Choices, stated once:
- A prompt without facts scores fact_accuracy 0.0: there is nothing to verify, so no credit is
  given (format_ok is judged on its own, and a problem says that no facts were found).
- Whole-word means not glued to a letter or digit on either side, so "4200" does not match in
  "42001" or "14200", nor in "4200.5" or "4,2001". Thousands separators are ignored on both
  sides ("4,200" matches "4200"); a leading article of the value is optional ("the Osk" also
  matches "Osk"); runs of whitespace match any whitespace.

`fact_results` marks each fact of the prompt as "correct" (its value is stated, as `score` counts
it), "unclear" (stated, as `score` counts it, but only inside broken sentences: see
`pdiff.notes.sentences.sentence_flaw`), "wrong" (not stated, but the answer says the fact's
attribute with another value of the same kind) or "missing" (none of these). The answer says an
attribute when it uses one of the data's phrasings for that key (`pdiff.notes.lexicon` predicates:
"has a population of {v}") or "<key> is {v}" (every key, the extra ones too: "Its motto is
Dovra."), and the value there has the attribute's kind: another word of its closed list ("rainy"
for a climate), or the shape of its open rule (a number for a population, a capitalised name for a
founder, "N dollars" for a price; any text for a key the data does not know), its number written
with any digits ("1 160" or "16200" for a year). A fact whose own value is of no attribute's kind
("climate: foggy") names the attributes of its key whose values it looks like. Anything else
counts as not said.

`invented_facts` finds the facts the answer adds: every statement of an attribute (a predicate of
any attribute of any kind in the lexicon, its value in the attribute's shape, or "Its/His/Her/
Their/<Name>'s <key> is <value>." for a short key) whose value does not occur in the prompt (as
`score` matches values) and whose attribute no fact names (a fact with a key of that attribute
makes the statement a "wrong" value, which `fact_results` marks). `score` counts them against
the answer: fact_accuracy = facts_correct / (facts_total + invented), and a problem "not in your
notes: <key>: <value>" for each. `score`, `fact_results` and `invented_facts` take the facts as
given (a visitor set lists them) instead of reading them from the prompt.

It deliberately does not know whether a fact is stated *truthfully* (a value that appears in a
negated or wrong context still counts), nor anything about fluency beyond the data's own words,
nor tokenizers or models.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pdiff.notes.data import Fact
from pdiff.notes.lexicon import ATTR_KEYS, ATTRS, KNOWN_KEYS, PRODUCTS, Attr, value_shape
from pdiff.notes.plain import sentence_facts
from pdiff.notes.sentences import format_problems, sentence_flaw, split_sentences, words_of

# "key: value" / "key = value": an item starts the prompt or follows a separator (a heading's
# ":" too), and its value ends at ";", a new line, a comma before the next key, or a sentence end.
_ITEM = re.compile(
    r"(?:^|(?<=[;\n,.:\-*\u2022]))[ \t]*(?:\d+[.)][ \t]+)?(?P<key>[^\W\d_][\w' \t]{0,30}?)[ \t]*[:=][ \t]*"
    r"(?P<value>(?:[^;\n,=:]|(?<=\d),(?=\d{3}(?!\d)))*?)"  # "45,000" keeps its comma
    r"[ \t]*(?=$|[;\n]|,[ \t]*[^\W\d_][\w' \t]{0,30}[:=]|\.(?:\s|$))"
)
_ITS = re.compile(r"(?:^|(?<=\s))(?:Its|His|Her|Their|[A-Z]\w*'s)\s+(?P<key>[a-z][a-z ]{0,30}?)\s+is\s+"
                  r"(?P<value>[^.;\n?]+?)\.(?=\s|$)")  # not across a question's "?"
# A sentence of a prompt ("1.5 kg" does not end one), and the words that open a question: a
# question word ("What's" too), or an auxiliary verb before its subject ("Does Velora ...").
_PROMPT_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=\d))+[.!?]*")
_QUESTION_OPENER = re.compile(
    r"\s*(?:(?:what|who|whom|whose|which|where|when|why|how)(?:'s)?"
    r"|is|are|am|was|were|do|does|did|can|could|will|would|shall|should|may|might|must|has|have|had)"
    r"(?!['\w])", re.IGNORECASE)


MAX_UNKNOWN_KEY_WORDS = 3  # a key that is not in the data's vocabulary has at most this many words
_SENTENCE_END = re.compile(r"\.(?:\s+(?=[A-Z])|\s*$)")  # "d. Keep it short." -> "d"
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
INVENTED = "not in your notes"  # how a problem (and the page) names a fact the notes do not give


@dataclass(frozen=True)
class Score:
    facts_total: int
    facts_correct: int
    fact_accuracy: float  # facts_correct / (facts_total + invented); 0.0 when there are no facts
    format_ok: bool  # non-empty, no leftover control tags or masks, no repeated sentence/span
    problems: tuple[str, ...]  # human-readable reasons for lost points
    invented: int = 0  # facts the answer states that the notes do not give (`invented_facts`)

    @property
    def value(self) -> float:
        """The single quality number used in charts: fact accuracy, halved if the format is bad."""
        return self.fact_accuracy if self.format_ok else self.fact_accuracy * 0.5


def _clean_value(text: str) -> str:
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    return " ".join(text.strip().strip("\"'").split()).rstrip(".,")


def parse_facts(prompt: str) -> tuple[Fact, ...]:
    """The facts of a prompt, in the order they appear; () if there is none.

    Keys are lower-cased with spaces collapsed, values keep their case. Items without a key or a
    value are skipped, and so is a repeated key (the first one wins). A "key: value" item whose
    key is not one the data uses must be short (`MAX_UNKNOWN_KEY_WORDS`), so "Tell me about
    Velora: ..." is not read as a fact. A question (`_questions`) gives no sentence fact.
    """
    if not isinstance(prompt, str):
        return ()
    found: list[tuple[int, int, str, str]] = []  # (start, -phrase length, key, value)
    for m in _ITEM.finditer(prompt):
        key = " ".join(m["key"].split()).strip("\"'").lower()
        if key in KNOWN_KEYS or len(key.split()) <= MAX_UNKNOWN_KEY_WORDS:
            found.append((m.start(), 0, key, m["value"]))
    said = [(m.start(), 0, m["key"], m["value"]) for m in _ITS.finditer(prompt)]
    questions = _questions(prompt)
    found += [f for f in said + sentence_facts(prompt) if not any(a <= f[0] < b for a, b in questions)]
    out: list[Fact] = []
    seen: set = set()
    starts: set[int] = set()  # one fact per item: "It lives in hills" is "lives in", not "lives"
    for start, phrase, key, raw in sorted(found):
        value = _clean_value(raw)
        # A repeated "key: value" key is dropped; a repeated sentence phrase ("It lives in packs.
        # It lives in rivers.") is two facts.
        again = (key, value) in seen if phrase else key in seen
        if key and value and not again and start not in starts:
            seen.update({key, (key, value)} if not phrase else {(key, value)})
            starts.add(start)
            out.append(Fact(key, value))
    return tuple(out)


def _questions(prompt: str) -> list[tuple[int, int]]:
    """The (start, end) of each sentence of the prompt that asks rather than states: it ends with
    "?" or opens with a question word or an auxiliary verb ("What is the capital of France?")."""
    return [m.span() for m in _PROMPT_SENTENCE.finditer(prompt)
            if m[0].rstrip().endswith("?") or _QUESTION_OPENER.match(m[0])]


def _value_pattern(value: str) -> re.Pattern[str]:
    core = _ARTICLE.sub("", _THOUSANDS.sub("", value.strip())) or value.strip()
    body = r"\s+".join(re.escape(w) for w in core.split())
    article = r"(?:(?:the|a|an)\s+)?"
    # Not glued to a word character, nor part of a longer number such as 4200.5 or 3,4200.
    return re.compile(rf"(?<!\w)(?<!\d[.,]){article}{body}(?!\w)(?![.,]\d)", re.IGNORECASE)


def fact_stated(fact: Fact, answer: str) -> bool:
    """Whether the fact's value appears in the answer as a whole word or phrase."""
    return _stated(fact, _THOUSANDS.sub("", answer))


def _stated(fact: Fact, plain_answer: str) -> bool:
    if not fact.value.strip():
        return False
    return _value_pattern(fact.value).search(plain_answer) is not None


def _facts_of(prompt: str, facts: Iterable[Fact] | None) -> tuple[Fact, ...]:
    return parse_facts(prompt) if facts is None else tuple(facts)


def score(prompt: str, answer: str, facts: Iterable[Fact] | None = None) -> Score:
    """Score an answer against the facts of its prompt (or the `facts` given instead). Never
    raises on string input."""
    prompt = prompt if isinstance(prompt, str) else ""
    answer = answer if isinstance(answer, str) else ""
    facts = _facts_of(prompt, facts)
    problems: list[str] = []
    correct = 0
    plain = _THOUSANDS.sub("", answer)
    for fact in facts:
        if _stated(fact, plain):
            correct += 1
        else:
            problems.append(f"missing fact {fact.key}: {fact.value}")
    if not facts:
        problems.append("the prompt lists no facts")
    invented = invented_facts(prompt, answer, facts)
    problems.extend(f"{INVENTED}: {i.key}: {i.value}" for i in invented)
    fmt = format_problems(answer)
    problems.extend(fmt)
    accuracy = correct / (len(facts) + len(invented)) if facts else 0.0
    return Score(len(facts), correct, accuracy, not fmt, tuple(problems), len(invented))


# --- per-fact marks ------------------------------------------------------------------------------

_FREE = r"[^.;,\n]{1,60}?"  # any value, for a key the data does not know
# The number that opens a numeric shape (r"\d{3,4}", r"\d[\d,]*", r"\d+"), and what a said value's
# number may be instead: any digits, spaced or not ("1 160", "16200").
_SHAPE_NUMBER = re.compile(r"^\\d(?:\{[\d,]+\}|\[\\d,\]\*|\+)?")
_ANY_NUMBER = r"\d+(?: \d+)*"
_DIGIT_SPACE = re.compile(r"(?<=\d) (?=\d)")
MAX_RULE_WORDS = 3  # a value outside an open rule's shape may still be one of it, up to this many words
MARKS = ("correct", "unclear", "wrong", "missing")


@dataclass(frozen=True)
class FactResult:
    fact: Fact
    mark: str  # one of MARKS
    said: str | None = None  # "wrong": the other value the answer gave; "unclear": its sentence
    why: str | None = None  # "unclear": what breaks that sentence (`sentence_flaw`)


def _attrs_of(key: str, value: str) -> list[Attr]:
    """The attributes with this key whose kind the value has."""
    return [a for kind in ATTRS.values() for a in kind
            if key in a.keys and re.fullmatch(value_shape(a), value, re.IGNORECASE)]


def _pred_patterns(attr: Attr, shape: str | None = None) -> list[re.Pattern[str]]:
    """Where an answer says the attribute with one of its predicates, the value in group "v" (of
    the attribute's shape, or of `shape`)."""
    shape = shape or value_shape(attr)
    out = []
    for pred in attr.preds:
        before, after = (re.escape(p) for p in pred.split("{v}"))
        before = re.sub(r"(?<!\w)a\\ ", r"an?\\ ", before)  # "has a {v} finish": "an orange"
        out.append(re.compile(rf"(?<!\w){before}(?P<v>{shape})(?!\w){after}", re.IGNORECASE))
    return out


def _looks_like(attr: Attr, value: str) -> bool:
    """Whether a value that is not of the attribute's kind looks like one of its values. A rule's:
    up to `MAX_RULE_WORDS` words, with a digit for a number ("1.4 kg" for a weight), capitalised
    for a name ("McQuorl" for a founder). A list's: no digit, lower-case if its values are, and
    its words but the last are words its values open with ("foggy" for a climate, "making
    coffee" for a use; not "across Nosi'znsh" for a social life ("in pairs"), nor "large
    flocks" for a habitat ("forests"), as the sentence reader takes "It lives in large flocks.")."""
    words, digit = value.split(), any(c.isdigit() for c in value)
    if attr.values in ("name", "the name"):
        return len(words) <= MAX_RULE_WORDS and not digit and _ARTICLE.sub("", value)[:1].isupper()
    if value_shape(attr).startswith(r"\d"):
        return len(words) <= MAX_RULE_WORDS and digit
    samples = attr.values if isinstance(attr.values, tuple) else [u for us in PRODUCTS.values() for u in us]
    leads = {w for v in samples for w in v.split()[:-1]}
    lower = value.islower() or not all(v.islower() for v in samples)
    return bool(words) and not digit and lower and all(w in leads for w in words[:-1])


def _fact_attrs(key: str, value: str) -> list[Attr]:
    """The attributes a fact names: those of its key whose kind its value has, or, for a value of
    none of their kinds ("climate: foggy"), those of its key that it looks like (`_looks_like`)."""
    return _attrs_of(key, value) or [a for kind in ATTRS.values() for a in kind
                                     if key in a.keys and _looks_like(a, value)]


def _loose_shape(attr: Attr) -> str:
    """The attribute's shape with its number, if it opens with one, written with any digits."""
    return _SHAPE_NUMBER.sub(lambda _: _ANY_NUMBER, value_shape(attr), count=1)


def _said_patterns(fact: Fact) -> list[re.Pattern[str]]:
    """Where an answer says the fact's attribute, the value in group "v" (`_fact_attrs`: the
    attributes; a number in any digits, `_loose_shape`)."""
    key = fact.key
    plain_value = _THOUSANDS.sub("", fact.value)
    attrs = _fact_attrs(key, plain_value)
    out = [p for attr in attrs for p in _pred_patterns(attr, _loose_shape(attr))]
    # "<key> is" takes any text unless the value has its attributes' kind
    kinds = _attrs_of(key, plain_value)
    shape = "|".join(_loose_shape(a) for a in kinds) or _FREE
    out.append(re.compile(rf"(?<!\w){re.escape(key)}\s+is\s+(?P<v>{shape})(?=[.;,\n]|$)",
                          re.IGNORECASE))
    return out


def _said_otherwise(fact: Fact, plain_answer: str) -> str | None:
    """Another value the answer gives for the fact's attribute, or None. A number whose digits
    are the fact's, only spaced ("16 20" for 1620), is no other value, nor is a part of the
    fact's value ("102" of "102 pls write about Mina")."""
    for pattern in _said_patterns(fact):
        for m in pattern.finditer(plain_answer):
            said = m["v"]
            if not (_stated(fact, said) or _stated(fact, _DIGIT_SPACE.sub("", said))
                    or _stated(Fact(fact.key, said), _THOUSANDS.sub("", fact.value))):
                return said
    return None


# --- unclear: stated only in broken sentences (`pdiff.notes.sentences.sentence_flaw`) ------------


def _broken_only(fact: Fact, sentences: list[tuple[str, str | None]]) -> tuple[str, str] | None:
    """(sentence, flaw) when every sentence that states the fact is broken; None otherwise (a
    value that no one sentence holds is not judged)."""
    holding = [(text, flaw) for text, flaw in sentences if _stated(fact, _THOUSANDS.sub("", text))]
    if holding and all(flaw for _, flaw in holding):
        return holding[0]
    return None


def fact_results(prompt: str, answer: str,
                 facts: Iterable[Fact] | None = None) -> tuple[FactResult, ...]:
    """Each fact of the prompt (or of `facts`, given instead), in order, marked correct, unclear,
    wrong or missing (see the docstring)."""
    prompt = prompt if isinstance(prompt, str) else ""
    answer = answer if isinstance(answer, str) else ""
    plain = _THOUSANDS.sub("", answer)
    facts = _facts_of(prompt, facts)
    allowed = words_of(prompt, *(f"{f.key} {f.value}" for f in facts))
    sentences: list[tuple[str, str | None]] | None = None  # (sentence, flaw), once a fact is stated
    out = []
    for fact in facts:
        if _stated(fact, plain):
            if sentences is None:
                sentences = [(s.strip(), sentence_flaw(s, allowed)) for s in split_sentences(answer)]
            broken = _broken_only(fact, sentences)
            out.append(FactResult(fact, "correct") if broken is None
                       else FactResult(fact, "unclear", *broken))
            continue
        said = _said_otherwise(fact, plain)
        out.append(FactResult(fact, "missing") if said is None else FactResult(fact, "wrong", said))
    return tuple(out)


# --- facts not in the notes ----------------------------------------------------------------------

# "Its motto is Dovra." / "Mira's age is 41.": the key, then the value up to the clause's end
# ("It's" and "She's" are no possessives).
_POSSESSIVE = re.compile(r"(?:^|(?<=\s))(?!(?:It|He|She|That|There|This|What|Who|Here)'s\b)"
                         r"(?:[Ii]ts|[Hh]is|[Hh]er|[Tt]heir|[A-Z]\w*'s)\s+"
                         r"(?P<key>[a-z][a-z ]{0,30}?)\s+is\s+(?P<v>[^.;,\n]{1,60}?)(?=[.;,\n]|$)")


@dataclass(frozen=True)
class Invented:
    key: str  # the attribute's first key ("partner" for "is married to"), or the key as said
    value: str  # the value as the answer says it (thousands separators dropped)
    sentence: str  # the answer's sentence that says it


@lru_cache(maxsize=1)
def _statements() -> tuple[tuple[Attr, tuple[str, ...], re.Pattern[str]], ...]:
    """Every predicate of every attribute of every kind, compiled once, with the words of 3+
    letters it cannot match without (a cheap test first: a long answer is one long sentence)."""
    return tuple((a, tuple(re.findall(r"[a-z]{3,}", pred.lower().replace("{v}", " "))), p)
                 for kind in ATTRS.values() for a in kind
                 for pred, p in zip(a.preds, _pred_patterns(a)))


def _statements_in(sentence: str) -> list[tuple[str, str, frozenset[str]]]:
    """Each attribute a sentence (thousands separators dropped) states, in order: (key, value,
    every key of its attribute). A known key said with a value not of its kind is not a statement."""
    low = sentence.lower()
    out = [(m.start(), attr.keys[0], m["v"], frozenset(attr.keys)) for attr, words, pattern in _statements()
           if all(w in low for w in words) for m in pattern.finditer(sentence)]
    for m in _POSSESSIVE.finditer(sentence):
        key, value = " ".join(m["key"].split()), m["v"].strip()
        if key not in KNOWN_KEYS and len(key.split()) > MAX_UNKNOWN_KEY_WORDS:
            continue
        attrs = _attrs_of(key, value)
        if attrs:
            out.append((m.start(), attrs[0].keys[0], value, frozenset(k for a in attrs for k in a.keys)))
        elif key not in ATTR_KEYS:
            out.append((m.start(), key, value, frozenset({key})))
    return [said for _, *said in sorted(out, key=lambda s: s[0])]


def invented_facts(prompt: str, answer: str,
                   facts: Iterable[Fact] | None = None) -> tuple[Invented, ...]:
    """Every statement of the answer whose value the notes do not give (see the docstring), once
    per key and value, in the order the answer says them. `facts` default to the prompt's."""
    prompt = prompt if isinstance(prompt, str) else ""
    answer = answer if isinstance(answer, str) else ""
    given = {" ".join(f.key.split()).lower() for f in _facts_of(prompt, facts)}
    plain_prompt = _THOUSANDS.sub("", prompt)
    out: dict[tuple[str, str], Invented] = {}
    for sentence in split_sentences(answer):
        for key, value, keys in _statements_in(_THOUSANDS.sub("", sentence)):
            if keys & given or _stated(Fact(key, value), plain_prompt):
                continue  # a fact of that attribute is given (a "wrong" value), or the prompt says it
            out.setdefault((key, value.casefold()), Invented(key, value, sentence.strip()))
    return tuple(out.values())
