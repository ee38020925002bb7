"""One claim type for every study: what the paper says, what we measured, and whether it holds.

Studies put a list of claims in their metrics.json under ``claims``; the report reads that
list as it is (``ssn3dlib.reporting.report``), so a new study needs no adapter there.
``paper_claim=False`` marks a check of our own (a control, a stricter test): the report shows
it apart and never counts it as the paper's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional

#: A claim without its own statement of the paper (our own control or stricter test).
NOT_IN_PAPER = "not in the paper"


@dataclass(frozen=True)
class Claim:
    """One tested statement.

    name:        stable identifier within its study (what notebooks assert on).
    source:      the paper's figure or table ("Fig. 5", "Table 1").
    statement:   the paper's statement or number; NOT_IN_PAPER for our own checks.
    holds:       True / False, or None when the data cannot test it (say why in `reason`).
    detail:      our numbers and the test applied, in words.
    data:        the data and profile it was measured on.
    paper_claim: False for our own checks (controls, stricter tests).
    reason:      why it is not testable, when holds is None.
    comparison:  the measured effect behind the verdict (``statistics.Comparison.to_dict()``:
                 effect, 95% interval, se, minimum detectable effect, n, verdict, reason). When
                 given, it decides: holds is True for "reproduced", False for "contradicted" and
                 None for "inconclusive". A paper claim without one has no verdict yet.
    """

    name: str
    source: str
    statement: str
    holds: Optional[bool]
    detail: str = ""
    data: str = ""
    paper_claim: bool = True
    reason: str = ""
    comparison: Optional[Dict[str, Any]] = None

    def __post_init__(self):
        if self.comparison is not None:
            from .statistics import CONTRADICTED, REPRODUCED, VERDICTS

            verdict = self.comparison.get("verdict")
            if verdict not in VERDICTS:
                raise ValueError(f"claim {self.name!r}: comparison verdict {verdict!r} is not one of {VERDICTS}")
            holds = True if verdict == REPRODUCED else False if verdict == CONTRADICTED else None
            if self.holds is not None and bool(self.holds) != holds:
                raise ValueError(f"claim {self.name!r}: holds={self.holds} disagrees with its comparison's "
                                 f"verdict {verdict!r}; pass holds=None and let the comparison decide")
            object.__setattr__(self, "holds", holds)
            if holds is None and not self.reason:
                object.__setattr__(self, "reason", self.comparison.get("reason", ""))
        if self.holds is not None and not isinstance(self.holds, bool):
            object.__setattr__(self, "holds", bool(self.holds))   # numpy bools from comparisons
        if not self.paper_claim and self.statement != NOT_IN_PAPER:
            object.__setattr__(self, "statement", NOT_IN_PAPER)

    @property
    def verdict(self) -> Optional[str]:
        """The comparison's verdict (reproduced / contradicted / inconclusive), or None when the
        claim carries no measured effect."""
        return None if self.comparison is None else self.comparison["verdict"]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Claim":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"claim {record.get('name', '?')!r} has unknown keys {unknown}; "
                             f"a claim has {sorted(known)}")
        return cls(**record)


def claims_to_records(claims: Iterable[Claim]) -> List[Dict[str, Any]]:
    """The list stored under metrics.json's ``claims``; names must be unique."""
    claims = list(claims)
    names = [c.name for c in claims]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"claim names must be unique within a study, repeated: {duplicated}")
    return [c.to_dict() for c in claims]


def claims_from_records(records: Iterable[Mapping[str, Any]]) -> List[Claim]:
    return [Claim.from_dict(r) for r in records]


def by_name(claims: Iterable[Claim]) -> Dict[str, Claim]:
    return {c.name: c for c in claims}
