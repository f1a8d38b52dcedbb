"""Notes to text, v5: a deterministic generator of instruction/answer pairs for training and evaluation.

A prompt gives 8 to 17 facts about one made-up entity (a city, a product, a person or an animal)
the way people type them (`FORMS`): a "Facts: key: value; ..." tail, "from these notes: ...",
bullet lines, `key = value` lines, a comma list, or short sentences ("It was founded in 1843.").
Key names vary ("founded" / "established in", "known for" / "famous for", "maker" / "made by",
"job" / "works as"), and the instruction comes before or after the facts. Some prompts carry one
or two keys from an open pool of extra details ("motto", "mascot"): the answer states them as
"Its motto is ...", so a key the model has never seen is copied, not replaced by an invention.

The reference answer is canonical (v3): a function of the prompt's facts, not of how they are
typed. Each attribute is said with its first predicate; sections follow the kind's group order
under the group's first topic, facts follow the lexicon's order, sentences pair facts (2 -> 1+1,
3 -> 2+1, 4 -> 2+2), the name opens each section and "It" the later sentences. Parallel decoding
fills positions independently, so a many-valued answer would mix its modes ("The city has
Kravask as its ma."); the v2 style, with random predicates, subjects and orders, stays as
`style="varied"`, and both styles draw exactly the same prompts.

The reference answer is shaped for Planned Diffusion: round 1 holds 4 to 6 sections, one per
group of facts (each with a short topic), of 2 to 3 sentences stating 2 to 4 facts, about 25 to
50 tokens each (task v5's training split also has sections of one fact, and so prompts of 4 to 7
facts). Only a prompt that asks for a summary gets a round 2: one short sentence after a
`<sync/>` (it runs strictly after round 1, so it is kept short and is never added unasked).
Every value is copied exactly from the prompt.

Made-up names come from syllables (task v5's training split: half of them from a wider
alphabet); a stable hash splits the name space (and the pool of extra keys), so held-out examples
use names and extra keys that training never sees. `TASKS` names the training split's variety;
the held-out split is the same in each.

This module knows nothing about tokenizers, control tags, span lengths or models, and it does
not judge answers (that is `pdiff.notes.checker`). Its tables live in `pdiff.notes.lexicon`.
"""

from __future__ import annotations

import functools
import json
import random
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pdiff.notes.lexicon import (
    ATTR_KEYS,
    ATTRS,
    COLOURS,
    EXTRA_KEYS,
    HEADS,
    INSTRUCTIONS,
    MORE_EXTRA_KEYS,
    PRODUCTS,
    SENTENCE_KEYS,
    SUMMARY_ASKS,
    SUMMARY_OPENERS,
    SUMMARY_TOPICS,
    TOPICS,
    Attr,
)

SPLITS = ("train", "heldout")
KINDS = ("city", "product", "person", "animal")
FORMS = ("facts", "notes", "bullets", "equals", "commas", "sentences")
# canonical: the answer is a function of the prompt (v3, what the bundled models learn);
# varied: v2's random predicates, subjects, orders and groupings (many answers per prompt).
STYLES = ("canonical", "varied")
# The training split's variety (the held-out split is the same in every task). v3: 25 extra-detail
# keys. v4: lexicon.MORE_EXTRA_KEYS too, so that a model learns to copy a key rather than the
# keys. v5: v4, and half the made-up names from a wider alphabet ("Quillon", "Tillby", "Ivo"), and
# sections of a single fact: a model trained on v4 mis-copied such names and invented a second
# fact for a section given one, on prompts people typed.
# v6: task v5's prompts for 3 in 10 examples, and for the rest the composed prompts of
# `pdiff.notes.wide` (1 to 12 facts, the name anywhere and in any shape, numbers as people type
# them): the v5 models respelled names, invented facts and lost a subject given in a field on
# prompts that visitors wrote.
TASKS = ("v6", "v5", "v4", "v3")
WIDE_SHARE = 0.7  # task v6: the share of training examples drawn by pdiff.notes.wide


@dataclass(frozen=True)
class Fact:
    key: str
    value: str


@dataclass(frozen=True)
class Section:
    topic: str
    text: str


@dataclass(frozen=True)
class Example:
    prompt: str
    facts: tuple[Fact, ...]
    rounds: tuple[tuple[Section, ...], ...]
    kind: str = ""  # one of KINDS
    name: str = ""  # the made-up entity name
    form: str = ""  # one of FORMS: how the prompt gives its facts

    @property
    def answer(self) -> str:
        """Clean text: every section text, in order, joined with one space."""
        return " ".join(s.text for r in self.rounds for s in r)


# ---- made-up names -------------------------------------------------------------------------
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kr", "st", "tr", "vel", "or", "al", "el")
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "ai")
_ENDINGS = ("", "", "a", "i", "n", "sk", "r", "th", "ra", "ni", "l", "m")
# task v5's wider name space: any letter, doubled consonants, English-looking endings
_WIDE_ONSETS = _ONSETS + ("", "c", "h", "w", "j", "y", "q", "x", "ch", "sh", "th", "gr", "pl", "cl",
                          "fl", "qu", "wh", "sn", "sp", "gl", "fr", "pr", "bl", "sl", "sw", "sk")
_WIDE_MIDDLES = ("rr", "ll", "nn", "ss", "tt", "mm", "ck", "lv", "rn", "nd", "sl", "lt", "rk")
_WIDE_VOWELS = _VOWELS + ("e", "i", "u", "ee", "ou", "ea", "y", "io", "au", "oa")
_WIDE_ENDINGS = _ENDINGS + ("y", "by", "ton", "wick", "ck", "ll", "ss", "ne", "re", "mere", "son",
                            "ow", "do", "go", "vo", "lo", "so", "x", "ley", "ford", "dale", "ia",
                            "o", "e", "et", "en", "er", "an", "on", "is", "us", "ey", "ard")


def name_split(name: str) -> str:
    """The split a made-up name (or extra key) belongs to: a stable hash sends 1 in 5 to "heldout"."""
    return "heldout" if zlib.crc32(name.lower().encode()) % 5 == 0 else "train"


@functools.cache  # one pool per (split, task), not one per example
def extra_keys(split: str, task: str = "v5") -> tuple[str, ...]:
    """The extra-detail keys `split` draws from. From task v4 on, the training pool leaves out
    every key of the held-out split and every key that shares a word with one, and the
    attributes' own keys."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    pool = tuple(k for k in EXTRA_KEYS if name_split(k) == split)
    if split == "heldout" or task == "v3":
        return pool
    heldout_words = {w for k in extra_keys("heldout") for w in k.split()}
    return pool + tuple(k for k in MORE_EXTRA_KEYS if name_split(k) == "train" and k not in ATTR_KEYS
                        and k not in pool and not heldout_words & set(k.split()))


def make_name(rng: random.Random, split: str = "train", wide: bool = False) -> str:
    """A capitalised made-up name of 2-3 syllables, drawn from `split`'s part of the name space;
    `wide`: half of them from task v5's wider alphabet, 3 to 9 letters."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if wide and rng.random() < 0.5:
        while True:
            n = 2 if rng.random() < 0.8 else 3
            onsets = ["" if rng.random() < 0.2 else rng.choice(_WIDE_ONSETS)]  # "Ada", "Orla"
            onsets += [rng.choice(_WIDE_MIDDLES if rng.random() < 0.25 else _WIDE_ONSETS)
                       for _ in range(n - 1)]
            name = "".join(o + rng.choice(_WIDE_VOWELS) for o in onsets)
            name = (name + rng.choice(_WIDE_ENDINGS)).capitalize()
            if 3 <= len(name) <= 9 and name_split(name) == split:
                return name
    while True:
        n = 2 if rng.random() < 0.85 else 3
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
        name = (name + rng.choice(_ENDINGS)).capitalize()
        if 4 <= len(name) <= 8 and name_split(name) == split:
            return name


def _value(attr: Attr, rng: random.Random, names: list[str], product: str, split: str,
           wide: bool) -> str:
    if isinstance(attr.values, tuple):
        return rng.choice(attr.values)
    rule = attr.values
    if rule == "name":
        return names.pop() if names else make_name(rng, split, wide)
    if rule == "the name":
        return "the " + (names.pop() if names else make_name(rng, split, wide))
    numbers = {
        "year": lambda: str(rng.randint(1100, 1990)),
        "launch": lambda: str(rng.randint(1950, 2025)),
        "population": lambda: str(rng.randrange(800, 99_000, 100) if rng.random() < 0.6
                                  else rng.randint(300, 99_999)),
        "price": lambda: f"{rng.randint(3, 900)} dollars",
        "warranty": lambda: f"{rng.randint(1, 10)} years",
        "weight": lambda: f"{rng.randint(100, 5000)} grams",
        "rating": lambda: f"{rng.randint(1, 10)} out of 10",
        "use": lambda: rng.choice(PRODUCTS[product]),
        "years": lambda: f"{rng.randint(2, 60)} years",
        "age": lambda: str(rng.randint(18, 89)),
        "count": lambda: str(rng.randint(2, 9)),
        "size": lambda: f"{rng.randint(5, 300)} cm",
        "animal weight": lambda: f"{rng.randint(1, 400)} kg",
    }
    if rule not in numbers:
        raise KeyError(f"no value rule {rule!r}")
    return numbers[rule]()


def _extra_value(rng: random.Random, split: str, wide: bool) -> str:
    roll = rng.random()
    if roll < 0.4:
        return make_name(rng, split, wide)
    if roll < 0.7:
        return str(rng.randint(2, 9999))
    return rng.choice(COLOURS)


def _refs(kind: str, name: str, product: str) -> tuple[str, str, tuple[str, ...], str]:
    """(reference in the prompt, first subject in the answer, later subjects, possessive)."""
    if kind == "city":
        return f"the city {name}", name, (name, "The city", "It"), "Its"
    if kind == "product":
        full = f"The {name} {product}"
        return full[0].lower() + full[1:], full, (full, f"The {product}", "It"), "Its"
    if kind == "person":
        return f"a person named {name}", name, (name,), f"{name}'s"
    return f"an animal called the {name}", f"The {name}", (f"The {name}", "It", "This animal"), "Its"


_AN = re.compile(r"\b([Aa]) (?=(?:orange|8|8\d|11|18)\b)")


def _fix(text: str) -> str:
    """'a orange' -> 'an orange', 'a 18 year old' -> 'an 18 year old'."""
    return _AN.sub(r"\1n ", text)


def _sentence(subject: str, preds: list[str]) -> str:
    body = preds[0] if len(preds) == 1 else ", ".join(preds[:-1]) + " and " + preds[-1]
    return _fix(f"{subject} {body}.")


def _sentence_sizes(n: int, rng: random.Random) -> list[int]:
    """How a group's n facts (1-4) split into sentences: 2 or 3 sentences once there are 2 facts."""
    if n <= 2:
        return [1] * n
    if n == 3:
        return rng.choice([[2, 1], [1, 2], [1, 1, 1]])
    return rng.choice([[2, 2], [2, 1, 1], [1, 2, 1]])


def _render_prompt(form: str, instruction: str, facts: list[Fact], subject: str, possessive: str,
                   rng: random.Random) -> str:
    """The prompt in one of FORMS, the instruction before or after the facts."""
    first = rng.random() < 0.7
    if form == "sentences":
        def say(f: Fact) -> str:
            template = SENTENCE_KEYS.get(f.key)
            if template:
                return _fix(template.format(s=subject, v=f.value))
            return _fix(f"{possessive} {f.key} is {f.value}.")
        body = " ".join(say(f) for f in facts)
        return f"{instruction}. {body}" if first else f"{body} {instruction}."
    if form == "notes":
        body = ", ".join(f"{f.key}: {f.value}" for f in facts)
        return f"{instruction} from these notes: {body}." if first else f"Notes: {body}. {instruction}."
    if form == "bullets":
        mark = rng.choice(("-", "*", "•"))
        body = "\n".join(f"{mark} {f.key}: {f.value}" for f in facts)
        return f"{instruction}.\n{body}" if first else f"{body}\n{instruction}."
    if form == "equals":
        sep = rng.choice(("\n", "; "))
        body = sep.join(f"{f.key} = {f.value}" for f in facts)
        return f"{instruction}.\n{body}" if first else f"{body}\n{instruction}."
    head = rng.choice(HEADS)
    if form == "commas":
        body = ", ".join(f"{f.key}: {f.value}" for f in facts)
    else:  # "facts"
        body = "; ".join(f"{f.key}: {f.value}" for f in facts)
    return f"{instruction}. {head} {body}." if first else f"{head} {body}. {instruction}."


def make_example(rng: random.Random, split: str = "train", style: str = "canonical",
                 task: str = "v5") -> Example:
    """One example; every random choice comes from `rng`, every made-up name from `split`; the
    answer in `style` (one of STYLES); the training split's variety of `task` (one of TASKS)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    wide = split == "train" and task == "v5"
    kind = rng.choice(KINDS)
    attrs = ATTRS[kind]
    groups = list(dict.fromkeys(a.group for a in attrs))
    chosen_groups = set(rng.sample(groups, min(len(groups), rng.randint(4, 6))))
    chosen: list[Attr] = []
    for group in groups:
        members = [a for a in attrs if a.group == group]
        if group in chosen_groups:
            chosen += rng.sample(members, rng.randint(1 if wide else 2, len(members)))
    names: list[str] = []
    while len(names) < 8:  # the entity and the name-valued facts, all distinct
        nm = make_name(rng, split, wide)
        if nm not in names:
            names.append(nm)
    name = names.pop(0)
    product = rng.choice(sorted(PRODUCTS))
    ref, first, later, possessive = _refs(kind, name, product)
    values = {a: _value(a, rng, names, product, split, wide) for a in chosen}
    typed = {a: rng.choice(a.keys) for a in chosen}
    extra_facts: list[Fact] = []
    if rng.random() < 0.3:
        pool = extra_keys(split, task)
        extra_facts = [Fact(k, _extra_value(rng, split, wide)) for k in rng.sample(pool, rng.randint(1, 2))]

    facts = [Fact(typed[a], values[a]) for a in chosen] + extra_facts
    rng.shuffle(facts)
    form = rng.choice(FORMS)
    summary = rng.random() < 0.2
    instruction = rng.choice(INSTRUCTIONS).format(ref=ref)
    if summary:
        instruction += " " + rng.choice(SUMMARY_ASKS)
    subject = "It" if kind != "person" else name
    prompt = _render_prompt(form, instruction, facts, subject, possessive, rng)

    # The varied answer is always drawn, so the random stream (and so every later prompt) is the
    # same in both styles: the canonical style's prompts are exactly v2's.
    varied = _varied_rounds(rng, groups, chosen, values, extra_facts, summary, (first, later, possessive))
    if style == "varied":
        rounds = varied
    else:
        in_prompt = [f for f in facts if f in extra_facts]  # extra details in the order the prompt gives them
        rounds = _canonical_rounds(kind, chosen, values, in_prompt, summary, first, possessive)
    return Example(prompt, tuple(facts), rounds, kind, name, form)


def _varied_rounds(rng: random.Random, groups: list[str], chosen: list[Attr], values: dict,
                   extras: list[Fact], summary: bool, refs: tuple) -> tuple[tuple[Section, ...], ...]:
    """v2's answer: random fact order, predicate, subject, sentence grouping, topic and opener;
    `refs` is (first subject, later subjects, possessive)."""
    first, later, possessive = refs
    sections = []
    for group in groups:
        members = [a for a in chosen if a.group == group]
        if not members:
            continue
        rng.shuffle(members)
        sentences, at = [], 0
        for size in _sentence_sizes(len(members), rng):
            subj = first if not sections and not sentences else rng.choice(later)
            preds = [rng.choice(a.preds).format(v=values[a]) for a in members[at:at + size]]
            sentences.append(_sentence(subj, preds))
            at += size
        sections.append(Section(rng.choice(TOPICS[group]), " ".join(sentences)))
    if extras:
        text = " ".join(_fix(f"{possessive} {f.key} is {f.value}.") for f in extras)
        sections.append(Section(rng.choice(TOPICS["extra"]), text))
    rounds: list[tuple[Section, ...]] = [tuple(sections)]
    if summary:
        opener = rng.choice(SUMMARY_OPENERS)
        a = rng.choice(chosen)
        subj = "the" + first[3:] if first.startswith("The ") else first
        text = _fix(f"{opener} {subj} {rng.choice(a.preds).format(v=values[a])}.")
        rounds.append((Section(rng.choice(SUMMARY_TOPICS), text),))
    return tuple(rounds)


# Canonical sentence grouping of a section's n facts (2-4): pairs first, as in "A and B. C."
_CANONICAL_SIZES = {1: [1], 2: [1, 1], 3: [2, 1], 4: [2, 2]}


def _canonical_rounds(kind: str, chosen: list[Attr], values: dict, extras: list[Fact], summary: bool,
                      first: str, possessive: str) -> tuple[tuple[Section, ...], ...]:
    """The answer as a function of the prompt's facts: sections in the kind's group order, facts in
    the lexicon's order inside a section, each attribute's first predicate, the section's first
    topic, a fixed sentence grouping, and the subject rule "the name opens every section, then
    It" (a person is always named). Extra details follow in the prompt's order; the summary,
    when asked, restates the first fact."""
    order = {a: i for i, a in enumerate(ATTRS[kind])}
    ranked = sorted(chosen, key=order.__getitem__)
    again = first if kind == "person" else "It"
    sections = []
    for group in dict.fromkeys(a.group for a in ranked):
        members = [a for a in ranked if a.group == group]
        sentences, at = [], 0
        for size in _CANONICAL_SIZES[len(members)]:
            preds = [a.preds[0].format(v=values[a]) for a in members[at:at + size]]
            sentences.append(_sentence(first if not sentences else again, preds))
            at += size
        sections.append(Section(TOPICS[group][0], " ".join(sentences)))
    if extras:
        text = " ".join(_fix(f"{possessive} {f.key} is {f.value}.") for f in extras)
        sections.append(Section(TOPICS["extra"][0], text))
    rounds: list[tuple[Section, ...]] = [tuple(sections)]
    if summary:
        subj = "the" + first[3:] if first.startswith("The ") else first
        text = _fix(f"{SUMMARY_OPENERS[0]} {subj} {ranked[0].preds[0].format(v=values[ranked[0]])}.")
        rounds.append((Section(SUMMARY_TOPICS[0], text),))
    return tuple(rounds)


def make_split(split: str, n: int, seed: int = 0, style: str = "canonical",
               task: str = "v5") -> list[Example]:
    """`n` examples with distinct prompts, deterministic given (split, seed, task); the prompts
    do not depend on `style`, and held-out prompts not on `task`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    from pdiff.notes.wide import make_wide_example  # wide builds on this module

    rng = random.Random(f"pdiff-notes-v2:{split}:{seed}")
    out: list[Example] = []
    seen: set[str] = set()
    while len(out) < n:
        if task == "v6" and split == "train" and rng.random() < WIDE_SHARE:
            ex = make_wide_example(rng, split)
        else:
            ex = make_example(rng, split, style, "v5" if task == "v6" else task)
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
    return out


def example_to_dict(ex: Example) -> dict:
    return {
        "instruction": ex.prompt,
        "answer": ex.answer,
        "facts": [[f.key, f.value] for f in ex.facts],
        "rounds": [[{"topic": s.topic, "text": s.text} for s in r] for r in ex.rounds],
        "kind": ex.kind,
        "name": ex.name,
        "form": ex.form,
    }


def example_from_dict(d: dict) -> Example:
    return Example(
        prompt=d["instruction"],
        facts=tuple(Fact(k, v) for k, v in d.get("facts", [])),
        rounds=tuple(tuple(Section(s["topic"], s["text"]) for s in r) for r in d.get("rounds", [])),
        kind=d.get("kind", ""),
        name=d.get("name", ""),
        form=d.get("form", ""),
    )


def write_jsonl(examples: Iterable[Example], path: str | Path) -> None:
    """One JSON object per line: instruction, answer, facts, rounds (plus kind, name, form)."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(example_to_dict(ex), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Example]:
    """Examples back from a `write_jsonl` file (blank lines are skipped)."""
    with open(path, encoding="utf-8") as fh:
        return [example_from_dict(json.loads(line)) for line in fh if line.strip()]
