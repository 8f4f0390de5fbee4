"""Scenes of the synthetic benchmark: shape categories, colours, sizes, placement, rendering.

Every object's mask is rasterized by pycocotools from the very polygon (rounded to 0.01 px,
as written to ``instances.json``) that is later decoded as its ground truth, and the image
is painted through those masks.  A polygon GT is therefore pixel-identical to the
rendered object by construction; objects with holes (ring) or cut by an occluder get an
RLE of their visible mask, which is exact as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils


@dataclass(frozen=True)
class ShapeCategory:
    """A COCO-style category of the synthetic benchmark.

    nouns/plurals: synonyms used in sentences (first = canonical); max_rotation: degrees
    of random rotation (symmetric shapes rotate freely); partition: generalization split
    (seen / unseen / excluded, mirroring OVR-COCO's 48/17/15 for CGFormer's setting).
    """

    id: int
    name: str
    supercategory: str
    nouns: tuple[str, ...]
    plurals: tuple[str, ...]
    max_rotation: float
    partition: str


CATEGORIES: tuple[ShapeCategory, ...] = (
    ShapeCategory(1, "circle", "round", ("circle", "disk"), ("circles", "disks"), 0, "seen"),
    ShapeCategory(2, "oval", "round", ("oval", "ellipse"), ("ovals", "ellipses"), 180, "unseen"),
    ShapeCategory(3, "ring", "round", ("ring",), ("rings",), 0, "seen"),
    ShapeCategory(4, "semicircle", "round", ("semicircle", "half circle"), ("semicircles", "half circles"), 15, "unseen"),
    ShapeCategory(5, "crescent", "round", ("crescent", "moon"), ("crescents", "moons"), 30, "excluded"),
    ShapeCategory(6, "square", "polygon", ("square",), ("squares",), 12, "seen"),
    ShapeCategory(7, "triangle", "polygon", ("triangle",), ("triangles",), 12, "seen"),
    ShapeCategory(8, "diamond", "polygon", ("diamond", "rhombus"), ("diamonds", "rhombuses"), 8, "unseen"),
    ShapeCategory(9, "hexagon", "polygon", ("hexagon",), ("hexagons",), 30, "excluded"),
    ShapeCategory(10, "star", "symbol", ("star",), ("stars",), 36, "seen"),
    ShapeCategory(11, "cross", "symbol", ("cross", "plus sign"), ("crosses", "plus signs"), 10, "seen"),
    ShapeCategory(12, "heart", "symbol", ("heart",), ("hearts",), 12, "seen"),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}

# Saturated object colours (RGB) that stand out on every background below.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38), "orange": (245, 135, 20), "yellow": (235, 205, 25), "green": (35, 160, 60),
    "blue": (35, 85, 215), "purple": (135, 55, 185), "pink": (240, 110, 180), "brown": (125, 75, 35),
    "black": (25, 25, 25),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "light gray": (205, 205, 205), "beige": (228, 218, 195), "pale blue": (200, 215, 230),
    "pale green": (205, 225, 200), "lavender": (220, 212, 232),
}
# Size classes by circumradius in pixels at 640x480; gaps between classes keep the word
# ("small" / "medium" / "large") decidable from the image alone.  Targets cover ~3-15 % of
# the image (mean ~7 %), closer to RefCOCO's referents than tiny shapes, so that CPU-sized
# models see enough foreground at a 160-pixel input.
SIZES: dict[str, tuple[float, float]] = {"small": (70.0, 86.0), "medium": (106.0, 126.0), "large": (150.0, 176.0)}


@dataclass
class SceneObject:
    """One drawn object.  cx, cy, r in pixels; polygons: flat xy lists (None for RLE shapes)."""

    category: ShapeCategory
    color: str
    size: str
    cx: float
    cy: float
    r: float
    angle: float
    polygons: list[list[float]] | None
    full_mask: np.ndarray = field(repr=False)
    visible: np.ndarray | None = field(default=None, repr=False)

    @property
    def occluded(self) -> bool:
        return self.visible is not None and bool((self.full_mask & ~self.visible).any())


def _regular(n: int, r: float, phase: float = -math.pi / 2) -> np.ndarray:
    t = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _circle_pts(r: float, n: int = 72) -> np.ndarray:
    return _regular(n, r, 0.0)


def shape_outline(name: str, r: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Outline (K, 2) around the origin (y down) and, for a ring, the hole's outline."""
    if name == "circle":
        return _circle_pts(r), None
    if name == "ring":
        return _circle_pts(r), _circle_pts(0.55 * r)
    if name == "oval":
        c = _circle_pts(1.0)
        return c * np.array([r, 0.58 * r]), None
    if name == "semicircle":
        t = np.linspace(0, math.pi, 37)
        arc = np.stack([r * np.cos(t), -r * np.sin(t)], 1)  # upper half, flat side down
        return arc + np.array([0, 0.4 * r]), None
    if name == "crescent":
        d, rho = 0.5 * r, 0.85 * r
        x = (r * r - rho * rho + d * d) / (2 * d)
        y = math.sqrt(max(r * r - x * x, 0.0))
        a = math.atan2(y, x)
        outer = np.linspace(a, 2 * math.pi - a, 48)
        phi = math.atan2(y, x - d)
        inner = np.linspace(2 * math.pi - phi, phi, 32)
        pts = np.concatenate([np.stack([r * np.cos(outer), r * np.sin(outer)], 1),
                              np.stack([d + rho * np.cos(inner), rho * np.sin(inner)], 1)[1:-1]])
        return pts - np.array([-0.2 * r, 0]), None
    if name == "square":
        s = 0.78 * r
        return np.array([[-s, -s], [s, -s], [s, s], [-s, s]]), None
    if name == "triangle":
        return _regular(3, r) + np.array([0, 0.15 * r]), None
    if name == "diamond":
        return np.array([[0, -r], [0.6 * r, 0], [0, r], [-0.6 * r, 0]]), None
    if name == "hexagon":
        return _regular(6, r, 0.0), None
    if name == "star":
        outer, inner = _regular(5, r), _regular(5, 0.45 * r, -math.pi / 2 + math.pi / 5)
        return np.stack([outer, inner], 1).reshape(-1, 2), None
    if name == "cross":
        a, b = 0.95 * r, 0.33 * r
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                         [-a, b], [-a, -b], [-b, -b]]), None
    if name == "heart":
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y + 2.5], 1) * (r / 17.0), None
    raise ValueError(name)


def _place(pts: np.ndarray, cx: float, cy: float, angle_deg: float) -> list[float]:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    p = pts @ rot.T + np.array([cx, cy])
    return np.round(p, 2).reshape(-1).tolist()


def raster(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    """bool (h, w) union of polygons, rasterized exactly as pycocotools decodes them."""
    rles = mask_utils.frPyObjects(polygons, h, w)
    return mask_utils.decode(rles).any(axis=2)


def make_object(cat: ShapeCategory, color: str, size: str, cx: float, cy: float, r: float, angle: float,
                h: int, w: int) -> SceneObject:
    outline, hole = shape_outline(cat.name, r)
    poly = _place(outline, cx, cy, angle)
    if hole is None:
        return SceneObject(cat, color, size, cx, cy, r, angle, [poly], raster([poly], h, w))
    full = raster([poly], h, w) & ~raster([_place(hole, cx, cy, angle)], h, w)
    return SceneObject(cat, color, size, cx, cy, r, angle, None, full)


@dataclass(frozen=True)
class SceneConfig:
    """Scene parameters (pixels at the image size).  min_visible: share of an object left
    visible under occluders; p_occlude: chance that a new object may overlap one other."""

    width: int = 640
    height: int = 480
    n_objects: tuple[int, ...] = (2, 3, 4)
    n_objects_p: tuple[float, ...] = (0.3, 0.45, 0.25)
    p_repeat_category: float = 0.4
    p_repeat_color: float = 0.3
    p_occlude: float = 0.2
    min_visible: float = 0.6
    border: int = 6


def _sample_attrs(rng: np.random.Generator, objects: list[SceneObject], cfg: SceneConfig,
                  allowed: list[ShapeCategory]) -> tuple[ShapeCategory, str, str]:
    existing = [o.category for o in objects if o.category in allowed]
    if existing and rng.random() < cfg.p_repeat_category:
        cat = existing[rng.integers(len(existing))]
    else:
        cat = allowed[rng.integers(len(allowed))]
    colors = list(COLORS)
    if objects and rng.random() < cfg.p_repeat_color:
        color = objects[rng.integers(len(objects))].color
    else:
        color = colors[rng.integers(len(colors))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    return cat, color, size


def _fits(cx: float, cy: float, r: float, objects: list[SceneObject], close: int | None) -> bool:
    for i, o in enumerate(objects):
        d = math.hypot(cx - o.cx, cy - o.cy)
        lo = 0.55 if i == close else 0.9
        if d < lo * (r + o.r):
            return False
    return True


def compose_scene(rng: np.random.Generator, cfg: SceneConfig,
                  require: tuple[tuple[str, ...], int] | None = None) -> list[SceneObject]:
    """Place objects (draw order = list order); ``require=(supercategories, k)`` forces at
    least k objects from those supercategories (testA / testB scenes).  Visible masks are
    filled in; an object that finds no free spot in 60 tries is left out."""
    h, w = cfg.height, cfg.width
    n = int(rng.choice(cfg.n_objects, p=cfg.n_objects_p))
    if require is not None:
        n = max(n, require[1] + 1)
    objects: list[SceneObject] = []
    for k in range(n):
        if require is not None and k < require[1]:
            allowed = [c for c in CATEGORIES if c.supercategory in require[0]]
        else:
            allowed = list(CATEGORIES)
        for _attempt in range(60):
            cat, color, size = _sample_attrs(rng, objects, cfg, allowed)
            lo, hi = SIZES[size]
            r = float(rng.uniform(lo, hi))
            m = r + cfg.border
            cx, cy = float(rng.uniform(m, w - m)), float(rng.uniform(m, h - m))
            close = int(rng.integers(len(objects))) if objects and rng.random() < cfg.p_occlude else None
            if not _fits(cx, cy, r, objects, close):
                continue
            angle = float(rng.uniform(-cat.max_rotation, cat.max_rotation)) if cat.max_rotation else 0.0
            obj = make_object(cat, color, size, cx, cy, r, angle, h, w)
            cover = obj.full_mask
            ok = all(((o.visible if o.visible is not None else o.full_mask) & ~cover).sum()
                     >= cfg.min_visible * o.full_mask.sum() for o in objects)
            if not ok:
                continue
            for o in objects:
                o.visible = (o.visible if o.visible is not None else o.full_mask) & ~cover
            obj.visible = obj.full_mask.copy()
            objects.append(obj)
            break
    return objects


def _erode(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        e = out.copy()
        e[1:, :] &= out[:-1, :]
        e[:-1, :] &= out[1:, :]
        e[:, 1:] &= out[:, :-1]
        e[:, :-1] &= out[:, 1:]
        out = e
    return out


def render(rng: np.random.Generator, objects: list[SceneObject], background: str, cfg: SceneConfig) -> np.ndarray:
    """uint8 (H, W, 3): lightly textured background, objects painted in order with a dark rim,
    the same faint per-pixel noise over everything."""
    h, w = cfg.height, cfg.width
    base = np.array(BACKGROUNDS[background], np.float32)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    gx, gy = (float(v) for v in rng.uniform(-12, 12, size=2))
    shade = gx * xx + gy * yy
    texture = int(rng.integers(3))
    if texture == 1:  # faint stripes
        period = float(rng.uniform(18, 40))
        tilt = float(rng.uniform(-1, 1))
        shade = shade + 5.0 * np.sign(np.sin((xx * w + yy * (h * tilt)) * np.float32(2 * math.pi / period)))
    elif texture == 2:  # faint checkerboard
        cell = int(rng.integers(24, 48))
        ys = (np.arange(h)[:, None] // cell) % 2
        xs = (np.arange(w)[None, :] // cell) % 2
        shade = shade + 5.0 * (ys ^ xs).astype(np.float32)
    noise = rng.integers(-4, 5, size=(h, w), dtype=np.int8).astype(np.float32)
    light = shade + noise
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):  # per channel: broadcasting over a trailing axis of 3 is several times slower
        img[:, :, c] = np.clip(light + base[c], 0, 255)
    for o in objects:
        m = o.full_mask
        ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        crop = m[y0:y1, x0:x1]
        rim = crop & ~_erode(crop, 2)
        col = np.array(COLORS[o.color], np.float32)
        paint = np.where(rim[:, :, None], col * 0.55, col) + noise[y0:y1, x0:x1, None]
        region = img[y0:y1, x0:x1]
        region[crop] = np.clip(paint[crop], 0, 255).astype(np.uint8)
    return img
