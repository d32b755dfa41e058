"""Procedural scenes of coloured shapes with exact, occlusion-aware instance masks.

A scene is drawn at `supersample`× resolution with PIL, then box-averaged down for
antialiasing. The instance masks come from the same geometry: a per-pixel label map
(0 = background, k + 1 = object k, later objects overwrite earlier ones) is drawn at
full resolution and reduced by majority vote, so a mask pixel is on exactly where the
object covers most of that pixel. Masks are therefore the VISIBLE pixels after
occlusion, disjoint by construction.

Everything is a pure function of the seed (numpy's PCG64 through `default_rng`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .background import render_background

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon")

#: Saturated object colours; backgrounds are muted (low saturation, mid value) so that
#: every one of these, white and black included, stands out against them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "green": (34, 160, 64),
    "blue": (37, 89, 220),
    "yellow": (245, 205, 30),
    "purple": (135, 60, 190),
    "orange": (245, 130, 25),
    "white": (248, 248, 248),
    "black": (22, 22, 22),
}

# Symmetry period of each shape, in degrees: rotations are drawn in [0, period).
_PERIOD = {"circle": 0.0, "ring": 0.0, "square": 90.0, "triangle": 120.0, "star": 72.0, "hexagon": 60.0}
_RING_HOLE = 0.55  # inner / outer radius of a ring
_STAR_INNER = 0.42  # inner / outer radius of a star
_CROSS_HALF_WIDTH = 0.32  # arm half-width / arm length of a cross


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. `difficulty` in [0, 1] scales overlap, occlusion, object
    size spread, background texture contrast and pixel noise together."""

    width: int = field(default=512, metadata={"help": "image width in pixels"})
    height: int | None = field(default=None, metadata={"help": "image height in pixels; None = square"})
    min_objects: int = field(default=2, metadata={"help": "fewest objects in a scene"})
    max_objects: int = field(default=7, metadata={"help": "most objects in a scene"})
    difficulty: float = field(default=0.5, metadata={"help": "0 = easy (sparse, clean) .. 1 = hard"})
    supersample: int = field(default=4, metadata={"help": "render at this multiple, then downsample (2-4)"})
    min_visible_px: int = field(
        default=150, metadata={"help": "an object must keep this many visible pixels"}
    )
    min_visible_frac: float | None = field(
        default=None, metadata={"help": "visible share of an object's own area; None = from difficulty"}
    )

    def __post_init__(self) -> None:
        h = self.height if self.height is not None else self.width
        if min(self.width, h) < 128 or max(self.width, h) > 4096:
            raise ValueError(f"image size {self.width}x{h} is outside 128..4096 pixels per side")
        if not 1 <= self.min_objects <= self.max_objects <= 12:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= 12, got {self.min_objects}..{self.max_objects}"
            )
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if not 1 <= self.supersample <= 8:
            raise ValueError(f"supersample must be in 1..8, got {self.supersample}")
        if self.min_visible_frac is not None and not 0.0 < self.min_visible_frac <= 1.0:
            raise ValueError(f"min_visible_frac must be in (0, 1], got {self.min_visible_frac}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height if self.height is not None else self.width

    @property
    def visible_frac(self) -> float:
        return self.min_visible_frac if self.min_visible_frac is not None else 0.8 - 0.4 * self.difficulty

    @property
    def overlap_prob(self) -> float:
        """Chance that a new object may overlap the ones already placed."""
        return 0.05 + 0.45 * self.difficulty

    @property
    def radius_range(self) -> tuple[float, float]:
        """Circumradius range as a share of the short side: diameters of ~11%-32%."""
        return 0.065 - 0.015 * self.difficulty, 0.16


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One drawn object. Pixel quantities are in output-image pixels."""

    index: int  # draw order: 0 is drawn first (bottom)
    shape: str
    colour: str
    center: tuple[float, float]  # geometric centre (x, y)
    radius: float  # circumradius
    rotation: float  # degrees
    full_area: float  # area before occlusion
    mask: np.ndarray = field(repr=False)  # HxW bool, the visible pixels
    area: int = 0  # visible pixels
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)  # inclusive box of the visible mask
    centroid: tuple[float, float] = (0.0, 0.0)  # of the visible mask, (x, y)
    size_rank: int = 0  # 1 = largest full_area in the scene

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene: `image` is HxWx3 uint8, `labels` HxW uint8 (0 = background,
    k + 1 = objects[k]), and `objects` in draw order."""

    seed: int
    config: SceneConfig
    image: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    objects: tuple[SceneObject, ...]
    background: str

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class _Geom:
    shape: str
    colour: str
    cx: float  # full-resolution pixels
    cy: float
    r: float
    rot: float
    rgb: tuple[int, int, int]


def _polygon(n: int, r: float, rot: float, inner: float | None = None) -> list[tuple[float, float]]:
    """Regular n-gon (or 2n-vertex star when `inner` is set) around the origin, pointing up."""
    pts = []
    steps = 2 * n if inner is not None else n
    for i in range(steps):
        rad = r if inner is None or i % 2 == 0 else r * inner
        a = math.radians(rot) - math.pi / 2 + 2 * math.pi * i / steps
        pts.append((rad * math.cos(a), rad * math.sin(a)))
    return pts


def _cross(r: float, rot: float) -> list[tuple[float, float]]:
    w, a = r * _CROSS_HALF_WIDTH, r
    base = [
        (-w, -a),
        (w, -a),
        (w, -w),
        (a, -w),
        (a, w),
        (w, w),
        (w, a),
        (-w, a),
        (-w, w),
        (-a, w),
        (-a, -w),
        (-w, -w),
    ]
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return [(x * c - y * s, x * s + y * c) for x, y in base]


def _crop(g: _Geom) -> tuple[int, int, int]:
    """(x0, y0, side) of the square full-resolution crop that holds the shape."""
    return math.floor(g.cx - g.r) - 1, math.floor(g.cy - g.r) - 1, math.ceil(2 * g.r) + 3


def _shape_mask(g: _Geom) -> tuple[np.ndarray, int, int]:
    """Full-resolution bool mask of one shape in its own crop, plus the crop's (x0, y0)."""
    x0, y0, side = _crop(g)
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    ox, oy = g.cx - x0, g.cy - y0
    if g.shape in ("circle", "ring"):
        draw.ellipse((ox - g.r, oy - g.r, ox + g.r, oy + g.r), fill=255)
        if g.shape == "ring":
            h = g.r * _RING_HOLE
            draw.ellipse((ox - h, oy - h, ox + h, oy + h), fill=0)
    else:
        if g.shape == "cross":
            pts = _cross(g.r, g.rot)
        elif g.shape == "star":
            pts = _polygon(5, g.r, g.rot, inner=_STAR_INNER)
        else:
            pts = _polygon({"square": 4, "triangle": 3, "hexagon": 6}[g.shape], g.r, g.rot)
        draw.polygon([(ox + x, oy + y) for x, y in pts], fill=255)
    return np.asarray(img) > 0, x0, y0


def _overlaps(g: _Geom, other: _Geom, gap: float) -> bool:
    return math.hypot(g.cx - other.cx, g.cy - other.cy) < g.r + other.r + gap


def _place(rng: np.random.Generator, cfg: SceneConfig) -> tuple[list[_Geom], np.ndarray]:
    """Choose object geometry; returns the geometry and the full-resolution label map.

    Each new object goes on top; it is accepted only if every object below it keeps
    `visible_frac` of its area and `min_visible_px` pixels. Objects of the same colour
    never touch, so that instances stay visually separable.
    """
    ss = cfg.supersample
    w, h = cfg.size
    W, H = w * ss, h * ss
    short = min(w, h) * ss
    rmin, rmax = (v * short for v in cfg.radius_range)
    margin = 0.02 * short
    labels = np.zeros((H, W), np.uint8)
    geoms: list[_Geom] = []
    full: list[int] = []  # full-resolution pixel counts before occlusion
    visible: list[int] = []
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    min_px = cfg.min_visible_px * ss * ss
    for _ in range(n):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        jitter = rng.integers(-8, 9, 3)
        rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter, strict=True))
        may_overlap = rng.random() < cfg.overlap_prob
        # area-uniform sizes would crowd out large objects; log-uniform radii spread ranks
        r = float(np.exp(rng.uniform(math.log(rmin), math.log(rmax))))
        partners = [o for o in geoms if o.colour != colour] if may_overlap else []
        for attempt in range(60):
            if partners and attempt < 40:  # uniform placement rarely overlaps: aim at a neighbour
                o = partners[int(rng.integers(len(partners)))]
                angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 1.0) * (r + o.r)
                cx = float(np.clip(o.cx + reach * math.cos(angle), r + margin, W - r - margin))
                cy = float(np.clip(o.cy + reach * math.sin(angle), r + margin, H - r - margin))
            else:
                cx = rng.uniform(r + margin, W - r - margin)
                cy = rng.uniform(r + margin, H - r - margin)
            period = _PERIOD.get(shape)
            if shape == "cross":  # keep it a plus sign, not an ×
                rot = rng.uniform(-1, 1) * (8 + 17 * cfg.difficulty)
            else:
                rot = rng.uniform(0, period) if period else 0.0
            g = _Geom(shape, colour, cx, cy, r, rot, rgb)  # type: ignore[arg-type]
            if any(_overlaps(g, o, 0.03 * short) for o in geoms if o.colour == colour or not may_overlap):
                r = max(rmin, r * 0.97)
                continue
            m, x0, y0 = _shape_mask(g)
            region = labels[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]]
            covered = np.bincount(region[m], minlength=len(geoms) + 1)
            if all(
                visible[k] - covered[k + 1] >= max(min_px, cfg.visible_frac * full[k])
                for k in range(len(geoms))
            ):
                for k in range(len(geoms)):
                    visible[k] -= int(covered[k + 1])
                region[m] = len(geoms) + 1
                geoms.append(g)
                full.append(int(m.sum()))
                visible.append(int(m.sum()))
                break
            r = max(rmin, r * 0.97)
    return geoms, labels


def _block_counts(labels_full: np.ndarray, geoms: list[_Geom], ss: int) -> np.ndarray:
    """[n + 1, h, w] int32: how many of each output pixel's ss×ss sub-pixels each label
    covers (index 0 = background). Counted only inside each object's crop."""
    H, W = labels_full.shape
    h, w = H // ss, W // ss
    counts = np.zeros((len(geoms) + 1, h, w), np.int32)
    for k, g in enumerate(geoms):
        x0, y0, side = _crop(g)
        bx0, by0 = max(0, x0 // ss), max(0, y0 // ss)
        bx1, by1 = min(w, -(-(x0 + side) // ss)), min(h, -(-(y0 + side) // ss))
        sub = labels_full[by0 * ss : by1 * ss, bx0 * ss : bx1 * ss] == k + 1
        counts[k + 1, by0:by1, bx0:bx1] = sub.reshape(by1 - by0, ss, bx1 - bx0, ss).sum(axis=(1, 3))
    counts[0] = ss * ss - counts[1:].sum(axis=0)
    return counts


def _rasterize(geoms: list[_Geom], width: int, height: int) -> np.ndarray:
    """Full-resolution label map: 0 = background, k + 1 = geoms[k], later on top."""
    labels = np.zeros((height, width), np.uint8)
    for k, g in enumerate(geoms):
        m, x0, y0 = _shape_mask(g)
        labels[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]][m] = k + 1
    return labels


def render_scene(
    seed: int, size: int | tuple[int, int] | None = None, *, config: SceneConfig | None = None
) -> Scene:
    """Render the scene for `seed`. `size` (int = square, or (width, height)) overrides
    the config's size. Identical seeds and configs give identical bytes."""
    cfg = config or SceneConfig()
    if size is not None:
        w, h = (size, size) if isinstance(size, int) else size
        cfg = dataclasses.replace(cfg, width=int(w), height=int(h))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    # independent streams: changing the background code never moves the objects
    place_ss, bg_ss, grain_ss = np.random.SeedSequence(int(seed)).spawn(3)
    geoms, labels_full = _place(np.random.default_rng(place_ss), cfg)
    w, h = cfg.size
    ss = cfg.supersample
    while True:
        counts = _block_counts(labels_full, geoms, ss)
        labels = counts.argmax(axis=0).astype(np.uint8)  # majority vote; ties go to the lower label
        areas = np.bincount(labels.ravel(), minlength=len(geoms) + 1)[1:]
        # placement checked visibility at full resolution; this guards majority-vote rounding
        keep = [g for g, a in zip(geoms, areas, strict=True) if a >= cfg.min_visible_px]
        if len(keep) == len(geoms):
            break
        geoms = keep
        labels_full = _rasterize(geoms, w * ss, h * ss)

    bg, kind = render_background(np.random.default_rng(bg_ss), w, h, cfg.difficulty)
    # box-filter antialiasing without a full-resolution RGB canvas: mix by sub-pixel coverage
    cover = counts.astype(np.float32) / (ss * ss)
    image = bg * cover[0][..., None]
    for k, g in enumerate(geoms):
        image += cover[k + 1][..., None] * np.array(g.rgb, np.float32)
    sigma = 6.0 * max(0.0, cfg.difficulty - 0.5)  # pixel grain only on hard settings: it bloats PNGs
    if sigma > 0:
        image = image + np.random.default_rng(grain_ss).normal(0.0, sigma, image.shape)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    full_areas = [_geom_area(g) / (ss * ss) for g in geoms]
    order = sorted(range(len(geoms)), key=lambda k: -full_areas[k])
    ranks = {k: rank + 1 for rank, k in enumerate(order)}
    objects = []
    for k, g in enumerate(geoms):
        mask = labels == k + 1
        ys, xs = np.nonzero(mask)
        objects.append(
            SceneObject(
                index=k,
                shape=g.shape,
                colour=g.colour,
                center=(g.cx / ss, g.cy / ss),
                radius=g.r / ss,
                rotation=float(g.rot),
                full_area=full_areas[k],
                mask=mask,
                area=int(xs.size),
                bbox=(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
                centroid=(float(xs.mean()), float(ys.mean())),
                size_rank=ranks[k],
            )
        )
    return Scene(
        seed=int(seed), config=cfg, image=image, labels=labels, objects=tuple(objects), background=kind
    )


def _geom_area(g: _Geom) -> float:
    """Exact area of the unoccluded shape, in full-resolution pixels."""
    r = g.r
    if g.shape == "circle":
        return math.pi * r * r
    if g.shape == "ring":
        return math.pi * r * r * (1 - _RING_HOLE**2)
    if g.shape == "star":
        return 5 * r * r * _STAR_INNER * math.sin(math.radians(36))
    if g.shape == "cross":
        w = _CROSS_HALF_WIDTH * r
        return 2 * (2 * r) * (2 * w) - (2 * w) ** 2
    n = {"square": 4, "triangle": 3, "hexagon": 6}[g.shape]
    return 0.5 * n * r * r * math.sin(2 * math.pi / n)
