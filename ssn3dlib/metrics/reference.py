"""Plain per-query evaluation loop, kept as an oracle and benchmark baseline.

This is the usual re-ID evaluation (as in torchreid's ``eval_market1501``):
argsort every row of the distance matrix, then walk the queries one by one
with boolean masks (:func:`ssn3dlib.metrics.rank.ranked_gallery`, which the ranked-list
figures draw too). It is slow but easy to check by eye, which is why the fast
:func:`ssn3dlib.metrics.rank.evaluate_rank` is tested against it. The argsort
is stable so equal distances rank by gallery index, as in the fast version.
Input checks are shared with the fast version; the ranking logic is not.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .rank import RankResult, prepare_rank_inputs, raise_if_no_valid_query, ranked_gallery


def _query_average_precision(raw_cmc: np.ndarray, ap: str) -> float:
    """AP of one query from its 0/1 hit vector over the valid ranking."""
    ranks = np.flatnonzero(raw_cmc) + 1  # 1-based valid rank of each hit
    hits = np.arange(1, len(ranks) + 1)  # k-th hit
    precision = hits / ranks
    if ap == "standard":
        terms = precision
    else:  # mars-official: trapezoid with the precision one valid position earlier
        previous = np.where(ranks == 1, 1.0, (hits - 1) / np.maximum(ranks - 1, 1))
        terms = (previous + precision) / 2
    return terms.sum() / len(ranks)


def evaluate_rank_reference(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap: str = "standard",
    junk_pids: Iterable = (-1,),
) -> RankResult:
    """Same contract as :func:`ssn3dlib.metrics.rank.evaluate_rank`, computed by sorting."""
    x = prepare_rank_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap, junk_pids)
    num_q, num_g = x.distmat.shape
    cmc_len = min(x.max_rank, num_g)
    all_cmc, all_ap = [], []
    first_match_rank = np.zeros(num_q, dtype=np.int64)  # 0: no true match
    for q_idx in range(num_q):
        _, match, junk, _ = ranked_gallery(x, q_idx)
        raw_cmc = match[~junk]
        if not raw_cmc.any():
            continue  # no true match left for this query
        first_match_rank[q_idx] = np.flatnonzero(raw_cmc)[0] + 1
        cmc = np.minimum(raw_cmc.cumsum(), 1)
        # A short valid list (heavy junk) has already found its match: pad with 1.
        cmc = np.pad(cmc[:cmc_len], (0, max(0, cmc_len - len(cmc))), constant_values=1)
        all_cmc.append(cmc)
        all_ap.append(_query_average_precision(raw_cmc, x.ap))

    raise_if_no_valid_query(len(all_cmc), num_q)
    average_precision = np.asarray(all_ap, dtype=np.float64)
    return RankResult(
        cmc=np.sum(all_cmc, axis=0) / len(all_cmc),
        mAP=float(average_precision.mean()),
        num_no_match=num_q - len(all_cmc),
        average_precision=average_precision,
        first_match_rank=first_match_rank,
    )
