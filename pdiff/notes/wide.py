"""Notes to text, task v6: prompts as wide as visitors write them, composed from a small grammar.

Task v5's prompts come from six whole templates and always give 4 to 17 facts. Visitors write
notes in many more ways, and a model trained on v5 respells names, invents facts to fill its
usual number of sections and loses a subject given in a field. A v6 training prompt is composed
part by part, each part drawn on its own:
- the facts: any count from 1 to 12 of the kind's attributes and extra details, with values
  from the attribute's list, from any list, or made up, and numbers in the forms people type
  them ("45,000", "$19.99", "1.4 kg", "12 km/h");
- the name: syllables, random letter strings of 2 to 16 letters, names of several words, in
  every capitalisation, copied as written;
- where the name is given: in the instruction, in a field ("name: ...", "city: ..."), in a
  sentence before or after the facts, or as the subject of the facts' own sentences;
- the body: "key<sep>value" items with any separator, delimiter, list marker, heading and key
  case (and a typo now and then), a JSON object, a markdown table, or plain English clauses
  with a pronoun;
- the instruction: verb, object, reference and tail from small lists, before, after or without
  the facts, in any case, now and then chatty or misspelled.

The answer is task v5's canonical answer of exactly the given facts (`data._canonical_rounds`):
one section per group of facts, so a prompt of 2 facts gets a short plan, and nothing is said
that the notes do not give. `make_wide_example` draws one; `data.make_split(..., task="v6")`
mixes them with v5's prompts; `probe_split` is the copy and number probe's fixed held-out set.
This module knows nothing of tokenizers, models or the checker.
"""

from __future__ import annotations

import json
import random
import string

from pdiff.notes import data
from pdiff.notes.data import Example, Fact, make_name, name_split
from pdiff.notes.lexicon import ATTRS, COLOURS, PRODUCTS, SUMMARY_ASKS, Attr

MAX_FACTS = 12
# Extra details with the shapes visitors give (a number with a unit, a phrase): stated as
# "Its <key> is <value>." like the v5 extras. Training keys only (name_split), as for the names.
WIDE_EXTRA_KEYS = (
    "battery life", "top speed", "height", "area", "depth", "width", "length", "volume", "capacity",
    "languages", "school", "children", "best friend", "car", "favourite colour", "nickname",
    "predators", "speed", "wingspan", "temperature", "rainfall", "elevation", "airport",
    "university", "football club", "twin town", "power", "screen size", "storage", "memory",
    "charging time", "noise level", "mood", "talent", "fear", "dream", "instrument", "boss",
    "manager", "owner", "designer", "inventor", "discovered by", "first seen", "status",
    "population trend", "number of eggs", "territory", "district", "harbour", "bridge", "lake",
    "mountain", "currency", "dish", "museum", "park", "square", "tower", "street name",
)
# Other keys people type for an attribute (beside the lexicon's own).
MORE_KEYS = {
    "population": ("inhabitants", "residents", "pop", "pop."), "founded": ("founded year", "est."),
    "mayor": ("mayor name",), "known for": ("famous for its",), "climate": ("climate type",),
    "price": ("costs", "price tag"), "weight": ("weighs", "mass"), "maker": ("manufacturer",),
    "colour": ("colours",), "age": ("years old",), "job": ("profession", "work"),
    "home town": ("from", "birthplace"), "partner": ("spouse",), "hobby": ("hobbies",),
    "habitat": ("home",), "diet": ("food",), "lifespan": ("life expectancy",),
}
_GENERIC_WORDS = ("moss", "amber", "copper bells", "tall hats", "night markets", "paper boats",
                  "salt", "honey", "fog", "ice", "sand", "ash", "thunder", "quiet streets", "jazz",
                  "clockwork", "maps", "kites", "violins", "tin", "marble", "olives", "coral")
_LETTERS = string.ascii_lowercase
_VOWELS = "aeiouy"
_NAME_PREFIXES = ("Port", "Saint", "New", "Old", "Lake", "Mount", "North", "East", "Upper", "San")


# ---- names -------------------------------------------------------------------------------------

def _letters(rng: random.Random) -> str:
    """A random string of 2 to 16 letters, vowels often enough to be sayable now and then."""
    n = rng.choice((2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16))
    vowel_rate = rng.choice((0.0, 0.2, 0.4))
    return "".join(rng.choice(_VOWELS if rng.random() < vowel_rate else _LETTERS) for _ in range(n))


def _case(name: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.72:
        return name[:1].upper() + name[1:]
    if roll < 0.82:
        return name.lower()
    if roll < 0.88:
        return name.upper()
    cut = rng.randint(1, max(1, len(name) - 1))  # "McQuorl", "VelAra"
    return name[:1].upper() + name[1:cut] + name[cut:].capitalize()


def wide_name(rng: random.Random, split: str = "train", words: int = 1, place: bool = False) -> str:
    """A made-up name of `words` words from `split`'s part of the name space; a `place` may
    open with a word such as "Port" or "New"."""
    while True:
        parts = []
        for _ in range(words):
            roll = rng.random()
            if roll < 0.45:
                part = make_name(rng, split, wide=True)
            elif roll < 0.85:
                part = _letters(rng)
            else:
                part = make_name(rng, split) + rng.choice(("-", "'")) + _letters(rng)[:4]
            parts.append(_case(part, rng))
        if words > 1 and place and rng.random() < 0.15:
            parts[0] = rng.choice(_NAME_PREFIXES)
        name = " ".join(parts)
        if name_split(name) == split:
            return name


def _entity_name(kind: str, rng: random.Random, split: str) -> str:
    if kind == "person":
        return wide_name(rng, split, rng.choice((1, 2, 2, 2, 3)))
    return wide_name(rng, split, 1 if rng.random() < 0.8 else 2, place=kind == "city")


# ---- values ------------------------------------------------------------------------------------

def _thousands(n: int, rng: random.Random) -> str:
    return f"{n:,}" if n >= 1000 and rng.random() < 0.5 else str(n)


def _decimal(lo: float, hi: float, rng: random.Random) -> str:
    return f"{rng.uniform(lo, hi):.{rng.choice((1, 1, 2))}f}"


def _number(rule: str, rng: random.Random) -> str:
    """A value of one of the lexicon's number rules, in one of the forms people type."""
    c = rng.choice
    forms = {
        "year": lambda: str(rng.randint(900, 2024)),
        "launch": lambda: str(rng.randint(1950, 2026)),
        "population": lambda: _thousands(c((rng.randint(40, 999), rng.randint(1000, 99_999),
                                            rng.randrange(1000, 9_999_000, 1000))), rng),
        "price": lambda: c((f"{rng.randint(2, 2500)} dollars", f"${rng.randint(2, 2500)}",
                            f"${_decimal(1, 500, rng)}", f"{rng.randint(2, 900)} euros",
                            f"£{rng.randint(2, 900)}",
                            f"{_thousands(rng.randint(1000, 20000), rng)} dollars")),
        "warranty": lambda: c((f"{rng.randint(2, 10)} years", "1 year", f"{rng.randint(2, 36)} months")),
        "weight": lambda: c((f"{rng.randint(50, 5000)} grams", f"{rng.randint(50, 900)} g",
                             f"{_decimal(0.2, 30, rng)} kg", f"{rng.randint(1, 40)} kg")),
        "rating": lambda: c((f"{rng.randint(1, 10)} out of 10", f"{rng.randint(1, 10)}/10",
                             f"{_decimal(1, 5, rng)} out of 5", f"{rng.randint(1, 5)} stars")),
        "years": lambda: f"{rng.randint(1, 60)} years",
        "age": lambda: str(rng.randint(3, 104)),
        "count": lambda: str(rng.randint(0, 12)),
        "size": lambda: c((f"{rng.randint(2, 300)} cm", f"{_decimal(0.1, 9, rng)} m",
                           f"{rng.randint(5, 900)} mm", f"{rng.randint(2, 30)} metres")),
        "animal weight": lambda: c((f"{rng.randint(1, 900)} kg", f"{_decimal(0.1, 90, rng)} kg",
                                    f"{rng.randint(20, 990)} grams", f"{rng.randint(1, 6)} tonnes")),
    }
    return forms[rule]()


def _open_value(rng: random.Random, split: str) -> str:
    """A value the lexicon's lists do not have: a word of any list, a made-up word, a phrase."""
    roll = rng.random()
    if roll < 0.4:
        attr = rng.choice([a for kind in ATTRS.values() for a in kind if isinstance(a.values, tuple)])
        return rng.choice(attr.values)
    if roll < 0.7:
        return rng.choice(_GENERIC_WORDS)
    word = make_name(rng, split, wide=True).lower()
    return rng.choice((word, f"{word}s", f"the {word}", f"{rng.choice(COLOURS)} {word}s"))


def _value(attr: Attr, rng: random.Random, split: str, product: str) -> str:
    if isinstance(attr.values, tuple):
        return rng.choice(attr.values) if rng.random() < 0.7 else _open_value(rng, split)
    if attr.values == "name":
        return wide_name(rng, split, 1 if rng.random() < 0.85 else 2)
    if attr.values == "the name":
        return "the " + wide_name(rng, split)
    if attr.values == "use":
        return rng.choice(PRODUCTS[product]) if rng.random() < 0.7 else _open_value(rng, split)
    return _number(attr.values, rng)


def _extra_value(rng: random.Random, split: str) -> str:
    roll = rng.random()
    if roll < 0.3:
        return wide_name(rng, split)
    if roll < 0.55:
        return _thousands(rng.randint(2, 99_999), rng)
    if roll < 0.8:
        unit = rng.choice(("km", "km/h", "mph", "hours", "minutes", "%", "m", "cm", "kg", "°C",
                           "GB", "watts", "litres", "days"))
        number = _decimal(0.5, 400, rng) if rng.random() < 0.3 else str(rng.randint(1, 900))
        return f"{number}{'' if unit in ('%', '°C') else ' '}{unit}"
    return _open_value(rng, split)


def _extra_pool(split: str) -> tuple[str, ...]:
    pool = data.extra_keys(split)
    if split == "heldout":
        return pool
    heldout_words = {w for k in data.extra_keys("heldout") for w in k.split()}
    return pool + tuple(k for k in WIDE_EXTRA_KEYS if name_split(k) == "train"
                        and not heldout_words & set(k.split()) and k not in pool)


# ---- the instruction ---------------------------------------------------------------------------

_VERBS = ("Write", "Write", "Give me", "Create", "Make", "Draft", "Compose", "Put together",
          "Prepare", "Produce")
_OBJECTS = ("a short profile of", "a description of", "a short description of", "a paragraph about",
            "a few sentences about", "a short text about", "a text about", "an entry for",
            "a summary of", "a short piece on", "a few lines about")
_KIND_OBJECTS = {"person": ("a short bio of", "a biography of"),
                 "product": ("a product description for", "a blurb for"),
                 "city": ("a travel guide entry for",), "animal": ("a fact sheet about",)}
_DIRECT = ("Describe", "Tell me about", "Introduce", "Write about", "Summarise", "Profile")
_TAILS = ("", "", "", " from these notes", " using the facts below", " based on this",
          " with these facts", " from the info below", " in a few sentences", " in one paragraph",
          " using only these facts")
_OPENERS = ("hey, ", "hi, ", "please ", "pls ", "can you ", "could you ", "I need you to ", "ok so ")
_CLOSERS = (" thanks", " thx", " :)", " please", "!")


def _named_ref(kind: str, name: str, product: str, rng: random.Random) -> str:
    refs = {
        "city": (f"the city {name}", name, f"the town of {name}", f"a city called {name}",
                 f"the city of {name}"),
        "product": (f"the {name} {product}", f"{name} {product}", f"a {product} called the {name}",
                    f"the {product} {name}"),
        "person": (f"a person named {name}", name, f"someone called {name}", f"my friend {name}",
                   f"a person called {name}"),
        "animal": (f"an animal called the {name}", f"the {name}", f"a creature called the {name}",
                   f"the animal {name}"),
    }
    return rng.choice(refs[kind])


def _generic_ref(kind: str, product: str, rng: random.Random) -> str:
    noun = product if kind == "product" else kind
    article = "an" if noun[0] in "aeiou" else "a"
    return rng.choice((f"this {noun}", f"the {noun}", f"{article} {noun}", f"the following {noun}",
                       f"the {noun} below"))


def _typo(word: str, rng: random.Random) -> str:
    """One slip of the keyboard: a letter dropped, doubled or swapped with the next."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(("drop", "double", "swap"))
    if op == "drop":
        return word[:i] + word[i + 1:]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def _instruction(kind: str, ref: str, rng: random.Random) -> str:
    """An instruction about `ref`; its case and typos never touch `ref`, which holds the name."""
    slot = "\x00"
    if rng.random() < 0.35:
        text = f"{rng.choice(_DIRECT)} {slot}"
    else:
        text = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS + _KIND_OBJECTS[kind])} {slot}"
    text += rng.choice(_TAILS)
    if rng.random() < 0.15:
        text = rng.choice(_OPENERS) + text[0].lower() + text[1:]
    if rng.random() < 0.1:
        text += rng.choice(_CLOSERS)
    if rng.random() < 0.15:  # a typo in the instruction's first long word
        words = text.split(" ")
        at = next((i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()), None)
        if at is not None:
            words[at] = _typo(words[at], rng)
            text = " ".join(words)
    if rng.random() < 0.12:
        text = text.lower()
    return text.replace(slot, ref)


# ---- the body ----------------------------------------------------------------------------------

def _key_case(rng: random.Random):
    return rng.choice((str.lower, str.lower, str.lower, str.title, str.upper, str.capitalize))


def _kv_body(items: list[tuple[str, str]], rng: random.Random) -> str:
    """key<sep>value items: any separator, delimiter, list marker and heading."""
    sep = rng.choice((": ", ": ", ": ", " = ", " - ", " -> ", " – ", ":", "=", " : "))
    delim = rng.choice(("; ", ", ", "\n", "\n", "\n", " | ", " / ", ". "))
    lines = [f"{k}{sep}{v}" for k, v in items]
    if delim == "\n":
        marker = rng.choice(("", "", "- ", "* ", "• ", "{i}. ", "{i}) ", "> "))
        lines = [marker.format(i=i + 1) + line for i, line in enumerate(lines)]
    body = delim.join(lines)
    head = rng.choice(("", "", "", "Facts:", "Notes:", "Info:", "Details:", "Key facts:", "Data:",
                       "Here are the facts:", "notes -", "INFO:"))
    return f"{head}{rng.choice((' ', chr(10)))}{body}" if head else body


def _json_body(items: list[tuple[str, str]], rng: random.Random) -> str:
    obj = {k: (int(v) if v.isdigit() and rng.random() < 0.5 and not v.startswith("0") else v)
           for k, v in items}
    return json.dumps(obj, ensure_ascii=False, indent=rng.choice((None, 2)))


def _table_body(items: list[tuple[str, str]], rng: random.Random) -> str:
    head = rng.choice(("| key | value |", "| fact | value |", "| field | detail |", ""))
    rows = [f"| {k} | {v} |" for k, v in items]
    return "\n".join(([head, "|---|---|"] if head else []) + rows)


def _sentence_body(facts: list[tuple[Attr | None, Fact]], subject: str, pronoun: str,
                   possessive: str, rng: random.Random) -> str:
    """Plain English: the facts as clauses, one to three a sentence under one subject."""
    sentences, at, first = [], 0, True
    while at < len(facts):
        group = facts[at:at + 1]  # an extra detail alone, or up to 3 attributes in a row
        while (group[0][0] is not None and len(group) < rng.choice((1, 1, 2, 3))
               and at + len(group) < len(facts) and facts[at + len(group)][0] is not None):
            group.append(facts[at + len(group)])
        at += len(group)
        subj = subject if first or rng.random() < 0.3 else pronoun
        if group[0][0] is None:  # an extra detail: "Its motto is Dovra."
            fact = group[0][1]
            named = first and subj not in ("It", "He", "She")
            owner = f"{subj}'s" if named else rng.choice((possessive, "The"))
            first = False
            sentences.append(data._fix(f"{owner} {fact.key} is {fact.value}."))
            continue
        first = False
        preds = [rng.choice(a.preds).format(v=f.value) for a, f in group]
        sentences.append(data._sentence(subj, preds))
    return " ".join(sentences)


# ---- one example -------------------------------------------------------------------------------

_NAME_FIELDS = {"city": ("name", "city", "town", "city name", "place"),
                "product": ("name", "product", "item", "product name"),
                "person": ("name", "full name", "person", "who"),
                "animal": ("name", "animal", "species", "creature")}


def _facts(kind: str, rng: random.Random, split: str, product: str):
    """(chosen attributes, their values, extra facts): 1 to MAX_FACTS facts in all."""
    attrs = ATTRS[kind]
    n = rng.randint(1, MAX_FACTS)
    extras = rng.randint(1, min(3, n)) if rng.random() < 0.3 else 0
    known = min(n - extras, len(attrs))
    chosen = rng.sample(attrs, known)
    values = {a: _value(a, rng, split, product) for a in chosen}
    keys = rng.sample(_extra_pool(split), extras)
    return chosen, values, [Fact(k, _extra_value(rng, split)) for k in keys]


def _typed_key(attr: Attr, rng: random.Random) -> str:
    canonical = attr.keys[0]
    key = rng.choice(attr.keys + MORE_KEYS.get(canonical, ()))
    return _typo(key, rng) if rng.random() < 0.08 else key


def make_wide_example(rng: random.Random, split: str = "train") -> Example:
    """One task-v6 example (see the module docstring); every random choice comes from `rng`."""
    kind = rng.choice(data.KINDS)
    product = rng.choice(sorted(PRODUCTS))
    name = _entity_name(kind, rng, split)
    chosen, values, extras = _facts(kind, rng, split, product)
    _, first, _, possessive = data._refs(kind, name, product)
    typed = [(a, Fact(_typed_key(a, rng), values[a])) for a in chosen] + [(None, f) for f in extras]
    rng.shuffle(typed)

    form = rng.choice(("kv", "kv", "kv", "kv", "json", "table", "sentences", "sentences"))
    has_instruction = rng.random() < 0.85
    where = rng.choice(("instruction", "instruction", "field", "intro", "outro")
                       + (("sentence",) * 2 if form == "sentences" else ()))
    if where == "instruction" and not has_instruction:
        where = "field"
    summary = has_instruction and bool(chosen) and rng.random() < 0.15
    instruction = ""
    if has_instruction:
        ref = (_named_ref(kind, name, product, rng) if where == "instruction"
               else _generic_ref(kind, product, rng))
        instruction = _instruction(kind, ref, rng)
        if summary:
            instruction += " " + rng.choice(SUMMARY_ASKS)

    noun = product if kind == "product" else kind
    if form == "sentences":
        pronoun = {"person": rng.choice(("He", "She"))}.get(kind, "It")
        owner = {"He": "His", "She": "Her"}.get(pronoun, "Its")
        subject = first if where == "sentence" else pronoun
        body = _sentence_body(typed, subject, pronoun, owner, rng)
        if where == "field":  # no fields in plain English: the name in a sentence of its own
            body = f"{first} is a {noun}. {body}"
    else:
        case = _key_case(rng)
        items = [(case(f.key) if a is not None else f.key, f.value) for a, f in typed]
        if where == "field":
            value = {"product": f"{name} {product}", "animal": rng.choice((name, f"the {name}"))}
            items.insert(rng.choice((0, 0, 0, len(items))),
                         (case(rng.choice(_NAME_FIELDS[kind])), value.get(kind, name)))
        render = {"kv": _kv_body, "json": _json_body, "table": _table_body}[form]
        body = render(items, rng)
    parts = [body]
    if where == "intro":
        parts.insert(0, rng.choice((f"This is about {_named_ref(kind, name, product, rng)}.",
                                    f"About {_named_ref(kind, name, product, rng)}:")))
    if where == "outro":
        parts.append(f"The {noun} is called {name}.")
    if instruction:
        end = rng.choice((".", ":", "")) if instruction[-1].isalnum() else ""
        at = 0 if rng.random() < 0.6 else len(parts)
        parts.insert(at, instruction + (end if at == 0 else "."))
    prompt = rng.choice(("\n", " ", "\n\n")).join(parts)

    if not chosen:  # extra details alone: the first of them names the entity
        possessive = f"{first}'s"
    facts = tuple(f for _, f in typed)
    in_prompt = [f for a, f in typed if a is None]  # extra details in the prompt's order, as in v5
    rounds = data._canonical_rounds(kind, chosen, values, in_prompt, summary, first, possessive)
    return Example(prompt, facts, rounds, kind, name, "v6-" + form)


def probe_split(n: int, seed: int = 0) -> list[Example]:
    """The copy and number probe's prompts: `n` task-v6 prompts whose names come from the held-out
    part of the name space (training never sees them), deterministic given `seed`."""
    rng = random.Random(f"pdiff-notes-probe:{seed}")
    out: list[Example] = []
    seen: set[str] = set()
    while len(out) < n:
        ex = make_wide_example(rng, "heldout")
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
    return out
