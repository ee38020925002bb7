"""CMC / mAP evaluation for video re-ID (MARS protocol) without sorting the gallery.

Why no argsort: at MARS scale (about 2k queries x 10k gallery tracks) sorting
every row dominates evaluation time, yet only the ranks of the few true
matches of each query are needed. The rank of a positive ``p`` among the valid
gallery items is the number of valid items ordered before it, where "before"
means a smaller distance or, on equal distance, a smaller gallery index (the
order a stable argsort gives). That count is a vectorised comparison of one
row against a handful of thresholds, which is several times cheaper than a
sort. Everything else (hit numbers, same-camera junk) only involves the
query's own identity and is computed on those few items.

The per-query loop in :mod:`ssn3dlib.metrics.reference` is the oracle: the
numbers here are bit-identical to it (same tie rule, same AP arithmetic).
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple

import numpy as np

#: Accepted values of the ``ap`` argument.
AP_DEFINITIONS = ("standard", "mars-official")

# float32 bits (int32) * 2**bits + column index must stay exact in float64
# (53-bit mantissa, 31 magnitude bits), hence at most 22 index bits.
_MAX_KEY_INDEX_BITS = 22
# Size of the block of query rows copied at a time (elements).
_ROW_BLOCK_ELEMENTS = 1 << 19
# uint64 words summed per byte lane before a lane could overflow (bool masks).
_LANE_WORDS = 255
# Row width is padded to a multiple of this so masks split into whole lanes.
_PAD_MULTIPLE = 8 * _LANE_WORDS
# Largest boolean comparison mask built at once (elements, i.e. bytes).
_MAX_MASK_ELEMENTS = 1 << 24


class RankResult(NamedTuple):
    """Outcome of :func:`evaluate_rank`; fractions are in 0..1, not percent.

    Per-query records (so two runs on one test set can be paired query by query):
    ``first_match_rank`` has one entry per query row, in query order: the 1-based rank of its
    first true match among the valid gallery items (junk excluded, not capped at max_rank),
    and **0 for a query without a true match** (skipped by CMC and mAP).
    ``average_precision`` holds the AP of the queries with a match only, in query order:
    it aligns with ``first_match_rank[first_match_rank > 0]``.
    """

    cmc: np.ndarray
    mAP: float
    num_no_match: int
    average_precision: np.ndarray
    first_match_rank: np.ndarray


class RankInputs(NamedTuple):
    """Validated evaluation inputs, all numpy, shared with the reference loop."""

    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    junk_pids: np.ndarray
    max_rank: int
    ap: str


def _to_numpy(value: Any) -> np.ndarray:
    """Accept torch tensors (any device) without importing torch here."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _as_distance_matrix(distmat: Any) -> np.ndarray:
    """Keep float32 (the fast key path); everything else becomes float64.

    float16 widens to float32 exactly, so order and ties are unchanged.
    """
    d = _to_numpy(distmat)
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query x num_gallery), got shape {d.shape}")
    if d.dtype.kind not in "biuf":
        raise ValueError(f"distmat must hold real numbers, got dtype {d.dtype}")
    target = np.float32 if d.dtype in (np.float32, np.float16) else np.float64
    d = np.ascontiguousarray(d, dtype=target)
    if d.size and not (np.isfinite(d.min()) and np.isfinite(d.max())):
        raise ValueError("distmat contains NaN or infinite distances")
    return d


def _as_label_vector(value: Any, name: str, length: int, axis_name: str) -> np.ndarray:
    """Labels must be 1-D and match the distmat axis they describe."""
    arr = _to_numpy(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != length:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but distmat has {length} {axis_name}"
        )
    return arr


def _as_junk_pids(junk_pids: Any) -> np.ndarray:
    """Any iterable (tuple, set, tensor) of pids becomes a flat array."""
    if hasattr(junk_pids, "detach") or isinstance(junk_pids, np.ndarray):
        return _to_numpy(junk_pids).ravel()
    return np.asarray(list(junk_pids)).ravel()


def prepare_rank_inputs(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap: str = "standard",
    junk_pids: Iterable = (-1,),
) -> RankInputs:
    """Validate and convert the arguments of :func:`evaluate_rank`.

    Shared with the reference loop so both reject exactly the same inputs.
    """
    if ap not in AP_DEFINITIONS:
        raise ValueError(f"unknown ap {ap!r}; expected one of {AP_DEFINITIONS}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    d = _as_distance_matrix(distmat)
    num_q, num_g = d.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat needs at least one query and one gallery item, got {d.shape}")
    inputs = RankInputs(
        distmat=d,
        q_pids=_as_label_vector(q_pids, "q_pids", num_q, "query rows"),
        g_pids=_as_label_vector(g_pids, "g_pids", num_g, "gallery columns"),
        q_camids=_as_label_vector(q_camids, "q_camids", num_q, "query rows"),
        g_camids=_as_label_vector(g_camids, "g_camids", num_g, "gallery columns"),
        junk_pids=_as_junk_pids(junk_pids),
        max_rank=int(max_rank),
        ap=ap,
    )
    bad = np.isin(inputs.q_pids, inputs.junk_pids)
    if bad.any():
        raise ValueError(
            f"query {int(np.flatnonzero(bad)[0])} has junk pid {inputs.q_pids[bad][0]!r}; "
            "junk tracks cannot be queries"
        )
    return inputs


def junk_mask(q_pid: Any, q_camid: Any, g_pids: np.ndarray, g_camids: np.ndarray,
              junk_pids: np.ndarray) -> np.ndarray:
    """The gallery items one query ignores: same pid on the same camera, or a junk pid."""
    return ((g_pids == q_pid) & (g_camids == q_camid)) | np.isin(g_pids, junk_pids)


def ranked_gallery(x: RankInputs, q_idx: int):
    """One query's gallery in ranking order (stable: equal distances by gallery index), as
    (order, is_match, is_junk, rank): rank is the 1-based position among the valid (non-junk)
    items, the one the CMC counts, and 0 for junk."""
    order = np.argsort(x.distmat[q_idx], kind="stable")
    junk = junk_mask(x.q_pids[q_idx], x.q_camids[q_idx], x.g_pids[order], x.g_camids[order], x.junk_pids)
    match = (x.g_pids[order] == x.q_pids[q_idx]) & ~junk
    rank = np.where(junk, 0, np.cumsum(~junk))
    return order, match, junk, rank


def raise_if_no_valid_query(num_valid: int, num_q: int) -> None:
    """An empty evaluation would silently give NaN; fail loudly instead."""
    if num_valid == 0:
        raise ValueError(
            f"none of the {num_q} queries has a true match (same pid, other camera) "
            "in the gallery; cannot compute CMC/mAP"
        )


class _Positives(NamedTuple):
    """True matches of every query, grouped by query and ordered by rank.

    ``starts[q]:starts[q + 1]`` slices the entries of query ``q``.
    """

    query: np.ndarray  # query row of each positive
    column: np.ndarray  # gallery column of each positive
    hit: np.ndarray  # 1-based hit number k among the query's positives
    junk_before: np.ndarray  # same-id same-camera junk ordered before it
    starts: np.ndarray  # num_q + 1 offsets


def _find_positives(x: RankInputs) -> _Positives:
    """Collect each query's same-pid gallery items and order them by (distance, index).

    Only same-pid items can be positives or per-query junk, so their relative
    order (hence hit numbers and junk-before counts) needs no full row.
    """
    num_q = x.distmat.shape[0]
    by_pid = np.argsort(x.g_pids, kind="stable")
    sorted_pids = x.g_pids[by_pid]
    lo = np.searchsorted(sorted_pids, x.q_pids, side="left")
    sizes = np.searchsorted(sorted_pids, x.q_pids, side="right") - lo
    group_start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    query = np.repeat(np.arange(num_q), sizes)
    column = by_pid[np.repeat(lo, sizes) + np.arange(sizes.sum()) - group_start]
    # Sort within each query by (distance, column): the stable-argsort order.
    order = np.lexsort((column, x.distmat[query, column], query))
    query, column = query[order], column[order]
    positive = x.g_camids[column] != x.q_camids[query]
    # Running counts restarted at every query group (groups keep their offsets).
    pos_seen = np.cumsum(positive)
    junk_seen = np.cumsum(~positive)
    pos_base = pos_seen[group_start] - positive[group_start]
    junk_base = junk_seen[group_start] - ~positive[group_start]
    query = query[positive]
    return _Positives(
        query=query,
        column=column[positive],
        hit=(pos_seen - pos_base)[positive],
        junk_before=(junk_seen - junk_base)[positive],
        starts=np.searchsorted(query, np.arange(num_q + 1)),
    )


def _fill_tie_free_keys(chunk: np.ndarray, index_bits: int, out: np.ndarray) -> None:
    """Write float64 keys ordered like (distance, column), all distinct, into ``out``.

    The float32 bit pattern (as a sign-corrected int32) is monotone in the
    value; scaling it by 2**index_bits and adding the column index makes keys
    unique, so one strict comparison implements the stable tie rule.
    """
    if chunk.min() <= 0:
        chunk = chunk + np.float32(0)  # -0.0 -> +0.0 so both zeros tie
        bits = chunk.view(np.int32)
        bits = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits)  # negatives: reverse
    else:
        bits = chunk.view(np.int32)
    np.multiply(bits, float(2**index_bits), out=out)
    out += np.arange(chunk.shape[1], dtype=np.float64)


def _count_true_per_row(mask: np.ndarray) -> np.ndarray:
    """Row sums of a bool mask whose width is a multiple of ``_PAD_MULTIPLE``.

    Several times faster than ``count_nonzero(axis=1)``: the bytes are summed
    8 at a time as uint64 words, 255 words per partial sum so no byte lane
    can carry into the next, then the lane bytes are added up.
    """
    words = mask.view(np.uint64).reshape(mask.shape[0], -1, _LANE_WORDS)
    lanes = words.sum(axis=2)
    return lanes.view(np.uint8).sum(axis=1, dtype=np.int64)


def _count_where(compare: np.ufunc, row: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Count entries with ``compare(entry, threshold)`` per threshold, in bounded batches."""
    batch = max(1, _MAX_MASK_ELEMENTS // row.shape[0])
    return np.concatenate(
        [
            _count_true_per_row(compare(row, thresholds[i : i + batch, None]))
            for i in range(0, len(thresholds), batch)
        ]
    )


def _count_before_in_row(row: np.ndarray, columns: np.ndarray, tie_free: bool) -> np.ndarray:
    """Items ordered before each of ``columns`` in one row (junk and padding hold +inf)."""
    thresholds = row[columns]
    before = _count_where(np.less, row, thresholds)
    if tie_free:
        return before
    # Equal distances: only the lower-index ones come first. Ties are rare in
    # real data, so resolve them per affected positive.
    equal = _count_where(np.equal, row, thresholds)
    for i in np.flatnonzero(equal > 1):
        before[i] += np.count_nonzero(row[: columns[i]] == thresholds[i])
    return before


def _count_valid_before(x: RankInputs, pos: _Positives) -> np.ndarray:
    """For every positive, count non-junk-pid gallery items ordered before it.

    Rows are copied block by block into a buffer of a few MB whatever the
    matrix size; junk-pid columns and the width padding hold +inf there so
    they never count. float32 input becomes tie-free keys (one comparison
    per item); other dtypes compare raw values and fix ties afterwards.
    """
    num_q, num_g = x.distmat.shape
    junk_columns = np.flatnonzero(np.isin(x.g_pids, x.junk_pids))
    index_bits = max(1, int(num_g - 1).bit_length())
    use_keys = x.distmat.dtype == np.float32 and index_bits <= _MAX_KEY_INDEX_BITS
    width = -(-num_g // _PAD_MULTIPLE) * _PAD_MULTIPLE
    rows_per_block = max(1, _ROW_BLOCK_ELEMENTS // width)
    buffer = np.full(
        (min(rows_per_block, num_q), width), np.inf, np.float64 if use_keys else x.distmat.dtype
    )
    before = np.empty(len(pos.column), dtype=np.int64)
    for q0 in range(0, num_q, rows_per_block):
        q1 = min(q0 + rows_per_block, num_q)
        if pos.starts[q0] == pos.starts[q1]:
            continue  # no positives in these rows
        block = buffer[: q1 - q0]
        if use_keys:
            _fill_tie_free_keys(x.distmat[q0:q1], index_bits, block[:, :num_g])
        else:
            block[:, :num_g] = x.distmat[q0:q1]
        block[:, junk_columns] = np.inf
        for q in range(q0, q1):
            a, b = pos.starts[q], pos.starts[q + 1]
            if a < b:
                before[a:b] = _count_before_in_row(block[q - q0], pos.column[a:b], use_keys)
    return before


def _ap_terms(hit: np.ndarray, rank: np.ndarray, ap: str) -> np.ndarray:
    """Per-hit AP contributions (k-th hit at valid rank r, both 1-based).

    standard: precision k/r. mars-official: trapezoid between the precision
    at the previous valid position ((k-1)/(r-1), 1 at r=1) and k/r, as in
    the MARS MATLAB compute_AP.
    """
    precision = hit / rank
    if ap == "standard":
        return precision
    previous = np.where(rank == 1, 1.0, (hit - 1) / np.maximum(rank - 1, 1))
    return (previous + precision) / 2


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    ap: str = "standard",
    junk_pids: Iterable = (-1,),
) -> RankResult:
    """CMC and mAP of a query x gallery distance matrix, MARS/Market protocol.

    Per query, gallery items with the same pid and camera are junk, as are
    items whose pid is in ``junk_pids`` (MARS -1); distractors (pid 0) are
    ordinary negatives. Positives share the pid on another camera; queries
    without one are skipped and counted in ``num_no_match``. Equal distances
    rank by gallery index. ``ap`` selects "standard" (non-interpolated) or
    "mars-official" (trapezoidal, MARS MATLAB code) average precision.
    Inputs may be numpy arrays or torch tensors. Per query, the result also gives the
    rank of the first true match (0 when there is none) and the AP (see :class:`RankResult`);
    the first match is the smallest rank of the query's true matches, so no row is sorted.
    """
    x = prepare_rank_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap, junk_pids)
    num_q, num_g = x.distmat.shape
    pos = _find_positives(x)
    rank = _count_valid_before(x, pos) - pos.junk_before + 1

    counts = np.diff(pos.starts)
    valid = np.flatnonzero(counts)
    raise_if_no_valid_query(len(valid), num_q)
    first = pos.starts[valid]  # groups are rank-ordered: first entry is the first hit

    cmc_len = min(x.max_rank, num_g)
    first_hit = np.minimum(rank[first], cmc_len + 1) - 1
    cmc = np.cumsum(np.bincount(first_hit, minlength=cmc_len + 1)[:cmc_len]) / len(valid)

    first_match_rank = np.zeros(num_q, dtype=np.int64)   # 0: no true match
    first_match_rank[valid] = rank[first]

    terms = _ap_terms(pos.hit, rank, x.ap)
    # Per-query slice sums (not reduceat): same pairwise summation as the reference.
    average_precision = np.array(
        [terms[a : a + n].sum() / n for a, n in zip(first, counts[valid])], dtype=np.float64
    )
    return RankResult(
        cmc=cmc,
        mAP=float(average_precision.mean()),
        num_no_match=int(num_q - len(valid)),
        average_precision=average_precision,
        first_match_rank=first_match_rank,
    )
