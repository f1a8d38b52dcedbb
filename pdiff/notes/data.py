"""Notes to text: a deterministic generator of instruction/answer pairs for training and evaluation.

Each prompt lists 3 to 5 facts about one made-up entity (a city, a product, a person or an animal)
in a fixed, machine-parsable tail ("Facts: key: value; key: value."), after an instruction whose
wording varies. The reference answer is organised as Planned Diffusion wants it: round 1 holds 2
to 4 one-sentence sections (one per group of facts, each with a short topic); about half of the
examples add a round 2 with one summary sentence that restates the name and a fact or two.

The language is deliberately small (a few hundred common words, made-up names and numbers) so
that a tiny model can learn it. Made-up names come from syllables; a stable hash splits the name
space, so held-out examples use names that never occur in training.

This module knows nothing about tokenizers, control tags, span lengths or models, and it does
not judge answers (that is `pdiff.notes.checker`).
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "heldout")
KINDS = ("city", "product", "person", "animal")


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

    @property
    def answer(self) -> str:
        """Clean text: every section text, in order, joined with one space."""
        return " ".join(s.text for r in self.rounds for s in r)


# ---- made-up names -------------------------------------------------------------------------
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kr", "st", "tr", "vel", "or", "al", "el")
_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "ai")
_ENDINGS = ("", "", "a", "i", "n", "sk", "r", "th", "ra", "ni", "l", "m")


def name_split(name: str) -> str:
    """The split a made-up name belongs to: a stable hash sends about 1 in 5 to "heldout"."""
    return "heldout" if zlib.crc32(name.lower().encode()) % 5 == 0 else "train"


def make_name(rng: random.Random, split: str = "train") -> str:
    """A capitalised made-up name of 2-3 syllables, drawn from `split`'s part of the name space."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    while True:
        n = 2 if rng.random() < 0.85 else 3
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
        name = (name + rng.choice(_ENDINGS)).capitalize()
        if 4 <= len(name) <= 8 and name_split(name) == split:
            return name


# ---- attributes: value lists, groups and sentence templates -------------------------------
# Each attribute: (group, values or None for a name/number drawn in _value, predicate templates).
# A predicate follows a singular subject ("Velora", "It", "The lamp") and contains {v} verbatim.
_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown", "orange",
            "purple", "pink", "silver", "golden")
_ATTRS: dict[str, dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]]] = {
    "city": {
        "country": ("location", None, (
            "lies in the country of {v}", "is a city in {v}", "is found in the north of {v}",
            "is one of the oldest cities in {v}", "is located in the land of {v}")),
        "river": ("location", None, (
            "sits on the banks of {v}", "stands beside {v}", "is built along {v}",
            "was built right next to {v}")),
        "population": ("people", None, (
            "is home to about {v} people", "has a population of {v}",
            "has around {v} people living in it", "counts {v} people today")),
        "known for": ("economy", (
            "glass lanterns", "wool blankets", "fresh bread", "old bridges", "blue tiles",
            "fine cheese", "river boats", "stone towers", "apple orchards", "summer markets",
            "silver jewellery", "wooden toys"), (
            "is known for its {v}", "is famous for {v}", "is best known for its {v}",
            "has a long history of making {v}", "draws many visitors with its {v}")),
        "climate": ("climate", ("mild", "warm", "cold", "dry", "wet", "rainy", "windy", "sunny",
                                "snowy", "hot"), (
            "has a {v} climate for most of the year", "enjoys {v} weather most of the year",
            "is known for its {v} weather", "has {v} weather in every season")),
    },
    "product": {
        "maker": ("maker", None, (
            "is made by a company called {v}", "is built by a firm called {v}",
            "comes from a small company named {v}", "is produced by {v}")),
        "price": ("price", None, (
            "costs {v} in most shops", "usually sells for {v}", "is priced at {v}",
            "can be bought for {v}")),
        "colour": ("look", _COLOURS, (
            "is {v} in colour", "comes in a bright {v} colour", "is painted {v} all over",
            "has a {v} finish")),
        "material": ("look", ("wood", "steel", "glass", "clay", "leather", "cotton", "wool",
                              "plastic", "stone", "copper", "bamboo", "paper"), (
            "is made mostly of {v}", "is carefully made from {v}", "uses {v} as its main material")),
        "use": ("use", None, (
            "is mostly used for {v}", "is designed for {v}", "is a good choice for {v}",
            "helps people with {v}")),
    },
    "person": {
        "job": ("work", ("baker", "teacher", "farmer", "doctor", "painter", "sailor",
                         "carpenter", "nurse", "gardener", "writer", "tailor", "musician",
                         "pilot", "cook"), (
            "works full time as a {v}", "has been a {v} for many years", "earns a living as a {v}",
            "is a {v} by trade")),
        "home town": ("background", None, (
            "grew up in the town of {v}", "comes from the town of {v}", "was born and raised in {v}",
            "lives in the small town of {v}")),
        "age": ("background", None, (
            "is {v} years old", "is now {v} years old", "turned {v} this year")),
        "hobby": ("interests", ("chess", "fishing", "painting", "running", "singing",
                                "gardening", "swimming", "reading", "cycling", "dancing",
                                "hiking", "knitting"), (
            "enjoys {v} in the evening", "spends most free time on {v}", "loves {v} more than anything",
            "has a passion for {v}")),
        "favourite food": ("food", ("soup", "apples", "rice", "cheese", "bread", "noodles",
                                    "fish", "cake", "plums", "beans"), (
            "likes {v} more than any other food", "eats {v} whenever possible",
            "has {v} as a favourite food", "always orders {v} at dinner")),
    },
    "animal": {
        "habitat": ("habitat", ("forests", "rivers", "mountains", "deserts", "grasslands",
                                "swamps", "caves", "lakes", "hills", "islands"), (
            "lives in {v} all year", "makes its home in {v}", "is found mostly in {v}",
            "can be seen in {v}")),
        "diet": ("diet", ("insects", "fish", "grass", "seeds", "fruit", "leaves", "small birds",
                          "roots", "berries", "worms"), (
            "eats mostly {v} each day", "feeds mainly on {v}", "lives on a diet of {v}",
            "hunts or gathers {v} every day")),
        "size": ("body", None, (
            "grows to about {v} long", "is about {v} long", "reaches {v} in length")),
        "colour": ("body", _COLOURS, (
            "has thick {v} fur", "is mostly {v} in colour", "has a soft {v} coat")),
        "lifespan": ("life", None, (
            "lives for about {v}", "can live for {v}", "has a lifespan of {v}")),
    },
}
_TOPICS: dict[str, tuple[str, ...]] = {
    "location": ("location", "geography", "where it is"),
    "people": ("people", "population"),
    "economy": ("economy", "trade", "highlights"),
    "climate": ("climate", "weather"),
    "maker": ("maker", "origin", "who makes it"),
    "price": ("price", "cost"),
    "look": ("look", "appearance", "design"),
    "use": ("use", "purpose", "what it does"),
    "work": ("work", "job", "career"),
    "background": ("background", "personal details", "basics"),
    "interests": ("interests", "free time", "hobbies"),
    "food": ("food", "favourite food", "tastes"),
    "habitat": ("habitat", "home", "where it lives"),
    "diet": ("diet", "food", "what it eats"),
    "body": ("appearance", "body", "looks"),
    "life": ("lifespan", "life", "life span"),
}
_PRODUCTS = {
    "lamp": ("reading at night", "lighting a room"), "kettle": ("making tea", "boiling water"),
    "chair": ("sitting at a desk", "resting in the garden"),
    "backpack": ("carrying books", "long walks"), "knife": ("cutting bread", "cooking"),
    "bottle": ("storing water", "long walks"), "blanket": ("keeping warm", "cold nights"),
    "radio": ("listening to music", "hearing the news"),
}
_INSTRUCTIONS = (
    "Write a short profile of {ref}.", "Write a short description of {ref}.",
    "Describe {ref} in a few sentences.", "Give a brief description of {ref}.",
    "Write a short report on {ref}.", "Write a few sentences about {ref}.",
    "Please describe {ref} using the facts below.", "Tell me about {ref}.",
    "Using the facts below, write a short text about {ref}.",
    "Summarise what is known about {ref}.",
)
_SUMMARY_TOPICS = ("summary", "conclusion", "in short", "overall")
_SUMMARY_OPENERS = ("In short,", "To sum up,", "All in all,", "Overall,")
# Kind-specific summaries: (keys they need, template). {n} is the entity reference.
_SUMMARIES: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "city": ((("known for", "river"), "{o} {n} is a city of {known_for} on {river}."),
             (("population", "country"), "{o} {n} is a city of {population} people in {country}."),
             (("climate", "known for"), "{o} {n} is a {climate} place famous for {known_for}.")),
    "product": ((("colour", "use"), "{o} {n} is a {colour} tool made for {use}."),
                (("material", "price"), "{o} {n} is a {material} product that costs {price}."),
                (("maker",), "{o} {n} is a useful product from {maker}.")),
    "person": ((("job", "home town"), "{o} {n} is a {job} from {home_town}."),
               (("job", "hobby"), "{o} {n} is a {job} who loves {hobby}."),
               (("age", "job"), "{o} {n} is a {age} year old {job}.")),
    "animal": ((("colour", "habitat"), "{o} {n} is a {colour} animal of the {habitat}."),
               (("diet", "habitat"), "{o} {n} eats {diet} and lives in {habitat}."),
               (("size", "lifespan"), "{o} {n} is about {size} long and lives {lifespan}.")),
}


def _value(kind: str, key: str, rng: random.Random, names: list[str], product: str) -> str:
    values = _ATTRS[kind][key][1]
    if values is not None:
        return rng.choice(values)
    if key in ("country", "home town", "maker"):
        return names.pop()
    if key == "river":
        return "the " + names.pop()
    if key == "population":
        return str(rng.randrange(800, 99_000, 100) if rng.random() < 0.6
                   else rng.randint(300, 99_999))
    if key == "price":
        return f"{rng.randint(3, 900)} dollars"
    if key == "use":
        return rng.choice(_PRODUCTS[product])
    if key == "age":
        return str(rng.randint(18, 89))
    if key == "size":
        return f"{rng.randint(5, 300)} cm"
    if key == "lifespan":
        return f"{rng.randint(2, 60)} years"
    raise KeyError(f"no value rule for {kind}.{key}")


def _refs(kind: str, name: str, product: str) -> tuple[str, str, tuple[str, ...]]:
    """(reference in the prompt, first subject in the answer, later subjects)."""
    if kind == "city":
        return f"the city {name}", name, (name, "The city", "It")
    if kind == "product":
        full = f"The {name} {product}"
        return full[0].lower() + full[1:], full, (full, f"The {product}", "It")
    if kind == "person":
        return f"a person named {name}", name, (name,)
    return f"an animal called the {name}", f"The {name}", (f"The {name}", "It", "This animal")


_AN = re.compile(r"\b([Aa]) (?=(?:orange|8|8\d|11|18)\b)")


def _fix(text: str) -> str:
    """'a orange' -> 'an orange', 'a 18 year old' -> 'an 18 year old'."""
    return _AN.sub(r"\1n ", text)


def _sentence(subject: str, preds: list[str]) -> str:
    body = preds[0] if len(preds) == 1 else ", ".join(preds[:-1]) + " and " + preds[-1]
    return _fix(f"{subject} {body}.")


def make_example(rng: random.Random, split: str = "train") -> Example:
    """One example; every random choice comes from `rng`, every made-up name from `split`."""
    kind = rng.choice(KINDS)
    attrs = _ATTRS[kind]
    keys = list(attrs)
    while True:  # 3-5 facts that fall into 2-4 groups
        chosen = rng.sample(keys, rng.randint(3, 5))
        groups = {attrs[k][0] for k in chosen}
        if 2 <= len(groups) <= 4:
            break
    names: list[str] = []
    while len(names) < 4:  # the entity and up to 3 name-valued facts, all distinct
        nm = make_name(rng, split)
        if nm not in names:
            names.append(nm)
    name = names.pop(0)
    product = rng.choice(sorted(_PRODUCTS))
    values = {k: _value(kind, k, rng, names, product) for k in keys if k in chosen}
    ref, first, later = _refs(kind, name, product)

    facts = [Fact(k, values[k]) for k in chosen]
    rng.shuffle(facts)
    instruction = rng.choice(_INSTRUCTIONS).format(ref=ref)
    prompt = instruction + " Facts: " + "; ".join(f"{f.key}: {f.value}" for f in facts) + "."

    sections = []
    for group in dict.fromkeys(attrs[k][0] for k in keys):  # groups in canonical order
        members = [k for k in keys if k in values and attrs[k][0] == group]
        if not members:
            continue
        subject = first if not sections else rng.choice(later)
        preds = [rng.choice(attrs[k][2]).format(v=values[k]) for k in members]
        sections.append(Section(rng.choice(_TOPICS[group]), _sentence(subject, preds)))
    rounds: list[tuple[Section, ...]] = [tuple(sections)]

    if rng.random() < 0.5:
        opener = rng.choice(_SUMMARY_OPENERS)
        subject = "the" + first[3:] if first.startswith("The ") else first
        fits = [t for need, t in _SUMMARIES[kind] if all(k in values for k in need)]
        if fits and rng.random() < 0.7:
            fields = {k.replace(" ", "_"): v for k, v in values.items()}
            text = rng.choice(fits).format(o=opener, n=subject, **fields)
        else:
            k = rng.choice(sorted(values))
            text = f"{opener} {subject} {rng.choice(attrs[k][2]).format(v=values[k])}."
        rounds.append((Section(rng.choice(_SUMMARY_TOPICS), _fix(text)),))
    return Example(prompt, tuple(facts), tuple(rounds), kind, name)


def make_split(split: str, n: int, seed: int = 0) -> list[Example]:
    """`n` examples with distinct prompts, deterministic given (split, seed)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"pdiff-notes:{split}:{seed}")
    out: list[Example] = []
    seen: set[str] = set()
    while len(out) < n:
        ex = make_example(rng, split)
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
    }


def example_from_dict(d: dict) -> Example:
    return Example(
        prompt=d["instruction"],
        facts=tuple(Fact(k, v) for k, v in d.get("facts", [])),
        rounds=tuple(tuple(Section(s["topic"], s["text"]) for s in r) for r in d.get("rounds", [])),
        kind=d.get("kind", ""),
        name=d.get("name", ""),
    )


def write_jsonl(examples: Iterable[Example], path: str | Path) -> None:
    """One JSON object per line: instruction, answer, facts, rounds (plus kind and name)."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(example_to_dict(ex), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Example]:
    """Examples back from a `write_jsonl` file (blank lines are skipped)."""
    with open(path, encoding="utf-8") as fh:
        return [example_from_dict(json.loads(line)) for line in fh if line.strip()]
