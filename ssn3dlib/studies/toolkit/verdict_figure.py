"""One picture of a set of verdicts: each claim's effect with its 95% interval and the design's
minimum detectable effect, beside zero, coloured by its verdict (a forest plot). The rows are
the claims' own comparisons, so the figure and the report cannot disagree."""
from __future__ import annotations

from typing import Sequence

from ...figures import new_figure
from .claims import Claim
from .statistics import CONTRADICTED, REPRODUCED

#: The report's reading of a verdict: the paper's direction holds, the other way, or undecided.
VERDICT_COLOURS = {REPRODUCED: "tab:green", CONTRADICTED: "tab:red"}
UNDECIDED_COLOUR = "tab:grey"


def plot_comparisons(claims: Sequence[Claim], title: str, unit: str = "points", width: float = 7.5):
    """Forest plot of the claims that carry a comparison, top to bottom in the given order: the
    effect (dot) and its 95% interval (bar) in the paper's direction, the +-MDE of each design as
    a faint band, zero as the line a verdict must clear. Claims without a comparison are left out;
    none at all is an error."""
    rows = [c for c in claims if c.comparison is not None]
    if not rows:
        raise ValueError("no claim with a comparison to plot")
    fig, ax = new_figure(width, 0.9 + 0.32 * len(rows))
    for y, claim in enumerate(reversed(rows)):
        cmp = claim.comparison
        colour = VERDICT_COLOURS.get(cmp["verdict"], UNDECIDED_COLOUR)
        ax.fill_betweenx([y - 0.3, y + 0.3], -cmp["mde"], cmp["mde"], color="0.92", linewidth=0)
        ax.errorbar(cmp["effect"], y, xerr=[[cmp["effect"] - cmp["low"]], [cmp["high"] - cmp["effect"]]],
                    fmt="o", color=colour, capsize=3, markersize=4)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([c.name for c in reversed(rows)], fontsize=7)
    ax.set_xlabel(f"effect, paper's direction ({unit}) with 95% CI; grey band: \u00b1MDE", fontsize=8)
    ax.set_title(f"{title}\ngreen reproduced (holds), red contradicted (fails), grey inconclusive", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
