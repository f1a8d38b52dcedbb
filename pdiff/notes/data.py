"""Notes to text, v2: a deterministic generator of instruction/answer pairs for training and evaluation.

A prompt gives 8 to 16 facts about one made-up entity (a city, a product, a person or an animal)
the way people type them (`FORMS`): a "Facts: key: value; ..." tail, "from these notes: ...",
bullet lines, `key = value` lines, a comma list, or short sentences ("It was founded in 1843.").
Key names vary ("founded" / "established in", "known for" / "famous for", "maker" / "made by",
"job" / "works as"), and the instruction comes before or after the facts. Some prompts carry one
or two keys from an open pool of extra details ("motto", "mascot"): the answer states them as
"Its motto is ...", so a key the model has never seen is copied, not replaced by an invention.

The reference answer is shaped for Planned Diffusion: round 1 holds 4 to 6 sections, one per
group of facts (each with a short topic), of 2 to 3 sentences stating 2 to 4 facts, about 25 to
50 tokens each. Only a prompt that asks for a summary gets a round 2: one short sentence after a
`<sync/>` (it runs strictly after round 1, so it is kept short and is never added unasked).
Every value is copied exactly from the prompt.

Made-up names come from syllables; a stable hash splits the name space (and the pool of extra
keys), so held-out examples use names and extra keys that training never sees.

This module knows nothing about tokenizers, control tags, span lengths or models, and it does
not judge answers (that is `pdiff.notes.checker`, which reads its fact forms from `SENTENCE_KEYS`).
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
FORMS = ("facts", "notes", "bullets", "equals", "commas", "sentences")


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


def name_split(name: str) -> str:
    """The split a made-up name (or extra key) belongs to: a stable hash sends 1 in 5 to "heldout"."""
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


# ---- attributes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attr:
    keys: tuple[str, ...]  # the key as typed in a prompt; the first is the canonical one
    group: str  # the section it is stated in
    values: str | tuple[str, ...]  # a list of values, or a rule name for `_value`
    preds: tuple[str, ...]  # predicates after a singular subject, each with {v} verbatim


def _a(keys: str, group: str, values, *preds: str) -> Attr:
    return Attr(tuple(keys.split("|")), group, values, preds)


_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown", "orange",
            "purple", "silver", "golden")
_ATTRS: dict[str, tuple[Attr, ...]] = {
    "city": (
        _a("country|nation", "location", "name", "lies in the country of {v}", "is a city in {v}",
           "is one of the oldest cities in {v}"),
        _a("river", "location", "the name", "sits on the banks of {v}", "stands beside {v}",
           "is built along {v}"),
        _a("region|area", "location", ("the north", "the south", "the east", "the west", "the coast",
                                       "the hills", "the valley"), "is found in {v}", "lies in {v}"),
        _a("founded|established in|founded in", "history", "year", "was founded in {v}",
           "was first built in {v}", "dates back to {v}"),
        _a("founder|founded by", "history", "name", "was founded by {v}", "owes its start to {v}"),
        _a("old name|former name", "history", "name", "was once called {v}", "used to be known as {v}"),
        _a("population|people", "people", "population", "is home to about {v} people",
           "has a population of {v}", "counts {v} people today"),
        _a("mayor|leader", "people", "name", "is led by a mayor called {v}", "has {v} as its mayor"),
        _a("known for|famous for", "economy", (
            "glass lanterns", "wool blankets", "fresh bread", "old bridges", "blue tiles", "fine cheese",
            "river boats", "stone towers", "apple orchards", "summer markets", "silver jewellery",
            "wooden toys"), "is known for its {v}", "is famous for {v}", "is best known for its {v}"),
        _a("industry|main trade", "economy", ("fishing", "farming", "weaving", "mining", "trade",
                                              "pottery", "shipbuilding", "tourism"),
           "lives mostly from {v}", "has {v} as its main trade", "earns its money from {v}"),
        _a("market day", "economy", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                     "Saturday", "Sunday"), "holds its market every {v}",
           "has a busy market on {v}"),
        _a("climate|weather", "climate", ("mild", "warm", "cold", "dry", "wet", "rainy", "windy",
                                          "sunny", "snowy", "hot"),
           "has a {v} climate for most of the year", "enjoys {v} weather most of the year",
           "is known for its {v} weather"),
        _a("best season|best time to visit", "climate", ("spring", "summer", "autumn", "winter"),
           "is at its best in {v}", "is best visited in {v}"),
        _a("landmark|main sight", "sights", ("the old harbour", "a stone tower", "the great library",
                                             "a glass dome", "the clock tower", "the red bridge"),
           "is proud of {v}", "draws visitors to {v}", "has {v} at its heart"),
        _a("festival|yearly event", "sights", ("a lantern festival", "a music festival", "a spring fair",
                                               "a boat race", "a harvest feast"),
           "holds {v} every year", "is busy each year with {v}"),
    ),
    "product": (
        _a("maker|made by|brand", "maker", "name", "is made by a company called {v}",
           "is built by a firm called {v}", "comes from a small company named {v}"),
        _a("made in|origin", "maker", "name", "is made in {v}", "is produced in {v}"),
        _a("launched|released in|launched in", "maker", "launch", "was launched in {v}",
           "first came out in {v}", "has been on sale since {v}"),
        _a("price|cost", "price", "price", "costs {v} in most shops", "usually sells for {v}",
           "is priced at {v}"),
        _a("warranty|guarantee", "price", "warranty", "comes with a warranty of {v}",
           "is covered for {v}"),
        _a("colour|color", "look", _COLOURS, "is {v} in colour", "comes in a bright {v} colour",
           "has a {v} finish"),
        _a("material", "look", ("wood", "steel", "glass", "clay", "leather", "cotton", "wool",
                                "plastic", "stone", "copper", "bamboo", "paper"),
           "is made mostly of {v}", "is carefully made from {v}", "uses {v} as its main material"),
        _a("weight", "look", "weight", "weighs about {v}", "has a weight of {v}"),
        _a("use|used for|purpose", "use", "use", "is mostly used for {v}", "is designed for {v}",
           "is a good choice for {v}"),
        _a("made for|users", "use", ("students", "cooks", "hikers", "families", "travellers",
                                     "children", "farmers", "painters"),
           "is made for {v}", "is popular with {v}", "suits {v} well"),
        _a("feature|special feature", "features", ("a folding handle", "a long battery life",
                                                   "a soft grip", "a hidden pocket", "a quiet motor",
                                                   "a strong lid", "a small light"),
           "has {v}", "offers {v}", "stands out for {v}"),
        _a("rating|score", "features", "rating", "has a rating of {v}", "is rated {v} by buyers"),
    ),
    "person": (
        _a("job|works as|occupation", "work", ("baker", "teacher", "farmer", "doctor", "painter",
                                               "sailor", "carpenter", "nurse", "gardener", "writer",
                                               "tailor", "musician", "pilot", "cook"),
           "works full time as a {v}", "has been a {v} for many years", "earns a living as a {v}"),
        _a("workplace|works at|employer", "work", "name", "works at a place called {v}",
           "has a job at {v}"),
        _a("experience", "work", "years", "has {v} of experience", "has worked for {v}"),
        _a("home town|born in|hometown", "background", "name", "grew up in the town of {v}",
           "comes from the town of {v}", "was born and raised in {v}"),
        _a("age", "background", "age", "is {v} years old", "is now {v} years old",
           "turned {v} this year"),
        _a("hobby|pastime", "interests", ("chess", "fishing", "painting", "running", "singing",
                                          "gardening", "swimming", "reading", "cycling", "dancing",
                                          "hiking", "knitting"),
           "enjoys {v} in the evening", "spends most free time on {v}", "has a passion for {v}"),
        _a("sport|favourite sport", "interests", ("tennis", "football", "rowing", "skiing", "boxing",
                                                  "golf", "climbing"),
           "plays {v} at the weekend", "likes to watch {v}"),
        _a("favourite food|food", "food", ("soup", "apples", "rice", "cheese", "bread", "noodles",
                                           "fish", "cake", "plums", "beans"),
           "likes {v} more than any other food", "eats {v} whenever possible",
           "always orders {v} at dinner"),
        _a("favourite drink|drink", "food", ("tea", "coffee", "milk", "juice", "cocoa", "lemonade"),
           "drinks {v} every morning", "prefers {v} to anything else"),
        _a("pet", "family", ("a cat", "a dog", "a parrot", "two rabbits", "a goat", "three hens"),
           "keeps {v} at home", "looks after {v}"),
        _a("partner|married to", "family", "name", "is married to {v}", "lives with a partner named {v}"),
        _a("siblings", "family", "count", "has {v} siblings", "grew up with {v} siblings"),
    ),
    "animal": (
        _a("habitat|lives in", "habitat", ("forests", "rivers", "mountains", "deserts", "grasslands",
                                           "swamps", "caves", "lakes", "hills", "islands"),
           "lives in {v} all year", "makes its home in {v}", "is found mostly in {v}"),
        _a("range|found in", "habitat", "name", "is found only in {v}", "lives across {v}"),
        _a("diet|eats", "diet", ("insects", "fish", "grass", "seeds", "fruit", "leaves", "small birds",
                                 "roots", "berries", "worms"),
           "eats mostly {v} each day", "feeds mainly on {v}", "lives on a diet of {v}"),
        _a("active at|active", "diet", ("night", "dawn", "dusk", "midday"), "is active at {v}",
           "hunts mostly at {v}", "goes looking for food at {v}"),
        _a("size|length", "body", "size", "grows to about {v} long", "is about {v} long",
           "reaches {v} in length"),
        _a("weight", "body", "animal weight", "weighs about {v}", "can weigh up to {v}"),
        _a("colour|fur colour", "body", _COLOURS, "has thick {v} fur", "is mostly {v} in colour",
           "has a soft {v} coat"),
        _a("lifespan|life span|lives for", "life", "years", "lives for about {v}", "can live for {v}",
           "has a lifespan of {v}"),
        _a("young|litter size", "life", "count", "has {v} young at a time",
           "raises {v} young each year"),
        _a("sound|call", "behaviour", ("a loud whistle", "a soft purr", "a deep growl", "a high chirp",
                                       "a short bark"), "makes {v}", "calls out with {v}"),
        _a("social life|lives", "behaviour", ("alone", "in pairs", "in small herds", "in large flocks",
                                              "in packs"), "spends its life {v}", "usually lives {v}"),
    ),
}
# Extra details: keys from an open pool, stated as "Its {key} is {value}." (held-out keys never
# occur in training, like held-out names).
_EXTRA_KEYS = ("motto", "symbol", "nickname", "mascot", "emblem", "lucky number", "code", "badge",
               "flag colour", "slogan", "anthem", "seal", "crest", "stamp", "label", "tag", "sign",
               "model number", "serial number", "postcode", "team", "club", "star sign", "password",
               "theme", "logo", "banner", "colour code", "charm", "totem")
_TOPICS: dict[str, tuple[str, ...]] = {
    "location": ("location", "geography", "where it is"), "history": ("history", "origins", "past"),
    "people": ("people", "population"), "economy": ("economy", "trade", "work"),
    "climate": ("climate", "weather"), "sights": ("sights", "what to see", "visits"),
    "maker": ("maker", "origin", "who makes it"), "price": ("price", "cost"),
    "look": ("look", "appearance", "design"), "use": ("use", "purpose", "who it is for"),
    "features": ("features", "details"), "work": ("work", "job", "career"),
    "background": ("background", "personal details", "basics"),
    "interests": ("interests", "free time", "hobbies"), "food": ("food", "tastes"),
    "family": ("family", "home life"), "habitat": ("habitat", "home", "where it lives"),
    "diet": ("diet", "food", "feeding"), "body": ("appearance", "body", "looks"),
    "life": ("life", "lifespan", "young"), "behaviour": ("behaviour", "habits"),
    "extra": ("other details", "more facts", "extras"),
}
_PRODUCTS = {
    "lamp": ("reading at night", "lighting a room"), "kettle": ("making tea", "boiling water"),
    "chair": ("sitting at a desk", "resting in the garden"),
    "backpack": ("carrying books", "long walks"), "knife": ("cutting bread", "cooking"),
    "bottle": ("storing water", "long walks"), "blanket": ("keeping warm", "cold nights"),
    "radio": ("listening to music", "hearing the news"),
}
_INSTRUCTIONS = (
    "Write a short profile of {ref}", "Write a short description of {ref}",
    "Describe {ref} in a few paragraphs", "Give a description of {ref}",
    "Write a short report on {ref}", "Write a few paragraphs about {ref}",
    "Tell me about {ref}", "Write a text about {ref}", "Summarise what is known about {ref}",
    "Write an article about {ref}", "Introduce {ref} to a reader",
)
_SUMMARY_ASKS = ("and end with a one-sentence summary", "and finish with a short summary",
                 "with a summary at the end")
_HEADS = ("Facts:", "Notes:", "Details:", "Information:")
_SUMMARY_TOPICS = ("summary", "in short", "overall")
_SUMMARY_OPENERS = ("In short,", "To sum up,", "All in all,", "Overall,")
# Sentence form of a fact in a prompt, per key as typed: "{s}" is the subject ("It" or the name).
# Any other key is written "Its {key} is {v}." (a person's: "{s}'s {key} is {v}."). The checker
# reads prompts back with this table.
SENTENCE_KEYS = {
    "founded": "{s} was founded in {v}.", "established in": "{s} was established in {v}.",
    "founded in": "{s} was founded in {v}.", "founded by": "{s} was founded by {v}.",
    "known for": "{s} is known for {v}.", "famous for": "{s} is famous for {v}.",
    "made by": "{s} is made by {v}.", "made in": "{s} is made in {v}.",
    "launched": "{s} was launched in {v}.", "launched in": "{s} was launched in {v}.",
    "released in": "{s} was released in {v}.", "used for": "{s} is used for {v}.",
    "made for": "{s} is made for {v}.", "works as": "{s} works as a {v}.",
    "works at": "{s} works at {v}.", "born in": "{s} was born in {v}.",
    "married to": "{s} is married to {v}.", "lives in": "{s} lives in {v}.",
    "found in": "{s} is found in {v}.", "eats": "{s} eats {v}.", "active at": "{s} is active at {v}.",
    "lives for": "{s} lives for {v}.", "lives": "{s} lives {v}.",
}


# Every key the data writes, as typed: the checker trusts these as keys however many words they have.
KNOWN_KEYS = frozenset({k for attrs in _ATTRS.values() for a in attrs for k in a.keys} | set(_EXTRA_KEYS))


def _value(attr: Attr, rng: random.Random, names: list[str], product: str, split: str) -> str:
    if isinstance(attr.values, tuple):
        return rng.choice(attr.values)
    rule = attr.values
    if rule == "name":
        return names.pop() if names else make_name(rng, split)
    if rule == "the name":
        return "the " + (names.pop() if names else make_name(rng, split))
    numbers = {
        "year": lambda: str(rng.randint(1100, 1990)),
        "launch": lambda: str(rng.randint(1950, 2025)),
        "population": lambda: str(rng.randrange(800, 99_000, 100) if rng.random() < 0.6
                                  else rng.randint(300, 99_999)),
        "price": lambda: f"{rng.randint(3, 900)} dollars",
        "warranty": lambda: f"{rng.randint(1, 10)} years",
        "weight": lambda: f"{rng.randint(100, 5000)} grams",
        "rating": lambda: f"{rng.randint(1, 10)} out of 10",
        "use": lambda: rng.choice(_PRODUCTS[product]),
        "years": lambda: f"{rng.randint(2, 60)} years",
        "age": lambda: str(rng.randint(18, 89)),
        "count": lambda: str(rng.randint(2, 9)),
        "size": lambda: f"{rng.randint(5, 300)} cm",
        "animal weight": lambda: f"{rng.randint(1, 400)} kg",
    }
    if rule not in numbers:
        raise KeyError(f"no value rule {rule!r}")
    return numbers[rule]()


def _extra_value(rng: random.Random, split: str) -> str:
    roll = rng.random()
    if roll < 0.4:
        return make_name(rng, split)
    if roll < 0.7:
        return str(rng.randint(2, 9999))
    return rng.choice(_COLOURS)


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
    head = rng.choice(_HEADS)
    if form == "commas":
        body = ", ".join(f"{f.key}: {f.value}" for f in facts)
    else:  # "facts"
        body = "; ".join(f"{f.key}: {f.value}" for f in facts)
    return f"{instruction}. {head} {body}." if first else f"{head} {body}. {instruction}."


def make_example(rng: random.Random, split: str = "train") -> Example:
    """One example; every random choice comes from `rng`, every made-up name from `split`."""
    kind = rng.choice(KINDS)
    attrs = _ATTRS[kind]
    groups = list(dict.fromkeys(a.group for a in attrs))
    chosen_groups = set(rng.sample(groups, min(len(groups), rng.randint(4, 6))))
    chosen: list[Attr] = []
    for group in groups:
        members = [a for a in attrs if a.group == group]
        if group in chosen_groups:
            chosen += rng.sample(members, rng.randint(2, len(members)))
    names: list[str] = []
    while len(names) < 8:  # the entity and the name-valued facts, all distinct
        nm = make_name(rng, split)
        if nm not in names:
            names.append(nm)
    name = names.pop(0)
    product = rng.choice(sorted(_PRODUCTS))
    ref, first, later, possessive = _refs(kind, name, product)
    values = {a: _value(a, rng, names, product, split) for a in chosen}
    typed = {a: rng.choice(a.keys) for a in chosen}
    extras: list[Fact] = []
    if rng.random() < 0.3:
        pool = [k for k in _EXTRA_KEYS if name_split(k) == split]
        extras = [Fact(k, _extra_value(rng, split)) for k in rng.sample(pool, rng.randint(1, 2))]

    facts = [Fact(typed[a], values[a]) for a in chosen] + extras
    rng.shuffle(facts)
    form = rng.choice(FORMS)
    summary = rng.random() < 0.2
    instruction = rng.choice(_INSTRUCTIONS).format(ref=ref)
    if summary:
        instruction += " " + rng.choice(_SUMMARY_ASKS)
    subject = "It" if kind != "person" else name
    prompt = _render_prompt(form, instruction, facts, subject, possessive, rng)

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
        sections.append(Section(rng.choice(_TOPICS[group]), " ".join(sentences)))
    if extras:
        text = " ".join(_fix(f"{possessive} {f.key} is {f.value}.") for f in extras)
        sections.append(Section(rng.choice(_TOPICS["extra"]), text))
    rounds: list[tuple[Section, ...]] = [tuple(sections)]
    if summary:
        opener = rng.choice(_SUMMARY_OPENERS)
        a = rng.choice(chosen)
        subj = "the" + first[3:] if first.startswith("The ") else first
        text = _fix(f"{opener} {subj} {rng.choice(a.preds).format(v=values[a])}.")
        rounds.append((Section(rng.choice(_SUMMARY_TOPICS), text),))
    return Example(prompt, tuple(facts), tuple(rounds), kind, name, form)


def make_split(split: str, n: int, seed: int = 0) -> list[Example]:
    """`n` examples with distinct prompts, deterministic given (split, seed)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"pdiff-notes-v2:{split}:{seed}")
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
