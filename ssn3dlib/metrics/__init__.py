"""Re-ID evaluation: CMC/mAP ranking metrics and query x gallery distances."""
from .distance import compute_distance
from .rank import RankResult, evaluate_rank

__all__ = ["RankResult", "compute_distance", "evaluate_rank"]
