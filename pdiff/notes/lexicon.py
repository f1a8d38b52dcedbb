"""The vocabulary of the "notes to text" task: each kind's attributes (key names as people type
them, the section group, the values, the sentence templates), section topics, instruction
wordings, and the sentence form of a fact in a prompt (`SENTENCE_KEYS`).

Plain tables, no randomness: `pdiff.notes.data` draws from them and `pdiff.notes.checker` reads
prompts back with `SENTENCE_KEYS` and `KNOWN_KEYS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Attr:
    keys: tuple[str, ...]  # the key as typed in a prompt; the first is the canonical one
    group: str  # the section it is stated in
    values: str | tuple[str, ...]  # a list of values, or the name of a rule in pdiff.notes.data
    preds: tuple[str, ...]  # predicates after a singular subject, each with {v} verbatim


def _a(keys: str, group: str, values, *preds: str) -> Attr:
    return Attr(tuple(keys.split("|")), group, values, preds)


COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "brown", "orange",
            "purple", "silver", "golden")
ATTRS: dict[str, tuple[Attr, ...]] = {
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
        _a("colour|color", "look", COLOURS, "is {v} in colour", "comes in a bright {v} colour",
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
        _a("colour|fur colour", "body", COLOURS, "has thick {v} fur", "is mostly {v} in colour",
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
EXTRA_KEYS = ("motto", "symbol", "nickname", "mascot", "emblem", "lucky number", "code", "badge",
               "flag colour", "slogan", "anthem", "seal", "crest", "stamp", "label", "tag", "sign",
               "model number", "serial number", "postcode", "team", "club", "star sign", "password",
               "theme", "logo", "banner", "colour code", "charm", "totem")
# More extra-detail keys, for training only (task v4). With the 25 training keys above, a small
# model learns those keys rather than copying one it has never seen: the v4 models dropped most
# held-out extra keys ("Its password is ..."). pdiff.notes.data keeps out of training every key
# here that hashes to the held-out split or shares a word with a held-out key, so held-out
# prompts are the same with or without them.
MORE_EXTRA_KEYS = (
    "secret", "riddle", "saying", "greeting", "shape", "pattern", "ticket", "lock", "gate", "street",
    "bell", "song", "tune", "dance", "game", "toy", "flower", "tree", "bird", "fish", "stone", "gem",
    "metal", "fabric", "scent", "taste", "sound", "note", "letter", "word", "phrase", "title", "rank",
    "grade", "level", "group", "unit", "batch", "series", "edition", "version", "shelf", "drawer",
    "room", "floor", "seat", "row", "lane", "track", "route", "station", "port", "dock", "pin", "signal",
    "mark", "marker", "icon", "crown", "shield", "ribbon", "medal", "trophy", "prize", "award", "honour",
    "rule", "custom", "habit", "ritual", "guardian", "patron", "hero", "rival", "neighbour", "twin",
    "alias", "handle", "initials", "monogram", "cipher", "token", "coin", "birthstone", "tagline",
    "catchphrase", "watchword", "keyword", "cheer", "chant", "hymn", "ballad", "march", "poem",
    "proverb", "legend", "myth", "fable", "shade", "tint", "hue", "finish", "texture", "grain", "trim",
    "lid", "cap", "stripe", "sticker", "patch", "flag", "pennant", "licence", "permit", "range",
    "collection", "signature", "sigil", "insignia", "watermark", "hallmark", "trademark", "lucky day",
    "lucky stone", "lucky colour", "spirit animal", "sister city", "partner town", "old name",
    "short name", "pen name", "call sign", "room number", "house number", "locker number", "shoe size",
    "hat size", "ring size", "blood type", "eye colour", "favourite number", "favourite word",
    "favourite song", "favourite book", "favourite film", "favourite game", "favourite flower",
    "favourite tree", "favourite bird", "favourite season", "favourite month", "birth month",
    "battle cry", "secret word", "magic word", "brand colour", "paint colour", "mascot name",
    "team colour", "home colour", "away colour", "jersey number", "number plate", "ticket number",
    "order number", "batch number", "part number", "product line", "brand mark",
)
TOPICS: dict[str, tuple[str, ...]] = {
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
PRODUCTS = {
    "lamp": ("reading at night", "lighting a room"), "kettle": ("making tea", "boiling water"),
    "chair": ("sitting at a desk", "resting in the garden"),
    "backpack": ("carrying books", "long walks"), "knife": ("cutting bread", "cooking"),
    "bottle": ("storing water", "long walks"), "blanket": ("keeping warm", "cold nights"),
    "radio": ("listening to music", "hearing the news"),
}
INSTRUCTIONS = (
    "Write a short profile of {ref}", "Write a short description of {ref}",
    "Describe {ref} in a few paragraphs", "Give a description of {ref}",
    "Write a short report on {ref}", "Write a few paragraphs about {ref}",
    "Tell me about {ref}", "Write a text about {ref}", "Summarise what is known about {ref}",
    "Write an article about {ref}", "Introduce {ref} to a reader",
)
SUMMARY_ASKS = ("and end with a one-sentence summary", "and finish with a short summary",
                 "with a summary at the end")
HEADS = ("Facts:", "Notes:", "Details:", "Information:")
SUMMARY_TOPICS = ("summary", "in short", "overall")
SUMMARY_OPENERS = ("In short,", "To sum up,", "All in all,", "Overall,")
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


# The attributes' keys as typed, and every key the data writes: the checker trusts these as keys
# however many words they have.
ATTR_KEYS = frozenset(k for attrs in ATTRS.values() for a in attrs for k in a.keys)
KNOWN_KEYS = ATTR_KEYS | set(EXTRA_KEYS) | set(MORE_EXTRA_KEYS)


# The shape of a value per open rule (`Attr.values` names the rule), as a regular expression: the
# checker and the plain-English reader judge with it whether a value has an attribute's kind.
_NAME = r"(?-i:[A-Z][a-z]+)"  # capitalised, whatever the phrase's case
VALUE_SHAPES = {
    "name": _NAME, "the name": r"(?-i:[Tt]he )" + _NAME, "year": r"\d{3,4}", "launch": r"\d{4}",
    "population": r"\d[\d,]*", "price": r"\d+ dollars", "warranty": r"\d+ years?",
    "weight": r"\d+ grams", "rating": r"\d+ out of 10", "years": r"\d+ years?", "age": r"\d+",
    "count": r"\d+", "size": r"\d+ cm", "animal weight": r"\d+ kg",
    "use": "|".join(re.escape(u) for uses in PRODUCTS.values() for u in uses),
}


def value_shape(attr: Attr) -> str:
    """The regular expression of an attribute's values: its list's words, or its rule's shape."""
    if isinstance(attr.values, tuple):
        return "|".join(re.escape(v) for v in attr.values)
    return VALUE_SHAPES[attr.values]
