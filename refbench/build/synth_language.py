"""Referring expressions for synthetic scenes: one target, many targets, no target.

Every sentence is checked against the scene before it is used:
    * one target: the description (attributes, extreme position among the objects that
      share the description, or a spatial relation to a uniquely described landmark)
      matches the target and no other object;
    * many targets: a plural description ("both green triangles", "all the red shapes")
      matches exactly the listed objects (two or more);
    * zero targets: a plausible description (sharing a colour or a shape with something
      in the image) matches no object.
Attributes are category (shape), colour and size class; positions use object centres
with a margin, so every spatial word is decidable from the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refbench.build.synth_scene import CATEGORIES, COLORS, SIZES, SceneObject

ATTR_SETS = (("cat",), ("color", "cat"), ("size", "cat"), ("size", "color", "cat"), ("color",), ("size", "color"))
SIZE_WORDS = {"small": ("small", "little"), "medium": ("medium", "medium-sized"), "large": ("large", "big")}
GENERIC = ("shape", "one", "object")
GENERIC_PLURAL = ("shapes", "objects")
EXTREME_WORDS = {"left": ("left", "leftmost"), "right": ("right", "rightmost"),
                 "top": ("top", "upper", "topmost"), "bottom": ("bottom", "lower", "bottommost")}
EXTREME_PHRASES = {"left": ("on the left",), "right": ("on the right",), "top": ("at the top",),
                   "bottom": ("at the bottom",)}
RELATION_WORDS = {"left": ("left of", "to the left of"), "right": ("right of", "to the right of"),
                  "above": ("above", "over"), "below": ("below", "under", "beneath"),
                  "near": ("next to", "beside", "near")}
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
MARGIN = 28.0  # px: minimum centre offset for a spatial word


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def matches(o: SceneObject, attrs: tuple[str, ...], values: dict) -> bool:
    return all({"cat": o.category.name, "color": o.color, "size": o.size}[a] == values[a] for a in attrs)


def values_of(o: SceneObject) -> dict:
    return {"cat": o.category.name, "color": o.color, "size": o.size}


def matching(objects: list[SceneObject], attrs: tuple[str, ...], values: dict) -> list[int]:
    return [i for i, o in enumerate(objects) if matches(o, attrs, values)]


def noun_phrase(rng: np.random.Generator, attrs: tuple[str, ...], values: dict, plural: bool = False) -> str:
    """Adjectives + noun for an attribute set ("small red circle", "blue shape")."""
    words = []
    if "size" in attrs:
        words.append(_pick(rng, SIZE_WORDS[values["size"]]))
    if "color" in attrs:
        words.append(values["color"])
    if "cat" in attrs:
        cat = next(c for c in CATEGORIES if c.name == values["cat"])
        k = int(rng.integers(len(cat.nouns)))
        words.append(cat.plurals[k] if plural else cat.nouns[k])
    else:
        words.append(_pick(rng, GENERIC_PLURAL if plural else GENERIC))
    return " ".join(words)


def _det(rng: np.random.Generator) -> str:
    return "the " if rng.random() < 0.8 else ""


@dataclass(frozen=True)
class Plan:
    """A verified way to single out one object; realised into words by :func:`realize`."""

    kind: str  # attr | extreme | relation
    attrs: tuple[str, ...]
    direction: str = ""
    landmark: int = -1
    landmark_attrs: tuple[str, ...] = ()
    weight: float = 1.0


def _extreme_ok(objects: list[SceneObject], t: int, group: list[int], direction: str) -> bool:
    others = [objects[i] for i in group if i != t]
    o = objects[t]
    if direction == "left":
        return all(o.cx + MARGIN < p.cx for p in others)
    if direction == "right":
        return all(o.cx > p.cx + MARGIN for p in others)
    if direction == "top":
        return all(o.cy + MARGIN < p.cy for p in others)
    return all(o.cy > p.cy + MARGIN for p in others)


def _relation(o: SceneObject, land: SceneObject, rel: str, strict: bool) -> bool:
    dx, dy = o.cx - land.cx, o.cy - land.cy
    m, ratio = (MARGIN, 1.0) if strict else (0.0, 0.5)
    if rel == "left":
        return -dx > m and abs(dx) > ratio * abs(dy)
    if rel == "right":
        return dx > m and abs(dx) > ratio * abs(dy)
    if rel == "above":
        return -dy > m and abs(dy) > ratio * abs(dx)
    if rel == "below":
        return dy > m and abs(dy) > ratio * abs(dx)
    raise ValueError(rel)


def _unique_attrs(objects: list[SceneObject], i: int) -> tuple[str, ...] | None:
    """The shortest category-bearing description that singles out object i, if any."""
    for attrs in (("cat",), ("color", "cat"), ("size", "cat"), ("size", "color", "cat")):
        if matching(objects, attrs, values_of(objects[i])) == [i]:
            return attrs
    return None


def one_target_plans(objects: list[SceneObject], t: int) -> list[Plan]:
    """Every verified description of object t (see module doc), with sampling weights."""
    target, vals = objects[t], values_of(objects[t])
    plans: list[Plan] = []
    minimal = None
    for attrs in ATTR_SETS:
        group = matching(objects, attrs, vals)
        if group == [t]:
            if minimal is None or len(attrs) < len(minimal):
                minimal = attrs
            plans.append(Plan("attr", attrs, weight=1.0))
        elif len(group) >= 2 and ("cat" in attrs or attrs == ("color",)):
            for d in ("left", "right", "top", "bottom"):
                if _extreme_ok(objects, t, group, d):
                    plans.append(Plan("extreme", attrs, d, weight=2.0))
    plans = [Plan(p.kind, p.attrs, weight=3.0) if p.kind == "attr" and p.attrs == minimal else p for p in plans]
    for attrs in (("cat",), ("color", "cat")):
        group = matching(objects, attrs, vals)
        if len(group) < 2 and not (attrs == ("cat",) and len(objects) > 2):
            continue
        for li, land in enumerate(objects):
            if li == t or li in group:
                continue
            land_attrs = _unique_attrs(objects, li)
            if land_attrs is None:
                continue
            for rel in ("left", "right", "above", "below"):
                if _relation(target, land, rel, True) and not any(
                        _relation(objects[g], land, rel, False) for g in group if g != t):
                    plans.append(Plan("relation", attrs, rel, li, land_attrs, weight=2.0 if len(group) >= 2 else 0.5))
            d_t = np.hypot(target.cx - land.cx, target.cy - land.cy)
            others = [np.hypot(objects[g].cx - land.cx, objects[g].cy - land.cy) for g in group if g != t]
            if d_t < 2.2 * (target.r + land.r) and all(d_t < 0.6 * d for d in others):
                plans.append(Plan("relation", attrs, "near", li, land_attrs, weight=1.0 if others else 0.3))
    return plans


def realize(rng: np.random.Generator, objects: list[SceneObject], t: int, plan: Plan) -> str:
    vals = values_of(objects[t])
    np_ = noun_phrase(rng, plan.attrs, vals)
    if plan.kind == "attr":
        if rng.random() < 0.15 and "color" in plan.attrs and "cat" in plan.attrs:
            rest = tuple(a for a in plan.attrs if a != "color")
            return f"{_det(rng)}{noun_phrase(rng, rest, vals)} that is {vals['color']}".strip()
        return f"{_det(rng)}{np_}".strip()
    if plan.kind == "extreme":
        if rng.random() < 0.5:
            return f"{_det(rng)}{_pick(rng, EXTREME_WORDS[plan.direction])} {np_}".strip()
        return f"{_det(rng)}{np_} {_pick(rng, EXTREME_PHRASES[plan.direction])}".strip()
    land = noun_phrase(rng, plan.landmark_attrs, values_of(objects[plan.landmark]))
    rel = _pick(rng, RELATION_WORDS[plan.direction])
    glue = " that is " if rng.random() < 0.2 else " "
    return f"{_det(rng)}{np_}{glue}{rel} the {land}".strip()


def one_target_sentences(rng: np.random.Generator, objects: list[SceneObject], t: int, n: int) -> list[str]:
    """Up to n distinct verified sentences for object t (empty if it cannot be singled out)."""
    plans = one_target_plans(objects, t)
    if not plans:
        return []
    w = np.array([p.weight for p in plans], np.float64)
    order = rng.choice(len(plans), size=min(n, len(plans)), replace=False, p=w / w.sum())
    out: list[str] = []
    for k in order:
        s = realize(rng, objects, t, plans[int(k)])
        if s not in out:
            out.append(s)
    return out


def many_target_groups(objects: list[SceneObject]) -> list[tuple[tuple[str, ...], dict, list[int]]]:
    """(attrs, values, members) for each distinct set of two or more objects that a plural
    description matches exactly (the first description in a fixed order names each set)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for attrs in (("cat",), ("color", "cat"), ("color",), ("size", "cat"), ("size", "color", "cat")):
        for o in objects:
            vals = values_of(o)
            members = matching(objects, attrs, vals)
            if len(members) >= 2 and tuple(members) not in seen:
                seen.add(tuple(members))
                out.append((attrs, vals, members))
    return out


def many_target_sentence(rng: np.random.Generator, attrs: tuple[str, ...], values: dict, n: int) -> str:
    plural = noun_phrase(rng, attrs, values, plural=True)
    num = NUMBERS.get(n, str(n))
    if n == 2:
        forms = (f"both {plural}", f"the two {plural}", f"two {plural}")
    else:
        forms = (f"the {num} {plural}", f"all {num} {plural}", f"all the {plural}", f"all {plural}")
    return _pick(rng, forms)


def zero_target_sentence(rng: np.random.Generator, objects: list[SceneObject]) -> str | None:
    """A plausible sentence about an object that is not in the image (None if none found)."""
    cats = [c.name for c in CATEGORIES]
    colors, sizes = list(COLORS), list(SIZES)
    for _ in range(50):
        kind = float(rng.random())
        ref = objects[int(rng.integers(len(objects)))]
        if kind < 0.55:  # keep the shape, change the colour, or vice versa
            attrs = ("color", "cat")
            vals = {"cat": ref.category.name, "color": _pick(rng, colors), "size": ref.size}
            if rng.random() < 0.5:
                vals = {"cat": _pick(rng, cats), "color": ref.color, "size": ref.size}
        elif kind < 0.75:
            attrs = ("size", "color", "cat")
            vals = {"cat": ref.category.name, "color": ref.color, "size": _pick(rng, sizes)}
        elif kind < 0.9:
            attrs = ("cat",)
            vals = {"cat": _pick(rng, cats), "color": "", "size": ""}
        else:
            attrs = ("color",)
            vals = {"cat": "", "color": _pick(rng, colors), "size": ""}
        if matching(objects, attrs, vals):
            continue
        np_ = noun_phrase(rng, attrs, vals)
        tail = float(rng.random())
        if tail < 0.15:
            return f"the {np_} {_pick(rng, EXTREME_PHRASES[_pick(rng, tuple(EXTREME_PHRASES))])}"
        if tail < 0.35:
            land = objects[int(rng.integers(len(objects)))]
            la = _unique_attrs(objects, objects.index(land))
            if la is not None:
                rel = _pick(rng, RELATION_WORDS[_pick(rng, tuple(RELATION_WORDS))])
                return f"the {np_} {rel} the {noun_phrase(rng, la, values_of(land))}"
        article = "an" if np_[0] in "aeiou" else "a"
        return f"{_det(rng)}{np_}".strip() if tail < 0.8 else f"{article} {np_}"
    return None


def caption_sentences(rng: np.random.Generator, objects: list[SceneObject], background: str) -> list[str]:
    """COCO-style captions listing the scene (three per image)."""
    groups: dict[tuple[str, str], int] = {}
    for o in objects:
        groups[(o.color, o.category.name)] = groups.get((o.color, o.category.name), 0) + 1
    parts = []
    for (color, cat), n in groups.items():
        c = next(x for x in CATEGORIES if x.name == cat)
        article = "an" if color[0] in "aeiou" else "a"
        parts.append(f"{article} {color} {c.nouns[0]}" if n == 1 else f"{NUMBERS.get(n, str(n))} {color} {c.plurals[0]}")
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    kinds = sorted({o.category.plurals[0] for o in objects})
    kind_list = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    n = len(objects)
    return [
        f"{listing} on a {background} background.",
        f"{NUMBERS.get(n, str(n)).capitalize()} colorful shapes drawn on a {background} surface.",
        f"A simple picture with {kind_list}.",
    ]
