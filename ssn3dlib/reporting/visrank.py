"""Ranked lists: a query tracklet and its top-k gallery tracklets, the picture re-ID users open
first to see why a model fails (torchreid's `visrank`).

The ranking is the evaluation's own: the checkpoint's model (`engine.evaluator.load_trained`),
the query x gallery distances the evaluation computes (`query_gallery_distances`), and each
query's gallery order and junk rule as the metrics define them (`metrics.rank.ranked_gallery`:
stable order, same identity on the same camera and junk identities are junk). True matches are
framed green, false ones red, junk grey; each gallery cell carries its rank among the valid
items (the rank the CMC counts; junk has none) and its distance.

    from ssn3dlib.reporting.visrank import visrank
    fig, lists = visrank("reports/runs/.../checkpoints/best.pt", queries="worst", topk=10)
    fig                                        # inline in a notebook; save_figure(fig, "ranks.png")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError

#: Frame colour of each verdict.
VERDICT_COLORS = {"match": "#1a9850", "false": "#d73027", "junk": "#969696"}


@dataclass(frozen=True)
class RankedList:
    """One query's top of the gallery, in ranking order (junk included, as shown)."""

    query: int                  # query index
    first_match_rank: int       # the evaluation's rank of its first true match (0: none)
    gallery: np.ndarray         # gallery indices, best first
    distance: np.ndarray        # their distances
    verdict: Tuple[str, ...]    # "match", "false" or "junk" per item
    rank: np.ndarray            # 1-based rank among the valid items; 0 for junk


def choose_queries(first_match_rank: np.ndarray, average_precision: np.ndarray, how: Union[str, Sequence],
                   count: int = 4, names: Optional[Sequence[str]] = None, seed: int = 0) -> List[int]:
    """Query indices to draw. how: "worst" (latest first true match, then lowest AP; queries
    without a true match are left out, as the evaluation leaves them out), "random" (seeded,
    among all queries), or a sequence of query tracklet names or indices."""
    num_q = len(first_match_rank)
    if isinstance(how, str) and how == "worst":
        matched = np.flatnonzero(first_match_rank > 0)
        ap = np.full(num_q, np.nan)
        ap[matched] = average_precision
        order = sorted(matched, key=lambda q: (-first_match_rank[q], ap[q], q))
        return [int(q) for q in order[:count]]
    if isinstance(how, str) and how == "random":
        rng = np.random.default_rng(seed)
        return sorted(int(q) for q in rng.choice(num_q, size=min(count, num_q), replace=False))
    if isinstance(how, str):
        how = [h for h in how.split(",") if h]
    row = {n: i for i, n in enumerate(names or ())}
    chosen = []
    for key in how:
        if str(key) in row:
            chosen.append(row[str(key)])
        elif str(key).lstrip("-").isdigit() and 0 <= int(key) < num_q:
            chosen.append(int(key))
        else:
            known = ", ".join(list(row)[:5]) + (", ..." if len(row) > 5 else "")
            raise InputError(f"no query {key!r}: give worst, random, or query tracklet names ({known}) "
                             f"or indices 0..{num_q - 1}")
    if not chosen:
        raise InputError("no queries chosen: give worst, random, or query names/indices")
    return chosen


def ranked_lists(distmat, q_pids, g_pids, q_camids, g_camids, queries: Union[str, Sequence] = "worst",
                 topk: int = 10, count: int = 4, names: Optional[Sequence[str]] = None,
                 junk_pids=(-1,), seed: int = 0) -> List[RankedList]:
    """The top-k gallery items of the chosen queries (see `choose_queries`), ranked and judged
    by the evaluation's rules."""
    from ..metrics import evaluate_rank
    from ..metrics.rank import prepare_rank_inputs, ranked_gallery

    if topk < 1:
        raise InputError(f"topk must be >= 1, got {topk}")
    x = prepare_rank_inputs(distmat, q_pids, g_pids, q_camids, g_camids, junk_pids=junk_pids)
    result = evaluate_rank(x.distmat, x.q_pids, x.g_pids, x.q_camids, x.g_camids, junk_pids=x.junk_pids)
    out = []
    for q in choose_queries(result.first_match_rank, result.average_precision, queries, count, names, seed):
        order, match, junk, rank = (a[:topk] for a in ranked_gallery(x, q))
        verdict = tuple("junk" if j else "match" if m else "false" for m, j in zip(match, junk))
        out.append(RankedList(q, int(result.first_match_rank[q]), order, x.distmat[q, order], verdict, rank))
    return out


def sample_frames(num_frames: int, count: int) -> List[int]:
    """`count` frame indices spread evenly over a tracklet (all of them when it is shorter)."""
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))})


def tracklet_strip(tracklet, frames: int = 3, size: Tuple[int, int] = (96, 48)) -> np.ndarray:
    """(H, frames * W, 3) uint8: a few frames of a tracklet, resized to `size` (H, W), side by side."""
    import torch.nn.functional as F

    from ..data.clip_dataset import read_frame

    images = [read_frame(tracklet.frames[i]).float()[None] for i in sample_frames(len(tracklet), frames)]
    resized = [F.interpolate(im, size=tuple(size), mode="bilinear", align_corners=False)[0] for im in images]
    strip = np.concatenate([r.round().clamp(0, 255).byte().permute(1, 2, 0).numpy() for r in resized], axis=1)
    return strip


def _frame_axes(ax, color: str, width: float = 4.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def visrank_figure(lists: Sequence[RankedList], query: Sequence, gallery: Sequence, frames: int = 3,
                   size: Tuple[int, int] = (96, 48), title: str = ""):
    """One row per ranked list: the query tracklet, then its gallery tracklets in rank order,
    each a strip of `frames` frames framed by its verdict's colour, titled with its rank and
    distance. query / gallery: the Tracklets the lists index."""
    from matplotlib.patches import Patch

    from ..figures import new_figure

    if not lists:
        raise InputError("no ranked lists to draw")
    cols = 1 + max(len(r.gallery) for r in lists)
    cell_w = 0.55 * frames * size[1] / 48 + 0.15
    cell_h = 1.1 * size[0] / 96 + 0.45
    head = 0.35 if title else 0.1
    width, height = cell_w * cols, cell_h * len(lists) + head + 0.3
    fig, axes = new_figure(width, height, nrows=len(lists), ncols=cols, squeeze=False)
    for row, ranked in enumerate(lists):
        q = query[ranked.query]
        ax = axes[row, 0]
        ax.imshow(tracklet_strip(q, frames, size))
        _frame_axes(ax, "black", 2.0)
        first = f"1st match: rank {ranked.first_match_rank}" if ranked.first_match_rank else "no true match"
        ax.set_title(f"query {q.name or ranked.query}\npid {q.pid} cam {q.camid}\n{first}", fontsize=6)
        for j in range(1, cols):
            ax = axes[row, j]
            if j > len(ranked.gallery):
                ax.axis("off")
                continue
            g = gallery[ranked.gallery[j - 1]]
            verdict, rank = ranked.verdict[j - 1], int(ranked.rank[j - 1])
            ax.imshow(tracklet_strip(g, frames, size))
            _frame_axes(ax, VERDICT_COLORS[verdict])
            head_line = f"rank {rank}" if verdict != "junk" else "junk"
            ax.set_title(f"{head_line}  d={ranked.distance[j - 1]:.3g}\npid {g.pid} cam {g.camid}", fontsize=6,
                         color=VERDICT_COLORS[verdict] if verdict != "false" else "black")
    handles = [Patch(facecolor="white", edgecolor=c, linewidth=2, label=n)
               for n, c in (("true match", VERDICT_COLORS["match"]), ("false match", VERDICT_COLORS["false"]),
                            ("junk (same identity, same camera)", VERDICT_COLORS["junk"]))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=8, y=1 - 0.08 / height)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - (head + 0.45) / height, bottom=0.3 / height,
                        wspace=0.08, hspace=0.75 * 0.45 / cell_h + 0.3)
    return fig


def visrank(checkpoint: Union[str, Path], queries: Union[str, Sequence] = "worst", topk: int = 10,
            count: int = 4, frames: int = 3, overrides: Sequence[str] = (), device: str = "auto",
            seed: int = 0, progress: bool = True):
    """Ranked lists of a checkpoint on its dataset's test split (as `ssn3d evaluate` ranks
    them): returns (figure, ranked lists). overrides change data/eval settings as for evaluate."""
    from ..engine.build import evaluation_keypoints, prepare_dataset
    from ..engine.evaluator import identities_and_cameras, load_trained, query_gallery_distances, run_title

    trained = load_trained(checkpoint, overrides, device)
    config = trained.config
    dataset = prepare_dataset(config.data, progress=progress)
    distmat = query_gallery_distances(trained.model, dataset, config, trained.device, trained.amp_dtype,
                                      progress, evaluation_keypoints(config, dataset))
    lists = ranked_lists(distmat, *identities_and_cameras(dataset), queries=queries, topk=topk, count=count,
                         names=[t.name for t in dataset.query], seed=seed)
    chosen = queries if isinstance(queries, str) and queries in ("worst", "random") else "chosen"
    epochs = trained.payload['epoch']
    title = (f"{run_title(config)} ({epochs} epoch{'s' if epochs != 1 else ''}): {chosen} queries, "
             f"{config.eval.metric} distance")
    return visrank_figure(lists, dataset.query, dataset.gallery, frames=frames, title=title), lists
