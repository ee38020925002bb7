"""The Amber Abstract study (paper Fig. 6): unsupervised SSN parts on abstract paintings.

Paintings. The authors' 128 paintings are not public; ``paint`` makes paintings in their
described style: an amber ground, overlapping translucent light-green triangles, diamonds and
hexagons with darker green outlines, and smaller solid circles, triangles and ellipses in
orange, red, blue and purple. Each is painted at 480 x 640 (h x w) and resized to 120 x 160
with PIL's box filter (the mean of each 4 x 4 block). Painting i of a set depends only on
(seed, i): a set of 64 is the first 64 of a set of 128.

Planted motifs. The three motifs of the paper's Fig. 6 caption, and one of ours, are planted at
random places (fully inside the painting, never overlapping each other) in a known subset of the
paintings: each motif independently with probability ``motif_rate`` per painting:
- ``deep_blue_block``: a small deep-blue square (about 9 x 9 px after resizing);
- ``orange_diamond_over_blue_stripe``: an orange diamond above a blue stripe (14 x 14 px);
- ``light_blue_protuberance``: a light-blue bar with a round bump on its left (14 x 11 px);
- ``shape_only_cross`` (ours, ``SHAPE_MOTIFS``): a plus-shaped cross (11 x 11 px, bars 3 px wide)
  in one of the solid shapes' colours, jittered as they are: its colour recurs in the painting, so
  only its shape sets it apart. The paper's two colour-unique motifs could be found by colour alone;
  this one tests whether the SSN finds a part by shape.
A motif's centre is the centre of its bounding box, as a pixel (row, col) of the 120 x 160
image (painting coordinate u maps to (u + 0.5) / 4 - 0.5, then rounded).

Model. The unsupervised SSN (``SelfSeparatedNetwork``, no backbone) on the normalised RGB
painting (each channel minus its mean over the training paintings, over its standard
deviation), 3 x 19 x 19 valid windows (a 102 x 142 grid), N = 9 parts, batch 4, Adam.

Found part and hit. Part i's found window in a painting is the argmax of its attention map:
the window position (r, c), covering pixel rows r..r+18 and columns c..c+18. The part *hits*
a motif when that window contains the motif's centre pixel (r <= row <= r + 18 and
c <= col <= c + 18). Per motif, over the paintings where it is planted:
- ``hit_rate_best_part``: the highest hit rate of a single part (``best_part``), i.e. how
  often the part that specialises in the motif lands on it;
- ``hit_rate_any_part``: how often at least one of the N parts lands on it;
- ``chance_single_window``: the probability that one window placed uniformly over the grid
  contains the centre (about 19 * 19 / (102 * 142) = 2.5% away from the borders), averaged
  over the occurrences;
- ``chance_any_part``: the same for at least one of N independent uniform windows (exact);
- ``chance_best_part`` and ``chance_best_part_p95``: mean and 95th percentile of the best
  single-part hit rate when every part's window is uniform (Monte Carlo, ``chance_draws``
  draws): the rate a best part reaches by luck on this many occurrences;
- ``untrained_hit_rate_best_part``: the best-part hit rate of the same SSN before training
  (does a random network already prefer some colour?);
- ``found_above_chance``: hit_rate_best_part > chance_best_part_p95.
These are computed on the training paintings (what the paper shows) and on held-out
paintings of another seed, never trained on.

metrics.json keys (stable, read by the report assembler):
- ``study``: "amber_abstract"; ``profile``; ``parameters`` (every study parameter);
  ``wall_time_s``; ``torch_threads``;
- ``paper_claim``; ``hit_definition``; ``grid_size_hw``; ``image_size_hw``;
- ``run``: the first seed's training record (``SSNRun.record``): ``seed``, ``num_parts``, ``log_n``,
  ``final_loss`` (mean of the last 5% of steps), ``first_step_below_10pct_log_n``, ``steps``,
  ``wall_time_s`` (training time); ``runs``: every seed's;
- ``motifs.<train|heldout>.<motif>``: ``occurrences``, ``best_part``, ``hit_rate_best_part``,
  ``hit_rate_any_part``, ``chance_single_window``, ``chance_any_part``, ``chance_best_part``,
  ``chance_best_part_p95``, ``untrained_hit_rate_best_part``, ``found_above_chance``
  (a motif with no occurrence has ``occurrences`` = 0 only);
- ``motifs_found_above_chance.<train|heldout>``: how many motifs are found above chance;
- ``distinct_windows_per_painting.<train|heldout>``: mean number of distinct found windows
  among the N parts of a painting, over N (1 = every part on its own window);
- ``per_painting.<train|heldout>.<motif>``: the per-painting records the claims are computed
  from (``painting_records``): ``seeds``, ``paintings``, ``hits`` and ``untrained_hits`` (per
  training seed, per painting, 0/1 per part), ``rarity_hits`` (0/1 per painting: the colour-rarity
  window), ``chance_single_window``; ``check_claims(metrics["per_painting"])`` recomputes the claims;
- ``claims``: a list of ``Claim`` records (``ssn3dlib.studies.toolkit.claims``): the paper's
  ``parts_find_motifs``, its control against the untrained SSN inside the verdict (see
  ``check_claims``), with its ``comparison`` (effect, 95% interval over seeds x held-out paintings,
  n, minimum detectable effect, verdict; the weakest motif decides); and per motif our check
  ``parts_beat_colour_rarity_<motif>``: does the trained part find it more often than a window at
  the painting's rarest colours (a motif found by colour alone is not a part)?

Seeds. Every training seed (``StudyParams.seeds``) trains its own SSN from its own initialisation
(the untrained control is that initialisation); the paintings are the same for all. The figures
and ``motifs`` show the first seed; the claims pair every seed with the same held-out paintings.

Colour rarity (``rarity_windows``): each pixel's colour, quantised to 8 levels per channel, scores
minus the log of its frequency over the training paintings; the window whose mean score is highest
is the painting's "rarest" window, found without any training.

``train_on_paintings`` trains through ``toolkit.train_ssn`` fed by ``painting_batches``; the run is an
``SSNRun`` whose ``extras`` hold the input normaliser (``mean``, ``std``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from ..attention_plots import draw_windows, overlay_map, part_colors, show_image
from ..engine.distributed import resolve_device
from ..figures import new_figure
from ..models import SelfSeparatedNetwork
from .toolkit import (
    NOT_IN_PAPER,
    WALL_TIME_KEY,
    Claim,
    SSNRun,
    WindowGrid,
    attention_maps,
    claims_to_records,
    train_ssn,
)
from .toolkit.parallel import check_workers, map_in_processes, with_threads
from .toolkit.part_scoring import distinctness
from .toolkit.ssn_training import Batch
from .toolkit.statistics import against_reference, compare, deciding, rate_against_reference, units_needed
from .toolkit.window_grid import peak_windows

PAINTING_SIZE = (480, 640)   # (h, w) painted
IMAGE_SIZE = (120, 160)      # (h, w) after resizing, what the SSN sees
SCALE = PAINTING_SIZE[0] // IMAGE_SIZE[0]
#: The paper's three motifs (Fig. 6 caption), then ours that only its shape identifies.
PAPER_MOTIFS = ("deep_blue_block", "orange_diamond_over_blue_stripe", "light_blue_protuberance")
SHAPE_MOTIFS = ("shape_only_cross",)
MOTIFS = PAPER_MOTIFS + SHAPE_MOTIFS
MOTIF_TITLES = {"deep_blue_block": "deep-blue block",
                "orange_diamond_over_blue_stripe": "orange diamond over a blue stripe",
                "light_blue_protuberance": "light-blue protuberance on the left",
                "shape_only_cross": "cross in a solid-shape colour"}
#: Source of the study's paper claim.
SOURCE = "Fig. 6"
PAPER_CLAIM = ("Our SSN model is able to spot similar parts between different paintings: type 1 "
               "captures a light blue protuberance on the left, type 2 an orange diamond above a "
               "blue stripe, type 3 a small deep blue block.")
HIT_DEFINITION = ("part i hits a motif in a painting when the 19 x 19 window at the argmax of its "
                  "attention map contains the motif's centre pixel")

AMBER = (236, 208, 150)
GREEN_FILL = (178, 222, 160)
GREEN_LINE = (70, 130, 70)
SOLID_COLOURS = {"orange": (236, 132, 40), "red": (200, 45, 45), "blue": (70, 110, 205),
                 "purple": (128, 62, 160)}
DEEP_BLUE = (18, 28, 112)
LIGHT_BLUE = (150, 205, 240)
MOTIF_ORANGE = (245, 140, 20)
STRIPE_BLUE = (40, 90, 200)


# ============================================================================ paintings

def _jitter(colour, rng: np.random.Generator, amount: int = 12):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _regular_polygon(cx, cy, radius, sides, angle, stretch=1.0):
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / sides),
             cy + stretch * radius * math.sin(angle + 2 * math.pi * k / sides)) for k in range(sides)]


def _green_polygon(draw: ImageDraw.ImageDraw, rng: np.random.Generator):
    """A translucent light-green triangle, diamond or hexagon with a darker outline."""
    h, w = PAINTING_SIZE
    kind = rng.choice(["triangle", "diamond", "hexagon"])
    cx, cy = rng.uniform(-40, w + 40), rng.uniform(-40, h + 40)
    radius = rng.uniform(50, 150)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "triangle":
        points = _regular_polygon(cx, cy, radius, 3, angle)
    elif kind == "diamond":
        points = _regular_polygon(cx, cy, radius, 4, math.pi / 2, stretch=rng.uniform(0.5, 0.9))
    else:
        points = _regular_polygon(cx, cy, radius, 6, angle)
    alpha = int(rng.integers(120, 200))
    draw.polygon(points, fill=_jitter(GREEN_FILL, rng) + (alpha,), outline=_jitter(GREEN_LINE, rng) + (255,),
                 width=int(rng.integers(3, 7)))


def _solid_shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator):
    """A smaller solid circle, triangle or ellipse in orange, red, blue or purple."""
    h, w = PAINTING_SIZE
    colour = _jitter(SOLID_COLOURS[rng.choice(list(SOLID_COLOURS))], rng, 18) + (255,)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(8, 24)
    kind = rng.choice(["circle", "triangle", "ellipse"])
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "ellipse":
        draw.ellipse([cx - 1.8 * r, cy - 0.7 * r, cx + 1.8 * r, cy + 0.7 * r], fill=colour)
    else:
        draw.polygon(_regular_polygon(cx, cy, r * 1.2, 3, rng.uniform(0, 2 * math.pi)), fill=colour)


#: Each motif's bounding box (h, w) in painting pixels; drawn by _draw_motif around a centre.
MOTIF_BOX = {"deep_blue_block": (36, 36), "orange_diamond_over_blue_stripe": (56, 56),
             "light_blue_protuberance": (56, 44), "shape_only_cross": (44, 44)}
#: The cross's bar width in painting pixels (3 pixels after resizing).
CROSS_BAR = 12


def _draw_motif(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, rng: np.random.Generator):
    h, w = MOTIF_BOX[name]
    top, left = cy - h / 2, cx - w / 2
    if name == "deep_blue_block":
        draw.rectangle([left, top, left + w, top + h], fill=DEEP_BLUE + (255,))
    elif name == "orange_diamond_over_blue_stripe":
        draw.polygon([(cx, top), (cx + 20, top + 20), (cx, top + 40), (cx - 20, top + 20)],
                     fill=MOTIF_ORANGE + (255,))
        draw.rectangle([left, top + 44, left + w, top + h], fill=STRIPE_BLUE + (255,))
    elif name == "light_blue_protuberance":
        bar_left = left + 16
        draw.rectangle([bar_left, top, left + w, top + h], fill=LIGHT_BLUE + (255,))
        draw.ellipse([left, cy - 14, bar_left + 14, cy + 14], fill=LIGHT_BLUE + (255,))
    elif name == "shape_only_cross":
        # a colour the painting's solid shapes are drawn in (jittered alike): only the shape tells it apart
        colour = _jitter(SOLID_COLOURS[rng.choice(list(SOLID_COLOURS))], rng, 18) + (255,)
        half = CROSS_BAR / 2
        draw.rectangle([left, cy - half, left + w, cy + half], fill=colour)
        draw.rectangle([cx - half, top, cx + half, top + h], fill=colour)
    else:
        raise ValueError(f"unknown motif {name!r}; choose from {MOTIFS}")


def _place_motifs(names: Sequence[str], rng: np.random.Generator, margin: int = 8,
                  tries: int = 200) -> Dict[str, Tuple[float, float]]:
    """Random (cx, cy) painting centres, every box inside the painting, no two boxes overlapping."""
    h, w = PAINTING_SIZE
    placed: Dict[str, Tuple[float, float]] = {}
    for name in names:
        bh, bw = MOTIF_BOX[name]
        for _ in range(tries):
            cx = rng.uniform(bw / 2 + margin, w - bw / 2 - margin)
            cy = rng.uniform(bh / 2 + margin, h - bh / 2 - margin)
            if all(abs(cx - ox) > (bw + MOTIF_BOX[o][1]) / 2 + margin
                   or abs(cy - oy) > (bh + MOTIF_BOX[o][0]) / 2 + margin
                   for o, (ox, oy) in placed.items()):
                placed[name] = (cx, cy)
                break
        else:
            raise RuntimeError(f"could not place motif {name} without overlap in {tries} tries")
    return placed


def paint(rng: np.random.Generator, motifs: Sequence[str] = ()) -> Tuple[Image.Image, Dict[str, Tuple[float, float]]]:
    """One 480 x 640 painting with the given motifs planted; returns (RGB image, motif -> (cx, cy))."""
    unknown = [m for m in motifs if m not in MOTIFS]
    if unknown:
        raise ValueError(f"unknown motifs {unknown}; choose from {MOTIFS}")
    h, w = PAINTING_SIZE
    canvas = Image.new("RGBA", (w, h), _jitter(AMBER, rng, 14) + (255,))
    # Translucent layers are composited one at a time so overlaps mix colours.
    for _ in range(int(rng.integers(7, 13))):
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        _green_polygon(ImageDraw.Draw(layer), rng)
        canvas = Image.alpha_composite(canvas, layer)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(10, 22))):
        _solid_shape(draw, rng)
    centres = _place_motifs(motifs, rng)
    for name, (cx, cy) in centres.items():
        _draw_motif(draw, name, cx, cy, rng)
    return canvas.convert("RGB"), centres


def to_image_pixel(cx: float, cy: float) -> Tuple[int, int]:
    """Painting point (x, y) -> the (row, col) pixel of the resized image that contains it."""
    return (int(round((cy + 0.5) / SCALE - 0.5)), int(round((cx + 0.5) / SCALE - 0.5)))


@dataclass
class Paintings:
    """A set of resized paintings and where their motifs are.

    images: (M, 3, 120, 160) float RGB in 0..1.
    centres: (M, len(MOTIFS), 2) int (row, col) of each motif's centre pixel; -1 where absent.
    """
    images: torch.Tensor
    centres: np.ndarray
    seed: int

    @property
    def present(self) -> np.ndarray:
        """(M, len(MOTIFS)) bool: which paintings carry which motif."""
        return self.centres[..., 0] >= 0

    def __len__(self) -> int:
        return len(self.images)


def generate_paintings(count: int, seed: int = 0, motif_rate: float = 0.5,
                       progress: bool = True) -> Paintings:
    """`count` paintings, painting i drawn from the generator seeded by (seed, i)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not 0 <= motif_rate <= 1:
        raise ValueError(f"motif_rate is a probability, got {motif_rate}")
    images = np.zeros((count, IMAGE_SIZE[0], IMAGE_SIZE[1], 3), dtype=np.uint8)
    centres = np.full((count, len(MOTIFS), 2), -1, dtype=np.int64)
    for i in tqdm(range(count), desc="painting", disable=not progress, leave=False):
        rng = np.random.default_rng([seed, i])
        planted = [m for m in MOTIFS if rng.random() < motif_rate]
        painting, placed = paint(rng, planted)
        images[i] = np.asarray(painting.resize(IMAGE_SIZE[::-1], Image.Resampling.BOX))
        for name, (cx, cy) in placed.items():
            centres[i, MOTIFS.index(name)] = to_image_pixel(cx, cy)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return Paintings(tensor, centres, seed)


#: Colours of the dashed boxes that mark planted motifs on the sheet.
MOTIF_BOX_COLOURS = ("black", "magenta", "cyan", "dimgray")


def sheet_figure(paintings: Paintings, count: int = 24, columns: int = 6, mark_motifs: bool = True,
                 window: int = 19):
    """A sheet of the first `count` paintings; with mark_motifs, a dashed window-sized box
    around each planted motif (one colour per motif)."""
    count = min(count, len(paintings))
    rows = math.ceil(count / columns)
    fig, axes = new_figure(1.6 * columns, 1.25 * rows + 0.4, nrows=rows, ncols=columns, squeeze=False)
    colours = MOTIF_BOX_COLOURS
    for k, ax in enumerate(axes.flat):
        if k >= count:
            ax.axis("off")
            continue
        show_image(ax, paintings.images[k])
        ax.set_title(f"#{k}", fontsize=6, pad=2)
        if mark_motifs:
            for m, (row, col) in enumerate(paintings.centres[k]):
                if row >= 0:
                    draw_windows(ax, [(col, row)], window, [colours[m]], linewidth=0.8)
                    ax.patches[-1].set_linestyle("--")
    if mark_motifs:
        handles = [_legend_line(colours[m], MOTIF_TITLES[name]) for m, name in enumerate(MOTIFS)]
        fig.legend(handles=handles, loc="lower center", ncol=len(MOTIFS), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.96, bottom=0.3 / (1.25 * rows + 0.4) + 0.02,
                        wspace=0.05, hspace=0.2)
    return fig


def _legend_line(colour, label):
    """A legend handle: a dashed line in `colour`."""
    from matplotlib.lines import Line2D
    return Line2D([], [], color=colour, ls="--", label=label)


# ============================================================================ training

def normaliser(images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of a set of 0..1 images, shaped (1, 3, 1, 1)."""
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return mean, std


def build_ssn(num_parts: int = 9, window: int = 19, hidden: int = 512, seed: int = 0) -> SelfSeparatedNetwork:
    """The unsupervised SSN on raw RGB paintings (no backbone), initialised from `seed`."""
    torch.manual_seed(seed)
    return SelfSeparatedNetwork(3, num_parts, window=window, hidden=hidden, strategy="unsupervised")


def painting_batches(inputs: torch.Tensor, batch: int, generator: torch.Generator) -> Callable[[], Batch]:
    """Each step's batch of `inputs`, drawn by epochs of a seeded shuffle (the remainder of one
    epoch's order is used before the next shuffle is appended)."""
    order = torch.empty(0, dtype=torch.long)

    def next_batch() -> Batch:
        nonlocal order
        if len(order) < batch:
            order = torch.cat([order, torch.randperm(len(inputs), generator=generator)])
        idx, order = order[:batch], order[batch:]
        return {"x": inputs[idx.to(inputs.device)]}

    return next_batch


def train_on_paintings(paintings: Paintings, num_parts: int = 9, window: int = 19, hidden: int = 512,
              steps: int = 1000, batch: int = 4, lr: float = 1e-3, weight_decay: float = 5e-4,
              seed: int = 0, device: str = "cpu", progress: bool = True) -> SSNRun:
    """Unsupervised SSN training on the normalised paintings; the run's extras hold the
    normaliser (``mean``, ``std``), the model comes back on the CPU."""
    if steps < 1 or not 1 <= batch <= len(paintings):
        raise ValueError(f"need steps >= 1 and 1 <= batch <= {len(paintings)} paintings, got "
                         f"steps={steps}, batch={batch}")
    dev = resolve_device(device)
    mean, std = normaliser(paintings.images)
    inputs = ((paintings.images - mean) / std).to(dev)
    model = build_ssn(num_parts, window, hidden, seed).to(dev)
    generator = torch.Generator().manual_seed(seed)
    run = train_ssn(model, painting_batches(inputs, batch, generator), steps, seed, lr=lr,
                    weight_decay=weight_decay, device=dev, desc="SSN on paintings", progress=progress)
    run.ssn.cpu()
    run.extras.update(mean=mean, std=std)
    return run


def painting_maps(ssn: SelfSeparatedNetwork, images: torch.Tensor, run: SSNRun) -> torch.Tensor:
    """(M, N, H', W') attention maps of 0..1 images, normalised by `run`'s training mean/std."""
    mean, std = run.extras["mean"], run.extras["std"]
    return attention_maps(ssn, images, chunk=16, features=lambda x: (x - mean) / std)


# ============================================================================ hits

def motif_hits(windows: np.ndarray, centres: np.ndarray, window: int) -> np.ndarray:
    """(M, N, len(MOTIFS)) bool: part i's window (M, N, 2) contains motif m's centre (M, K, 2).

    Window (r, c) covers pixel rows r..r+window-1 and columns c..c+window-1; absent motifs
    (centre -1) are never hit.
    """
    r = windows[:, :, None, 0]
    c = windows[:, :, None, 1]
    row = centres[:, None, :, 0]
    col = centres[:, None, :, 1]
    present = centres[:, None, :, 0] >= 0
    return present & (r <= row) & (row < r + window) & (c <= col) & (col < c + window)


def single_window_chance(centres: np.ndarray, grid_size: Sequence[int], window: int) -> np.ndarray:
    """Probability that one window drawn uniformly over the grid contains each centre
    ((..., 2) (row, col) -> (...)); 0 for absent motifs."""
    gh, gw = grid_size
    row, col = centres[..., 0], centres[..., 1]
    rows = np.clip(np.minimum(row, gh - 1) - np.maximum(row - window + 1, 0) + 1, 0, None)
    cols = np.clip(np.minimum(col, gw - 1) - np.maximum(col - window + 1, 0) + 1, 0, None)
    return np.where(row >= 0, rows * cols / (gh * gw), 0.0)


#: Levels per RGB channel of the colour-rarity baseline (8 x 8 x 8 colour cells).
RARITY_LEVELS = 8


def colour_cells(images: torch.Tensor, levels: int = RARITY_LEVELS) -> torch.Tensor:
    """(M, H, W) colour cell of each pixel of (M, 3, H, W) images in [0, 1]: each channel
    quantised to `levels` steps."""
    q = (images.clamp(0, 1) * levels).long().clamp(max=levels - 1)
    return (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]


def rarity_windows(images: torch.Tensor, reference: torch.Tensor, window: int,
                   levels: int = RARITY_LEVELS) -> np.ndarray:
    """(M, 2) window (row, col) of each painting whose pixels' colours are rarest in the
    `reference` paintings: per pixel -log of its colour cell's frequency there (add-one smoothed),
    averaged over each window; the highest mean (the first on ties). No training, no parts:
    what a map that only knows colour statistics would find."""
    cells = levels ** 3
    counts = torch.bincount(colour_cells(reference, levels).flatten(), minlength=cells).double()
    surprise = -torch.log((counts + 1) / (counts.sum() + cells))
    scores = surprise[colour_cells(images, levels)].unsqueeze(1)          # (M, 1, H, W)
    means = torch.nn.functional.avg_pool2d(scores, window, stride=1)[:, 0]  # (M, H', W')
    return peak_windows(means)


def motif_report(windows: np.ndarray, paintings: Paintings, grid_size: Sequence[int], window: int,
                 untrained_windows: Optional[np.ndarray] = None, chance_draws: int = 2000,
                 seed: int = 0) -> Dict[str, Dict]:
    """Per motif: hit rates of the found windows against chance (see the module docstring)."""
    num_parts = windows.shape[1]
    hits = motif_hits(windows, paintings.centres, window)
    untrained = None if untrained_windows is None else motif_hits(untrained_windows, paintings.centres, window)
    rng = np.random.default_rng(seed)
    report = {}
    for m, name in enumerate(MOTIFS):
        where = paintings.present[:, m]
        occurrences = int(where.sum())
        if occurrences == 0:
            report[name] = {"occurrences": 0}
            continue
        per_part = hits[where, :, m].mean(axis=0)
        p = single_window_chance(paintings.centres[where, m], grid_size, window)
        # Monte Carlo: every part of every painting hits independently with probability p.
        draws = rng.random((chance_draws, occurrences, num_parts)) < p[None, :, None]
        best_by_luck = draws.mean(axis=1).max(axis=1)
        entry = {"occurrences": occurrences,
                 "best_part": int(per_part.argmax()),
                 "hit_rate_best_part": round(float(per_part.max()), 4),
                 "hit_rate_any_part": round(float(hits[where, :, m].any(axis=1).mean()), 4),
                 "chance_single_window": round(float(p.mean()), 4),
                 "chance_any_part": round(float(np.mean(1 - (1 - p) ** num_parts)), 4),
                 "chance_best_part": round(float(best_by_luck.mean()), 4),
                 "chance_best_part_p95": round(float(np.quantile(best_by_luck, 0.95)), 4)}
        entry["found_above_chance"] = entry["hit_rate_best_part"] > entry["chance_best_part_p95"]
        if untrained is not None:
            entry["untrained_hit_rate_best_part"] = round(float(untrained[where, :, m].mean(axis=0).max()), 4)
        report[name] = entry
    return report


# ============================================================================ the study

@dataclass(frozen=True)
class StudyParams:
    """The study's parameters (a notebook's parameters cell maps onto these).

    paintings: training paintings (seed `painting_seed`); heldout: paintings of seed
    `painting_seed + 1`, never trained on (0: none).
    """
    paintings: int = 128
    heldout: int = 64
    painting_seed: int = 0
    motif_rate: float = 0.5
    num_parts: int = 9
    window: int = 19
    hidden: int = 512
    steps: int = 1000
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seeds: Tuple[int, ...] = (0,)
    device: str = "cpu"
    chance_draws: int = 2000

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be one or more distinct training seeds, got {list(self.seeds)}")
        if self.paintings < self.batch or self.heldout < 0:
            raise ValueError(f"need at least batch={self.batch} training paintings and heldout >= 0, got "
                             f"paintings={self.paintings}, heldout={self.heldout}")
        if not 1 <= self.window <= min(IMAGE_SIZE):
            raise ValueError(f"window {self.window} does not fit a {IMAGE_SIZE[0]} x {IMAGE_SIZE[1]} painting")
        if self.num_parts < 2:
            raise ValueError(f"num_parts must be at least 2, got {self.num_parts}")

    @property
    def seed(self) -> int:
        """The first training seed: the run the figures show."""
        return self.seeds[0]

    @property
    def grid_size(self) -> Tuple[int, int]:
        """(rows, columns) of window positions: the SSN sees the painting itself."""
        return WindowGrid(IMAGE_SIZE, IMAGE_SIZE, self.window).size

    def as_dict(self) -> Dict:
        return {**asdict(self), "seeds": list(self.seeds)}


@dataclass
class SeedResult:
    """One training seed's SSN, before (its initialisation) and after training."""

    seed: int
    run: SSNRun                             # extras: the normaliser (mean, std)
    untrained: SelfSeparatedNetwork
    windows: Dict[str, np.ndarray]          # set -> (M, N, 2) found windows of the trained SSN
    untrained_windows: Dict[str, np.ndarray]


@dataclass
class StudyResult:
    params: StudyParams
    sets: Dict[str, Paintings]              # "train" and, when asked for, "heldout"
    seeds: List[SeedResult]                 # one per training seed, in params.seeds order
    rarity_windows: Dict[str, np.ndarray]   # set -> (M, 2) colour-rarity window per painting
    reports: Dict[str, Dict[str, Dict]]     # set -> motif -> motif_report entry (first seed)

    # The first seed's run: what the figures and the motif reports show.
    @property
    def run(self) -> SSNRun:
        return self.seeds[0].run

    @property
    def untrained(self) -> SelfSeparatedNetwork:
        return self.seeds[0].untrained

    @property
    def windows(self) -> Dict[str, np.ndarray]:
        return self.seeds[0].windows

    @property
    def untrained_windows(self) -> Dict[str, np.ndarray]:
        return self.seeds[0].untrained_windows

    def maps(self, set_name: str, indices: Sequence[int]) -> torch.Tensor:
        """Attention maps of the trained SSN on some paintings of a set."""
        images = self.sets[set_name].images[list(indices)]
        return painting_maps(self.run.ssn, images, self.run)


def train_seed(params: StudyParams, sets: Dict[str, Paintings], seed: int, progress: bool = True) -> SeedResult:
    """One seed: its initialisation (the untrained control), then the trained SSN, and both SSNs'
    found windows on every set."""
    untrained = build_ssn(params.num_parts, params.window, params.hidden, seed).eval()
    run = train_on_paintings(sets["train"], params.num_parts, params.window, params.hidden, params.steps,
                             params.batch, params.lr, params.weight_decay, seed, params.device, progress)
    windows = {name: peak_windows(painting_maps(run.ssn, p.images, run)) for name, p in sets.items()}
    untrained_windows = {name: peak_windows(painting_maps(untrained, p.images, run)) for name, p in sets.items()}
    return SeedResult(seed, run, untrained, windows, untrained_windows)


def run_study(params: StudyParams, progress: bool = True, workers: int = 1, threads: int = 0) -> StudyResult:
    """Paint, train the unsupervised SSN once per seed (`workers` seeds at once, each on `threads`
    torch threads; a seed's SSN depends on the seed only), find the parts and score them on the
    planted motifs, beside the colour-rarity windows."""
    sets = {"train": generate_paintings(params.paintings, params.painting_seed, params.motif_rate, progress)}
    if params.heldout:
        sets["heldout"] = generate_paintings(params.heldout, params.painting_seed + 1, params.motif_rate,
                                             progress)
    per_seed_bars = progress and check_workers(workers) == 1
    calls = [(threads, train_seed, (params, sets, seed, per_seed_bars)) for seed in params.seeds]
    seeds: List[Optional[SeedResult]] = [None] * len(calls)
    for i, result in map_in_processes(with_threads, calls, workers):
        seeds[i] = result
    rarity = {name: rarity_windows(p.images, sets["train"].images, params.window) for name, p in sets.items()}
    first = seeds[0]
    reports = {name: motif_report(first.windows[name], paintings, params.grid_size, params.window,
                                  first.untrained_windows[name], params.chance_draws, params.seed)
               for name, paintings in sets.items()}
    return StudyResult(params, sets, seeds, rarity, reports)


def painting_records(result: StudyResult) -> Dict[str, Dict[str, Dict]]:
    """Per set and motif, the per-painting records every claim is computed from (metrics.json
    ``per_painting``): ``seeds``, ``paintings`` (indices in the set where the motif is planted),
    ``hits`` and ``untrained_hits`` (per seed, per painting, one 0/1 per part: does the part's
    found window contain the motif's centre), ``rarity_hits`` (per painting: does the
    colour-rarity window contain it) and ``chance_single_window`` (per painting, the probability
    that one uniformly placed window contains it, exact)."""
    window, grid = result.params.window, result.params.grid_size
    out: Dict[str, Dict[str, Dict]] = {}
    for set_name, paintings in result.sets.items():
        hits = np.stack([motif_hits(s.windows[set_name], paintings.centres, window) for s in result.seeds])
        untrained = np.stack([motif_hits(s.untrained_windows[set_name], paintings.centres, window)
                              for s in result.seeds])
        rarity = motif_hits(result.rarity_windows[set_name][:, None], paintings.centres, window)[:, 0]
        out[set_name] = {}
        for m, name in enumerate(MOTIFS):
            where = np.flatnonzero(paintings.present[:, m])
            chance = single_window_chance(paintings.centres[where, m], grid, window)
            out[set_name][name] = {"seeds": [s.seed for s in result.seeds], "paintings": where.tolist(),
                                   "hits": hits[..., m][:, where].astype(int).tolist(),
                                   "untrained_hits": untrained[..., m][:, where].astype(int).tolist(),
                                   "rarity_hits": rarity[where, m].astype(int).tolist(),
                                   "chance_single_window": [round(float(v), 6) for v in chance]}
    return out


#: What the claims' intervals leave out when one seed trained, in every detail.
ONE_SEED = ("One training seed: the intervals cover which held-out paintings were drawn, not seed-to-seed "
            "variation (another seed can put a motif's part elsewhere or on no motif).")


def _chosen_parts(record: Dict, key: str = "hits") -> np.ndarray:
    """Per seed, the part with the highest hit rate on a motif in one set (the first on ties)."""
    return np.asarray(record[key], dtype=float).mean(axis=1).argmax(axis=1)


def _chosen_hits(train: Dict, held: Dict, key: str = "hits") -> Tuple[np.ndarray, np.ndarray]:
    """(parts (S,), hits (S, P)): each seed's part chosen on the training paintings, and its 0/1
    hits on the held-out ones."""
    parts = _chosen_parts(train, key)
    held_hits = np.asarray(held[key], dtype=float)                  # (S, P, N)
    return parts, np.take_along_axis(held_hits, parts[:, None, None], axis=2)[..., 0]


def check_claims(per_painting: Dict[str, Dict[str, Dict]], profile: str = "?") -> List[Claim]:
    """The paper's Fig. 6 claim in numbers, from the per-painting records (``painting_records``,
    metrics.json ``per_painting``). For each motif and training seed the part is chosen on the
    training paintings (its highest hit rate there) and scored on the held-out paintings, which
    were never trained on nor used for the choice; the units are those held-out paintings, paired
    across seeds (with one seed, ``min_seeds=1``: seed-to-seed variation is not covered, see ONE_SEED).

    - parts_find_motifs (the paper's): per motif, the chosen part's hit minus the chance that a
      uniformly placed window contains the motif's centre (exact, per painting; one seed: the rate's
      Wilson interval, ``rate_against_reference``, which keeps its width at 0 hits; several: the
      two-way seeds x paintings t interval), and the control inside the verdict: the trained part's
      hit minus the untrained SSN's (the seed's initialisation; its part also chosen on the training
      paintings). Each of the paper's three motifs (``PAPER_MOTIFS``) must beat both (``deciding``:
      the weakest of the 2 x 3 comparisons decides). Choosing the part on other paintings keeps the
      chance level a single window's: no best-of-N Monte Carlo reference is needed.
    - parts_find_shape_only_motif (our check): the same test for our motif that only its shape sets
      apart (``SHAPE_MOTIFS``), which colour cannot find.
    - parts_beat_colour_rarity_<motif> (our check, one per motif): the chosen part's hit minus the
      colour-rarity window's (``rarity_windows``): is the motif found as a part, or would knowing
      which colours are rare find it as well?
    Without held-out paintings, or when a motif is planted in none of the training or
    held-out paintings, nothing is testable (holds None, reason says why).
    """
    data = f"generated abstract paintings (held-out set, parts chosen on the training set); profile {profile}"
    missing = ("no held-out paintings (heldout = 0): the part must be chosen on other paintings than it is "
               "scored on" if "heldout" not in per_painting or "train" not in per_painting else
               ", ".join(f"the {MOTIF_TITLES[m]} is planted in no {label} painting"
                         for label, key in (("training", "train"), ("held-out", "heldout"))
                         for m in MOTIFS if not per_painting[key][m]["paintings"]))
    statements = (("parts_find_motifs", PAPER_CLAIM, True, PAPER_MOTIFS),
                  ("parts_find_shape_only_motif", NOT_IN_PAPER, False, SHAPE_MOTIFS),
                  *((f"parts_beat_colour_rarity_{m}", NOT_IN_PAPER, False, (m,)) for m in MOTIFS))
    if missing:
        return [Claim(name, SOURCE, statement, None, "", data, paper_claim=paper, reason=f"not testable: {missing}")
                for name, statement, paper, _ in statements]
    found, control, words_found, words_control, rarity_claims = {}, {}, {}, {}, []
    for m in MOTIFS:
        train, held = per_painting["train"][m], per_painting["heldout"][m]
        parts, hits = _chosen_hits(train, held)
        untrained_parts, untrained = _chosen_hits(train, held, "untrained_hits")
        chance = np.asarray(held["chance_single_window"], dtype=float)
        rarity = np.broadcast_to(np.asarray(held["rarity_hits"], dtype=float), hits.shape)
        seeds, paintings = hits.shape
        one = seeds == 1
        min_seeds = 1 if one else 2
        found[m] = (rate_against_reference(hits, float(chance.mean()), unit="paintings") if one else
                    against_reference(hits - chance[None], 0.0, unit="paintings"))
        control[m] = compare(hits, untrained, unit="paintings", min_seeds=min_seeds)
        title = MOTIF_TITLES[m]
        chosen = f"part {parts[0]}" if one else f"parts {', '.join(map(str, parts))} (one per seed)"
        hit_text = (f"hits it in {int(hits.sum())} of its {paintings} held-out paintings ({100 * hits.mean():.0f}%)"
                    if one else f"hit it in {100 * hits.mean():.0f}% of its {paintings} held-out paintings (per "
                    f"seed {', '.join(f'{100 * h:.0f}%' for h in hits.mean(axis=1))})")
        words_found[m] = (f"the {title}: {chosen} {hit_text} against {100 * chance.mean():.1f}% for a uniformly "
                          f"placed window (exact, mean over those paintings): {found[m].effect:+.1f} points "
                          f"({found[m].low:+.1f} to {found[m].high:+.1f}), {found[m].verdict}")
        untrained_chosen = (f"part {untrained_parts[0]}" if one else
                            f"parts {', '.join(map(str, untrained_parts))}")
        words_control[m] = (f"the {title}: trained {chosen} {100 * hits.mean():.0f}%, untrained "
                            f"{untrained_chosen} {100 * untrained.mean():.0f}%: {control[m].effect:+.1f} points "
                            f"({control[m].low:+.1f} to {control[m].high:+.1f}), {control[m].verdict}")
        vs = compare(hits, rarity, unit="paintings", min_seeds=min_seeds)
        reason = "" if vs.verdict != "inconclusive" else (
            f"{vs.reason}; the MDE is {vs.mde:.1f} points with {paintings} held-out paintings carrying it"
            + (" and one training seed" if one else ""))
        rarity_claims.append(Claim(
            f"parts_beat_colour_rarity_{m}", SOURCE, NOT_IN_PAPER, None,
            f"Colour alone: a window at each held-out painting's rarest colours ({RARITY_LEVELS} levels per "
            f"channel, frequencies from the training paintings; no training) contains the {title} in "
            f"{100 * rarity[0].mean():.0f}% of its {paintings} paintings, the trained SSN's {chosen} in "
            f"{100 * hits.mean():.0f}%: {vs.describe()}. A motif the rarity window finds as often is found "
            f"by its colour, which is no evidence of a part." + (f" {ONE_SEED}" if one else ""),
            data, paper_claim=False, reason=reason, comparison=vs.to_dict()))

    def found_claim(name: str, statement: str, paper: bool, motifs: Sequence[str]) -> Claim:
        # The control sits inside the verdict: a motif is found only if its part beats chance and
        # beats the untrained SSN's part (a random network already prefers high-contrast spots).
        both = {**{("chance", m): found[m] for m in motifs}, **{("untrained SSN", m): control[m] for m in motifs}}
        (against, key), decisive = deciding(both)
        # against a reference n has "seeds"; two settings (the control) "seeds_a" and "seeds_b"
        paintings, seeds = decisive.n["paintings"], decisive.n.get("seeds", decisive.n.get("seeds_a", 1))
        reason = "" if decisive.verdict != "inconclusive" else (
            f"{decisive.reason}; with {paintings} held-out paintings carrying the {MOTIF_TITLES[key]} "
            f"the MDE is {decisive.mde:.1f} points: about {units_needed(paintings, decisive.mde, 10.0)} such "
            f"paintings would detect 10 points (MDE ~ 1/sqrt(n))"
            + (", and more training seeds would cover seed-to-seed variation" if seeds == 1 else ""))
        coverage = (ONE_SEED if seeds == 1 else
                    f"{seeds} training seeds, each from its own initialisation (its untrained control), on the "
                    f"same held-out paintings: the intervals cover both.")
        scope = ("Every motif must beat both; the " if len(motifs) > 1 else
                 "Our motif, found by its shape alone (its colour recurs in the painting's solid shapes); "
                 "it must beat both; the ")
        return Claim(name, SOURCE, statement, None,
                     "Per motif, the part chosen on the training paintings, scored on the held-out ones against "
                     "chance: " + "; ".join(words_found[m] for m in motifs) + ". Control inside the verdict, "
                     "against the untrained SSN (same initialisation, its part chosen the same way; a random "
                     "network already prefers high-contrast spots): " + "; ".join(words_control[m] for m in motifs)
                     + f". {scope}{MOTIF_TITLES[key]} against {against} decides: {decisive.describe()}. {coverage}",
                     data, paper_claim=paper, reason=reason, comparison=decisive.to_dict())

    return [found_claim(*statement) for statement in statements[:2]] + rarity_claims


def study_metrics(result: StudyResult, profile: str, wall_time_s: float) -> Dict:
    """What the notebook writes to metrics.json (keys documented in the module docstring)."""
    records = painting_records(result)
    return {"study": "amber_abstract", "profile": profile, "parameters": result.params.as_dict(),
            "paper_claim": PAPER_CLAIM, "hit_definition": HIT_DEFINITION,
            "image_size_hw": list(IMAGE_SIZE), "grid_size_hw": list(result.params.grid_size),
            "run": result.run.record(), "runs": [s.run.record() for s in result.seeds],
            "distinct_windows_per_painting": {k: round(distinctness(w), 4) for k, w in result.windows.items()},
            "motifs": result.reports,
            "motifs_found_above_chance": {k: sum(bool(e.get("found_above_chance")) for e in rep.values())
                                          for k, rep in result.reports.items()},
            "per_painting": records,
            "claims": claims_to_records(check_claims(records, profile)),
            WALL_TIME_KEY: round(wall_time_s, 1), "torch_threads": torch.get_num_threads()}


# ============================================================================ figures

def _draw_parts(ax, image, windows: np.ndarray, window: int, linewidth: float = 1.2):
    """A painting with each part's found window as a box in the part's colour."""
    show_image(ax, image)
    centres = [(c + (window - 1) / 2, r + (window - 1) / 2) for r, c in windows]
    draw_windows(ax, centres, window, part_colors(len(windows)), linewidth=linewidth)


def parts_figure(result: StudyResult, set_name: str = "heldout", indices: Optional[Sequence[int]] = None,
                 columns: int = 4):
    """Like Fig. 6: paintings with the found window of every part drawn as a box, one colour
    per part, the same part in the same colour in every painting. By default the first
    paintings that carry every motif (then any others)."""
    paintings = result.sets[set_name]
    if indices is None:
        full = [i for i in range(len(paintings)) if paintings.present[i].all()]
        rest = [i for i in range(len(paintings)) if i not in full]
        indices = (full + rest)[:2 * columns]
    rows = math.ceil(len(indices) / columns)
    fig, axes = new_figure(2.4 * columns, 1.9 * rows + 0.35, nrows=rows, ncols=columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(indices):
            ax.axis("off")
            continue
        i = indices[k]
        _draw_parts(ax, paintings.images[i], result.windows[set_name][i], result.params.window)
        ax.set_title(f"{set_name} #{i}", fontsize=7, pad=2)
    from matplotlib.patches import Patch
    n = result.params.num_parts
    fig.legend(handles=[Patch(edgecolor=c, facecolor="none", label=f"part {i}")
                        for i, c in enumerate(part_colors(n))],
               loc="lower center", ncol=n, fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.35 / (1.9 * rows + 0.35) + 0.03,
                        wspace=0.04, hspace=0.15)
    return fig


def hit_rates_figure(result: StudyResult):
    """Per motif and set: best-part and any-part hit rates against chance and the untrained SSN."""
    sets = list(result.reports)
    fig, axes = new_figure(4.2 * len(sets), 3.5, ncols=len(sets), squeeze=False, sharey=True)
    bars = [("hit_rate_best_part", "best part", "C0"), ("untrained_hit_rate_best_part", "untrained best part", "C7"),
            ("chance_best_part_p95", "chance best part (95th pct.)", "C1"),
            ("hit_rate_any_part", "any part", "C2"), ("chance_any_part", "chance any part", "C3")]
    width = 0.16
    for ax, set_name in zip(axes[0], sets):
        report = result.reports[set_name]
        for b, (key, label, colour) in enumerate(bars):
            values = [report[m].get(key, 0.0) if report[m]["occurrences"] else 0.0 for m in MOTIFS]
            ax.bar(np.arange(len(MOTIFS)) + (b - 2) * width, values, width, label=label, color=colour)
        ax.set_xticks(np.arange(len(MOTIFS)), [MOTIF_TITLES[m].replace(" over", "\nover").replace(" on", "\non")
                                               for m in MOTIFS], fontsize=7)
        ax.set_title(f"{set_name} paintings", fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0, 0].set_ylabel("hit rate")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(bars), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def loss_figure(run: SSNRun):
    """The SSN loss over training steps, log N dashed."""
    fig, ax = new_figure(4.5, 2.6)
    ax.plot(run.losses, lw=0.9)
    ax.axhline(run.log_n, color="grey", ls="--", lw=1, label="log N")
    ax.set(xlabel="iteration", ylabel="SSN loss", ylim=(0, 1.15 * max(max(run.losses), run.log_n)))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def part_view(result: StudyResult, set_name: str, index: int, part: int):
    """One painting with one part's attention map overlaid and its found window boxed
    (what the notebook's picker shows)."""
    paintings = result.sets[set_name]
    if not 0 <= index < len(paintings):
        raise ValueError(f"painting index {index} out of range 0..{len(paintings) - 1} for the {set_name} set")
    if not 0 <= part < result.params.num_parts:
        raise ValueError(f"part {part} out of range 0..{result.params.num_parts - 1}")
    window = result.params.window
    attention = result.maps(set_name, [index])[0, part].numpy()
    grid = WindowGrid.of(result.run.ssn, None, IMAGE_SIZE)
    fig, axes = new_figure(7.2, 2.9, ncols=2)
    overlay_map(axes[0], paintings.images[index], attention, grid.extent)
    r, c = result.windows[set_name][index, part]
    colour = part_colors(result.params.num_parts)[part]
    draw_windows(axes[0], [(c + (window - 1) / 2, r + (window - 1) / 2)], window, [colour], linewidth=1.5)
    axes[0].set_title(f"{set_name} #{index}, part {part}: attention (max {attention.max():.2f})", fontsize=8)
    _draw_parts(axes[1], paintings.images[index], result.windows[set_name][index], window)
    hit = [MOTIF_TITLES[m] for k, m in enumerate(MOTIFS)
           if motif_hits(result.windows[set_name][index:index + 1, part:part + 1],
                         paintings.centres[index:index + 1], window)[0, 0, k]]
    axes[1].set_title("all parts; part hits: " + (", ".join(hit) or "no motif"), fontsize=8)
    fig.tight_layout()
    return fig
