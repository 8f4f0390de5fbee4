"""The category lexicon: which words name (or imply) which object category.

Every category of the source ``instances.json`` needs an entry.  An entry has
    display   the (singular, plural) noun the templates write ("person", "people";
              "pair of skis", "pairs of skis");
    names     words for the category as a whole, singular and plural ("dog", "dogs") --
              a plural of one of these, in a caption, may stand for *all* instances;
    mentions  words that imply the category without naming all of it: subtypes and
              synonyms ("man", "guy", "puppy", "kitten", "tv", "television").
On top, hypernyms ("animal", "vehicle", "fruit") map to sets of categories and a few
generic heads ("object", "thing", "one") to every category.  The one-to-zero check uses
all of these (the more words, the stricter it is); caption one-to-many phrases use
``names`` only.  Plurals come from :func:`pluralize` (irregular forms listed).

Built in: the 80 COCO categories (COCO's instances categories) and the refbench synthetic
benchmark's shape categories (read from ``refbench.build.synth_scene.CATEGORIES``).
Other categories come from a JSON file (``--lexicon``) or, with ``fallback=True``, from
their own name and its regular plural; either way they are listed in the build report.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from refbench.build.synth_scene import CATEGORIES as SYNTH_CATEGORIES
from refbench.data.coco import read_json
from refbench.core.errors import RefbenchError

_IRREGULAR = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "gentleman": "gentlemen",
    "policeman": "policemen", "fireman": "firemen", "sportsman": "sportsmen", "businessman": "businessmen",
    "mouse": "mice", "goose": "geese", "foot": "feet", "tooth": "teeth", "knife": "knives", "wife": "wives",
    "calf": "calves", "half": "halves", "loaf": "loaves", "leaf": "leaves", "shelf": "shelves", "wolf": "wolves",
    "ox": "oxen", "die": "dice", "hoof": "hooves", "scarf": "scarves", "thief": "thieves", "elf": "elves",
    "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "echo": "echoes", "tv": "tvs", "bus": "buses",
    "taxi": "taxis", "moose": "moose", "pony": "ponies", "puppy": "puppies", "kitty": "kitties", "baby": "babies",
    "lady": "ladies", "rhombus": "rhombuses", "cactus": "cacti",
}
# Nouns whose plural is the singular (and pluralia tantum).
_INVARIANT = frozenset({
    "sheep", "deer", "fish", "moose", "bison", "cattle", "people", "police", "scissors", "skis", "pants", "jeans",
    "shorts", "glasses", "broccoli", "luggage", "silverware", "cutlery", "furniture", "food", "clothing", "series",
    "species", "aircraft", "stuff", "livestock", "poultry", "swine", "trousers", "binoculars", "tongs", "pliers",
    "electronics", "wildlife", "equipment", "transportation", "dishware", "baggage", "persons",
})


def pluralize(noun: str) -> str:
    """The plural of a (possibly multi-word) English noun: irregular table, invariants, then rules.

    "X of Y" pluralizes X ("pair of skis" -> "pairs of skis"); otherwise the last word.
    """
    noun = noun.strip()
    if " of " in noun:
        head, rest = noun.split(" of ", 1)
        return f"{pluralize(head)} of {rest}"
    words = noun.split(" ")
    w = words[-1]
    low = w.lower()
    if low in _INVARIANT:
        p = w
    elif low in _IRREGULAR:
        p = _IRREGULAR[low]
    elif low.endswith(("man",)) and low not in ("human", "german", "shaman", "talisman", "caiman", "ottoman"):
        p = w[:-3] + "men"
    elif re.search(r"(s|x|z|ch|sh)$", low):
        p = w + "es"
    elif re.search(r"[^aeiou]y$", low):
        p = w[:-1] + "ies"
    else:
        p = w + "s"
    return " ".join(words[:-1] + [p])


def _forms(words: str) -> set[str]:
    """Singular words separated by '|' -> those words and their plurals."""
    out: set[str] = set()
    for w in words.split("|"):
        w = w.strip().lower()
        if w:
            out.add(w)
            out.add(pluralize(w))
    return out


# COCO-80: name -> (display singular, display plural,
# other names of the whole category, mentions).  Word lists are singular, '|'-separated;
# plurals are generated.
_COCO: dict[str, tuple[str, str, str, str]] = {
    "person": ("person", "people", "human|individual|persons",
               "man|woman|guy|lady|boy|girl|child|kid|baby|toddler|infant|teenager|teen|adult|gentleman|youngster|"
               "player|skier|surfer|skateboarder|snowboarder|rider|biker|cyclist|bicyclist|batter|catcher|umpire|"
               "pitcher|referee|tennis player|athlete|runner|jogger|spectator|pedestrian|passenger|driver|"
               "crowd|team|friend|student|worker|chef|cook|waiter|waitress|officer|policeman|soldier|"
               "cop|cowboy|bride|groom|father|mother|dad|mom|son|daughter|brother|sister|grandmother|grandfather|"
               "someone|somebody|he|she|him|her|himself|herself|dude|fella|gal|bloke|motorcyclist|boarder|"
               "businessman|fireman|farmer|tourist|customer|vendor|parent|husband|wife|sportsman|goalie"),
    "bicycle": ("bicycle", "bicycles", "bike", "cycle|tandem"),
    "car": ("car", "cars", "automobile", "taxi|cab|suv|sedan|van|jeep|vehicle|minivan|hatchback|convertible"),
    "motorcycle": ("motorcycle", "motorcycles", "motorbike|bike", "scooter|moped|dirt bike|vehicle|chopper|cycle"),
    "airplane": ("airplane", "airplanes", "plane|aeroplane|aircraft",
                 "jet|airliner|jetliner|jumbo jet|biplane|propeller plane|seaplane|vehicle|fighter jet"),
    "bus": ("bus", "buses", "", "double decker|coach|trolley|shuttle|vehicle|school bus|minibus"),
    "train": ("train", "trains", "", "locomotive|engine|railcar|tram|streetcar|subway|vehicle|caboose|wagon|carriage"),
    "truck": ("truck", "trucks", "", "lorry|pickup|pickup truck|semi|tractor|vehicle|van|trailer|fire truck"),
    "boat": ("boat", "boats", "", "ship|sailboat|yacht|canoe|kayak|ferry|raft|vessel|dinghy|rowboat|vehicle"),
    "traffic light": ("traffic light", "traffic lights", "stoplight|traffic signal", "signal|light"),
    "fire hydrant": ("fire hydrant", "fire hydrants", "hydrant", ""),
    "stop sign": ("stop sign", "stop signs", "", "sign"),
    "parking meter": ("parking meter", "parking meters", "meter", ""),
    "bench": ("bench", "benches", "", "seat|pew"),
    "bird": ("bird", "birds", "",
             "duck|goose|seagull|gull|pigeon|parrot|swan|owl|eagle|hawk|crow|sparrow|hen|rooster|chicken|penguin|"
             "flamingo|pelican|turkey|dove|heron|crane|ostrich|peacock|finch|robin|songbird|chick|bluebird|raven"),
    "cat": ("cat", "cats", "", "kitten|kitty|feline|tabby"),
    "dog": ("dog", "dogs", "", "puppy|pup|doggy|canine|hound|terrier|retriever|poodle|labrador|bulldog|pet"),
    "horse": ("horse", "horses", "", "pony|foal|stallion|mare|colt"),
    "sheep": ("sheep", "sheep", "", "lamb|ram|ewe"),
    "cow": ("cow", "cows", "cattle", "bull|calf|ox|steer|heifer|cattle"),
    "elephant": ("elephant", "elephants", "", "calf"),
    "bear": ("bear", "bears", "", "cub|grizzly|polar bear"),
    "zebra": ("zebra", "zebras", "", ""),
    "giraffe": ("giraffe", "giraffes", "", ""),
    "backpack": ("backpack", "backpacks", "", "bag|rucksack|knapsack"),
    "umbrella": ("umbrella", "umbrellas", "", "parasol"),
    "handbag": ("handbag", "handbags", "", "bag|purse|clutch|tote"),
    "tie": ("tie", "ties", "necktie", "bow tie"),
    "suitcase": ("suitcase", "suitcases", "", "luggage|bag|baggage"),
    "frisbee": ("frisbee", "frisbees", "", "disc|disk|flying disc"),
    "skis": ("pair of skis", "pairs of skis", "skis", "ski"),
    "snowboard": ("snowboard", "snowboards", "", "board"),
    "sports ball": ("ball", "balls", "ball|sports ball",
                    "soccer ball|football|basketball|baseball|tennis ball|volleyball|softball|beach ball|golf ball"),
    "kite": ("kite", "kites", "", ""),
    "baseball bat": ("baseball bat", "baseball bats", "bat", ""),
    "baseball glove": ("baseball glove", "baseball gloves", "glove|mitt|baseball mitt", ""),
    "skateboard": ("skateboard", "skateboards", "", "board|skate board"),
    "surfboard": ("surfboard", "surfboards", "", "board|surf board|paddle board|paddleboard"),
    "tennis racket": ("tennis racket", "tennis rackets", "racket|racquet|tennis racquet", ""),
    "bottle": ("bottle", "bottles", "", "beer bottle|water bottle|wine bottle|jar|flask"),
    "wine glass": ("wine glass", "wine glasses", "", "glass|goblet|champagne glass|wineglass"),
    "cup": ("cup", "cups", "", "mug|coffee cup|teacup|glass|tumbler"),
    "fork": ("fork", "forks", "", "utensil"),
    "knife": ("knife", "knives", "", "utensil|blade"),
    "spoon": ("spoon", "spoons", "", "utensil|ladle"),
    "bowl": ("bowl", "bowls", "", "dish"),
    "banana": ("banana", "bananas", "", "fruit"),
    "apple": ("apple", "apples", "", "fruit"),
    "sandwich": ("sandwich", "sandwiches", "", "burger|hamburger|sub|wrap|panini|cheeseburger"),
    "orange": ("orange", "oranges", "", "fruit|tangerine|citrus|clementine|mandarin"),
    "broccoli": ("piece of broccoli", "pieces of broccoli", "broccoli", "vegetable|floret"),
    "carrot": ("carrot", "carrots", "", "vegetable"),
    "hot dog": ("hot dog", "hot dogs", "hotdog", "sausage|wiener"),
    "pizza": ("pizza", "pizzas", "", "slice|pie"),
    "donut": ("donut", "donuts", "doughnut", "pastry"),
    "cake": ("cake", "cakes", "", "cupcake|dessert|pastry|cheesecake"),
    "chair": ("chair", "chairs", "", "seat|stool|armchair|recliner"),
    "couch": ("couch", "couches", "sofa", "loveseat|settee|seat"),
    "potted plant": ("potted plant", "potted plants", "plant|houseplant",
                     "flower|pot|flower pot|flowerpot|planter|bush|shrub"),
    "bed": ("bed", "beds", "", "mattress|bunk"),
    "dining table": ("table", "tables", "dining table|dinner table|kitchen table",
                     "desk|counter|picnic table|coffee table"),
    "toilet": ("toilet", "toilets", "", "urinal|commode"),
    "tv": ("tv", "tvs", "television|television set|tv set",
           "screen|monitor|display|flat screen|flatscreen|computer"),
    "laptop": ("laptop", "laptops", "laptop computer|notebook computer", "computer|screen|monitor"),
    "mouse": ("computer mouse", "computer mice", "mouse|computer mouse", "computer"),
    "remote": ("remote", "remotes", "remote control|controller", "wii remote|game controller|wiimote"),
    "keyboard": ("keyboard", "keyboards", "", "computer|keypad"),
    "cell phone": ("cell phone", "cell phones", "phone|cellphone|mobile phone|smartphone|mobile",
                   "iphone|telephone|smart phone"),
    "microwave": ("microwave", "microwaves", "microwave oven", "appliance"),
    "oven": ("oven", "ovens", "", "stove|stovetop|appliance"),
    "toaster": ("toaster", "toasters", "", "appliance"),
    "sink": ("sink", "sinks", "", "basin|washbasin"),
    "refrigerator": ("refrigerator", "refrigerators", "fridge", "freezer|appliance"),
    "book": ("book", "books", "", "novel|textbook|magazine|notebook"),
    "clock": ("clock", "clocks", "", "clock tower"),
    "vase": ("vase", "vases", "", "jar|pot|urn"),
    "scissors": ("pair of scissors", "pairs of scissors", "scissors", "shears"),
    "teddy bear": ("teddy bear", "teddy bears", "teddy", "stuffed animal|plush|bear|toy"),
    "hair drier": ("hair dryer", "hair dryers", "hair drier|hairdryer|blow dryer|blowdryer", "dryer|drier"),
    "toothbrush": ("toothbrush", "toothbrushes", "", "brush"),
}

# Hypernyms: singular word -> the categories (by name) it can stand for.
_ANIMALS = "bird|cat|dog|horse|sheep|cow|elephant|bear|zebra|giraffe"
_HYPERNYMS: dict[str, str] = {
    "animal": _ANIMALS, "creature": _ANIMALS, "beast": _ANIMALS, "mammal": _ANIMALS.replace("bird|", ""),
    "pet": "cat|dog", "livestock": "sheep|cow|horse", "wildlife": _ANIMALS,
    "vehicle": "bicycle|car|motorcycle|airplane|bus|train|truck|boat", "transportation": "car|bus|train|truck|boat",
    "food": "banana|apple|sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake", "meal": "sandwich|pizza|hot dog",
    "snack": "banana|apple|donut|cake|hot dog", "dessert": "cake|donut", "fruit": "banana|apple|orange",
    "vegetable": "broccoli|carrot", "veggie": "broccoli|carrot",
    "furniture": "chair|couch|bed|dining table|bench|toilet", "seat": "chair|couch|bench|toilet",
    "utensil": "fork|knife|spoon", "silverware": "fork|knife|spoon", "cutlery": "fork|knife|spoon",
    "dish": "bowl|cup|wine glass", "dishware": "bowl|cup|wine glass", "drink": "cup|bottle|wine glass",
    "beverage": "cup|bottle|wine glass", "container": "bottle|cup|bowl|vase",
    "bag": "backpack|handbag|suitcase", "luggage": "suitcase|backpack|handbag", "accessory": "backpack|umbrella|handbag|tie|suitcase",
    "ball": "sports ball", "board": "skateboard|surfboard|snowboard", "toy": "teddy bear|kite|frisbee|sports ball",
    "equipment": "skis|snowboard|sports ball|kite|baseball bat|baseball glove|skateboard|surfboard|tennis racket|frisbee",
    "electronics": "tv|laptop|mouse|remote|keyboard|cell phone", "device": "tv|laptop|mouse|remote|keyboard|cell phone",
    "gadget": "tv|laptop|mouse|remote|keyboard|cell phone", "computer": "laptop|tv|keyboard|mouse",
    "screen": "tv|laptop|cell phone", "monitor": "tv|laptop", "appliance": "microwave|oven|toaster|sink|refrigerator",
    "sign": "stop sign", "signal": "traffic light", "light": "traffic light", "glass": "wine glass|cup",
    "plant": "potted plant", "flower": "potted plant|vase",
}
# Heads that can stand for any object at all.
GENERIC = frozenset(_forms("object|thing|item|one|stuff|something|everything|anything|entity|article"))
# Heads for every synthetic shape category.
_SHAPE_WORDS = "shape|figure|symbol|form|polygon"


@dataclass(frozen=True)
class Entry:
    """One category's words: display (singular, plural), names (whole category), mentions."""

    display: tuple[str, str]
    names: frozenset[str]
    mentions: frozenset[str]


def _coco_entries() -> dict[str, Entry]:
    out = {}
    for name, (sg, pl, names, mentions) in _COCO.items():
        nm = _forms(names) | {sg, pl, name, pluralize(name)}
        out[name] = Entry((sg, pl), frozenset(nm), frozenset(_forms(mentions) - nm))
    return out


def _synth_entries() -> dict[str, Entry]:
    out = {}
    for c in SYNTH_CATEGORIES:
        names = frozenset(w.lower() for w in (*c.nouns, *c.plurals))
        out[c.name] = Entry((c.nouns[0], c.plurals[0]), names, frozenset())
    return out


BUILTIN: dict[str, Entry] = {**_coco_entries(), **_synth_entries()}
SYNTH_NAMES = frozenset(c.name for c in SYNTH_CATEGORIES)


def entry_from_json(name: str, spec: object, source: str) -> Entry:
    """An entry from ``{"singular": [...], "plural": [...], "mentions": [...]}`` (first forms = display)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("singular"), list) or not spec["singular"]:
        raise RefbenchError(f"{source}: entry {name!r} must be an object with a non-empty 'singular' list "
                            f'(e.g. {{"singular": ["zorb"], "plural": ["zorbs"], "mentions": []}})')
    for key in ("plural", "mentions"):
        if not isinstance(spec.get(key, []), list):
            raise RefbenchError(f"{source}: entry {name!r} field {key!r} must be a list of words")
    sing = [str(w).lower().strip() for w in spec["singular"]]
    plur = [str(w).lower().strip() for w in spec.get("plural") or [pluralize(w) for w in sing]]
    mentions = _forms("|".join(str(w) for w in spec.get("mentions", [])))
    names = frozenset(sing) | frozenset(plur)
    return Entry((sing[0], plur[0]), names, frozenset(mentions - names))


def load_lexicon_file(path: str | Path) -> dict[str, Entry]:
    """Extra entries from a JSON file ``{category name: {singular, plural, mentions}}``."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise RefbenchError(f"{path}: a lexicon file is a JSON object {{category name: {{\"singular\": [...], ...}}}}")
    return {str(k).lower(): entry_from_json(str(k), v, str(path)) for k, v in doc.items()}


def fallback_entry(name: str) -> Entry:
    """The entry used for a category without one when fallback is on: its name and regular plural."""
    sg = name.lower().strip()
    return Entry((sg, pluralize(sg)), frozenset({sg, pluralize(sg)}), frozenset())


class Lexicon:
    """The lexicon restricted to one dataset's categories ``{category_id: name}``.

    ``extra`` entries override built-in ones; categories with neither raise a RefbenchError
    listing them, unless ``fallback`` (then they get :func:`fallback_entry` and are listed
    in ``fallback_names``).
    """

    def __init__(self, categories: Mapping[int, str], extra: Mapping[str, Entry] | None = None,
                 fallback: bool = False, source: str = "instances.json") -> None:
        extra = dict(extra or {})
        self.categories = {int(k): str(v) for k, v in categories.items()}
        self.entries: dict[int, Entry] = {}
        missing = []
        self.fallback_names: list[str] = []
        for cid, name in sorted(self.categories.items()):
            key = name.lower().strip()
            entry = extra.get(key) or BUILTIN.get(key)
            if entry is None:
                if not fallback:
                    missing.append(name)
                    continue
                entry = fallback_entry(name)
                self.fallback_names.append(name)
            self.entries[cid] = entry
        if missing:
            raise RefbenchError(
                f"{source}: {len(missing)} categor{'y has' if len(missing) == 1 else 'ies have'} no lexicon entry: "
                f"{', '.join(repr(m) for m in missing)}; add them with --lexicon FILE (JSON {{name: {{\"singular\": "
                f"[...], \"plural\": [...], \"mentions\": [...]}}}}) or pass --lexicon-fallback to use each name and "
                f"its regular plural")
        by_name = {n.lower(): cid for cid, n in self.categories.items()}
        names: dict[str, set[int]] = {}
        words: dict[str, set[int]] = {}
        for cid, e in self.entries.items():
            for w in e.names:
                names.setdefault(w, set()).add(cid)
                words.setdefault(w, set()).add(cid)
            for w in e.mentions:
                words.setdefault(w, set()).add(cid)
        for hyper, members in _HYPERNYMS.items():
            ids = {by_name[m] for m in members.split("|") if m in by_name}
            for w in (_forms(hyper) if ids else ()):
                words.setdefault(w, set()).update(ids)
        synth_ids = {cid for cid, n in self.categories.items() if n in SYNTH_NAMES}
        for w in (_forms(_SHAPE_WORDS) if synth_ids else ()):
            words.setdefault(w, set()).update(synth_ids)
        everything = set(self.entries)
        for w in GENERIC:
            words.setdefault(w, set()).update(everything)
        self.name_cats = {w: frozenset(c) for w, c in names.items()}
        self.word_cats = {w: frozenset(c) for w, c in words.items()}
        self.max_words = max((len(w.split()) for w in self.word_cats), default=1)

    def display(self, category_id: int) -> tuple[str, str]:
        """(singular, plural) noun for templates."""
        return self.entries[category_id].display

    def lookup(self, phrase: str, names_only: bool = False) -> frozenset[int]:
        """Categories a lower-case word or multi-word phrase stands for (empty if none)."""
        table = self.name_cats if names_only else self.word_cats
        key = phrase.lower().strip()
        hit = table.get(key)
        if hit is None and "-" in key:
            hit = table.get(key.replace("-", " ")) or table.get(key.replace("-", ""))
        return hit or frozenset()

    def scan(self, words: Iterable[str]) -> frozenset[int]:
        """Every category any word or n-gram (longest match first) of ``words`` stands for,
        excluding the generic heads ("one", "thing"): a word-level safety net."""
        toks = [w.lower() for w in words]
        out: set[int] = set()
        i = 0
        while i < len(toks):
            for n in range(min(self.max_words, len(toks) - i), 0, -1):
                phrase = " ".join(toks[i:i + n])
                if n == 1 and phrase in GENERIC:
                    continue
                hit = self.lookup(phrase)
                if hit:
                    out |= hit
                    i += n - 1
                    break
            i += 1
        return frozenset(out)

    def report(self) -> dict:
        """What the build report says about the lexicon."""
        return {"categories": len(self.categories), "with_builtin_or_file_entry": len(self.entries) - len(self.fallback_names),
                "fallback_names": list(self.fallback_names), "words": len(self.word_cats)}
