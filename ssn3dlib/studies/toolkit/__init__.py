"""The study toolkit: the pieces every study notebook shares, one implementation each.

- ``ssn_training``: one SSN-only training loop (``train_ssn``), its run record (``SSNRun``:
  losses, final loss, first step below a fraction of log N) and ``attention_maps``;
- ``window_grid``: ``WindowGrid`` (where an SSN's windows lie on the image, from the model's
  own feature size and window grid) and the one peak step (``peak_windows``, ``peak_pixels``);
- ``part_scoring``: PCK, chance, ceiling and position prior, part matching, with every rule
  (visibility threshold, radius, frames the matching is fitted on) an explicit argument;
- ``claims``: the one ``Claim`` type every metrics.json lists and the report reads;
- ``records``: the one JSON sanitiser, atomic writes, ``write_metrics``, ``WALL_TIME_KEY``;
- ``engine_runs``: ``train_or_reuse`` (one list of result-neutral config keys, the engine's),
  epoch losses and chance rank-1 for the studies that train through the engine;
- ``statistics``: intervals (Wilson; a two-way replicates x units t interval), paired comparisons
  (``compare``, ``compare_blocks`` over splits, ``against_reference``) with their minimum
  detectable effect, and the one
  verdict rule (reproduced / contradicted / inconclusive) every claim uses;
- ``verdict_figure``: ``plot_comparisons``, a set of claims as one forest plot (effect, interval,
  MDE, verdict colour).
"""
from .claims import NOT_IN_PAPER, Claim, by_name, claims_from_records, claims_to_records
from .part_scoring import (
    ceiling_pck,
    chance_agreement,
    chance_follows_motion,
    chance_part_hits,
    chance_pck,
    distinctness,
    follows_motion,
    match_parts,
    part_hits,
    pck,
    peak_agreement,
    position_prior,
    visible_keypoints,
)
from .records import METRICS_FILE, WALL_TIME_KEY, read_json, to_jsonable, write_json, write_metrics
from .ssn_training import SSNRun, attention_maps, train_ssn
from .statistics import (
    CONTRADICTED,
    INCONCLUSIVE,
    REPRODUCED,
    Comparison,
    Estimate,
    against_reference,
    compare,
    compare_blocks,
    correlation,
    estimate,
    verdict_rule,
    wilson_interval,
)
from .window_grid import WindowGrid, flat_peaks, peak_windows

__all__ = [
    "Claim", "NOT_IN_PAPER", "by_name", "claims_from_records", "claims_to_records", "ceiling_pck",
    "chance_agreement", "chance_follows_motion", "chance_part_hits", "chance_pck", "distinctness", "follows_motion",
    "match_parts", "part_hits", "peak_agreement", "pck", "position_prior",
    "visible_keypoints", "METRICS_FILE", "WALL_TIME_KEY", "read_json", "to_jsonable", "write_json",
    "write_metrics", "SSNRun", "attention_maps", "train_ssn", "WindowGrid", "flat_peaks", "peak_windows",
    "CONTRADICTED", "INCONCLUSIVE", "REPRODUCED", "Comparison", "Estimate", "against_reference", "compare",
    "compare_blocks", "correlation",
    "estimate", "verdict_rule", "wilson_interval",
]
