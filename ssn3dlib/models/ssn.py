"""The Self-Separated Network (SSN), SPEC section 1.

One forward pass does:
  1st round  a_{h,w} = f(X_{h,w}) for every k x k window   (eq. 1)
  maps       Â^i = softmax of a^i over the H'W' windows     (eq. 2)
  parts      Y^i = sum_{h,w} Â^i_{h,w} X_{h,w}              (eq. 3)
  2nd round  p_i = f(Y^i), loss = CE(p_i, i)                (eq. 4)

Keypoint windows (semi-supervised and supervised strategies) go through the same
weighted window sum with one-hot weights, so "the window at a keypoint" and
"the part under a one-hot attention map" are the same code path by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention_classifier import AttentionClassifier

STRATEGIES = ("unsupervised", "semi-supervised", "supervised")


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown SSN strategy {strategy!r}; choose one of {STRATEGIES}")


@dataclass
class SSNOutput:
    """What one SSN forward returns.

    scores: (B, N, H', W') raw 1st-round scores a^i (None in the supervised strategy).
    maps:   (B, N, H', W') attention maps Â^i, each summing to 1 over positions
            (None in the supervised strategy, which uses no attention).
    parts:  (B, N, C, k, k) part features Y^i.
    loss:   scalar SSN loss (eq. 4 averaged over its terms) or None when not computed.
    """

    scores: Optional[torch.Tensor]
    maps: Optional[torch.Tensor]
    parts: torch.Tensor
    loss: Optional[torch.Tensor]


#: The FFT formulation of eq. 3 is used when the window sum has few channels and its
#: direct cost, k^2 H'W' multiply-adds per (sample, part, channel), is at least this many
#: times H W log2(H W) (an FFT's); benchmarks/bench_ssn3d_step.py measured the crossover
#: on 2 CPU cores (Amber's 3 x 120 x 160 map with 19 x 19 windows: ratio 19, about 10x faster).
FFT_MIN_COST_RATIO = 8.0
FFT_MAX_CHANNELS = 8
WINDOW_SUM_METHODS = ("auto", "conv", "fft")


def window_sum_method(channels: int, size, window: int) -> str:
    """"fft" or "conv": the faster formulation of eq. 3 for a (C, H, W) map and k x k windows."""
    h, w = size
    grid = (h - window + 1) * (w - window + 1)
    direct = window * window * grid
    fft = h * w * max(math.log2(h * w), 1.0)
    return "fft" if channels <= FFT_MAX_CHANNELS and direct >= FFT_MIN_COST_RATIO * fft else "conv"


def weighted_window_sum(x: torch.Tensor, weights: torch.Tensor, window: int,
                        method: str = "auto") -> torch.Tensor:
    """Y[b, i] = sum_{h,w} weights[b, i, h, w] * x[b, :, h:h+k, w:w+k]  (eq. 3).

    x: (B, C, H, W) already padded; weights: (B, N, H-k+1, W-k+1).
    Returns (B, N, C, k, k).

    Two formulations of the same sum (method "auto" picks by size, see window_sum_method):
    - "conv": one grouped cross-correlation with the weights as kernels. It never
      materialises the B x C*k*k x H'W' unfolded windows (400 MB for a paper-size batch),
      and autograd keeps only x and the weights. Fastest for the models' k = 3 windows.
    - "fft": the same cross-correlation through 2-D real FFTs of size H x W, computed in
      float64 and rounded to the input's dtype (no wrap-around: h + u <= H - 1 for every
      term). For large windows over few channels (the Amber study's 19 x 19 windows on RGB)
      it is about 10x faster on CPU, and closer to the exact sum than the float32 conv.
    """
    b, c, h, w = x.shape
    n = weights.shape[1]
    if weights.shape != (b, n, h - window + 1, w - window + 1):
        raise ValueError(f"weights of shape {tuple(weights.shape)} do not match windows of size "
                         f"{window} over a map of {tuple(x.shape)}")
    if method not in WINDOW_SUM_METHODS:
        raise ValueError(f"unknown window-sum method {method!r}; choose one of {WINDOW_SUM_METHODS}")
    if method == "auto":
        method = window_sum_method(c, (h, w), window)
    if method == "fft":
        return _window_sum_fft(x, weights, window)
    # Channels become the conv batch, samples the conv channels: group b sees sample b only.
    out = F.conv2d(x.transpose(0, 1), weights.reshape(b * n, 1, h - window + 1, w - window + 1),
                   groups=b)  # (C, B*N, k, k)
    return out.reshape(c, b, n, window, window).permute(1, 2, 0, 3, 4)


def _window_sum_fft(x: torch.Tensor, weights: torch.Tensor, window: int) -> torch.Tensor:
    """Eq. 3 as a cross-correlation by FFT: Y = IFFT(conj(FFT(weights)) * FFT(x))[:k, :k]."""
    size = x.shape[-2:]
    dtype = torch.promote_types(x.dtype, weights.dtype)
    xf = torch.fft.rfft2(x.double(), s=size)                          # (B, C, H, W/2+1)
    wf = torch.fft.rfft2(weights.double(), s=size)                    # (B, N, H, W/2+1)
    y = torch.fft.irfft2(wf.conj().unsqueeze(2) * xf.unsqueeze(1), s=size)  # (B, N, C, H, W)
    return y[..., :window, :window].to(dtype)


def one_hot_windows(windows: torch.Tensor, grid_size: Sequence[int]) -> torch.Tensor:
    """(B, N, 2) integer (row, col) window indices -> (B, N, H', W') one-hot weights."""
    gh, gw = grid_size
    flat = windows[..., 0] * gw + windows[..., 1]
    return F.one_hot(flat.long(), gh * gw).reshape(*windows.shape[:2], gh, gw)


def keypoints_to_windows(xy: torch.Tensor, visible: torch.Tensor, image_size: Sequence[int],
                         feature_size: Sequence[int], window: int, padding: int = 0):
    """Map keypoints in input-image pixels to the nearest window of the SSN grid.

    xy: (..., N, 2) as (x, y) pixels of an image of image_size = (H_img, W_img);
    visible: (..., N) bool. feature_size = (H, W) of the (unpadded) feature map.
    Returns (windows, visible): windows (..., N, 2) long (row, col) in the window grid
    of size (H + 2p - k + 1, W + 2p - k + 1); non-finite keypoints become invisible.
    Keypoints outside the grid's centres snap to the border window (nearest centre).
    """
    img_h, img_w = image_size
    feat_h, feat_w = feature_size
    grid_h, grid_w = feat_h + 2 * padding - window + 1, feat_w + 2 * padding - window + 1
    if grid_h < 1 or grid_w < 1:
        raise ValueError(f"a {window}x{window} window with padding {padding} does not fit a "
                         f"{feat_h}x{feat_w} feature map")
    finite = torch.isfinite(xy).all(dim=-1)
    xy = torch.nan_to_num(xy.float())
    # Pixel centres map to feature cells with the usual half-pixel alignment.
    fx = (xy[..., 0] + 0.5) * feat_w / img_w - 0.5
    fy = (xy[..., 1] + 0.5) * feat_h / img_h - 0.5
    # Window (r, c) is centred on feature cell (r - p + (k-1)/2, c - p + (k-1)/2).
    offset = padding - (window - 1) / 2
    rows = torch.round(fy + offset).clamp(0, grid_h - 1).long()
    cols = torch.round(fx + offset).clamp(0, grid_w - 1).long()
    return torch.stack([rows, cols], dim=-1), visible.bool() & finite


class SelfSeparatedNetwork(nn.Module):
    """SSN over a batch of single frames (B, C, H, W).

    Args:
        in_channels: C of the input feature map (3 for raw images).
        num_parts: N attention maps / part labels.
        window: k, the sliding-window side.
        padding: zero padding of the map before taking windows; 0 = "valid" windows
            (SPEC default: a constant input then gives identical windows).
        hidden: K, channels of the classifier's k x k conv (paper: 512).
        strategy: "unsupervised", "semi-supervised" or "supervised" (see forward).
        num_classifiers: 1 shares one classifier across all frames (paper default);
            T > 1 gives each of T frame positions its own classifier and own loss
            ("non-shared" ablation); frame t uses classifier t mod T.
        map_loss_weight: our extension, not the paper's (0 = the paper's SSN). In the
            paper's semi-supervised SSN a labelled frame's parts are its keypoint windows, so
            its 1st-round scores get no gradient and nothing tells a background window what
            to score; with a weight w > 0 the loss adds w x the cross-entropy of each
            labelled visible part's map (its scores over the windows) against the keypoint's
            window, supervising the labelled frames' maps where they should peak.
    """

    def __init__(self, in_channels: int, num_parts: int, window: int = 3, padding: int = 0,
                 hidden: int = 512, strategy: str = "unsupervised", num_classifiers: int = 1,
                 map_loss_weight: float = 0.0):
        super().__init__()
        check_strategy(strategy)
        if padding < 0 or num_classifiers < 1:
            raise ValueError(f"padding must be >= 0 and num_classifiers >= 1, got "
                             f"padding={padding}, num_classifiers={num_classifiers}")
        if map_loss_weight < 0 or (map_loss_weight and strategy != "semi-supervised"):
            raise ValueError(f"map_loss_weight must be >= 0 and needs the semi-supervised strategy (its labelled "
                             f"frames' keypoints), got {map_loss_weight} with {strategy!r}")
        self.map_loss_weight = float(map_loss_weight)
        self.in_channels = in_channels
        self.num_parts = num_parts
        self.window = window
        self.padding = padding
        self.strategy = strategy
        self.classifiers = nn.ModuleList(
            AttentionClassifier(in_channels, num_parts, window, hidden) for _ in range(num_classifiers))

    @property
    def num_classifiers(self) -> int:
        return len(self.classifiers)

    def grid_size(self, feature_size: Sequence[int]):
        """Number of window positions (H', W') for a feature map of (H, W)."""
        h, w = feature_size
        return (h + 2 * self.padding - self.window + 1, w + 2 * self.padding - self.window + 1)

    # -- classifier dispatch -------------------------------------------------
    def _classifier_ids(self, batch: int, frame_index, device) -> torch.Tensor:
        if self.num_classifiers == 1:
            return torch.zeros(batch, dtype=torch.long, device=device)
        if frame_index is None:
            raise ValueError("non-shared SSN (num_classifiers > 1) needs frame_index, the position "
                             "of each sample in its clip")
        return torch.as_tensor(frame_index, device=device).long().reshape(batch) % self.num_classifiers

    def _classify(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if self.num_classifiers == 1:
            return self.classifiers[0](x)
        outputs, order = [], []
        for c, classifier in enumerate(self.classifiers):
            sel = (ids == c).nonzero(as_tuple=True)[0]
            if sel.numel():
                order.append(sel)
                outputs.append(classifier(x[sel]))
        # Put each classifier's rows back in batch order.
        stacked = torch.cat(outputs)
        inverse = torch.empty_like(ids)
        inverse[torch.cat(order)] = torch.arange(x.shape[0], device=x.device)
        return stacked[inverse]

    # -- forward -------------------------------------------------------------
    def forward(self, x: torch.Tensor, keypoint_windows: Optional[torch.Tensor] = None,
                keypoint_visible: Optional[torch.Tensor] = None,
                labelled: Optional[torch.Tensor] = None, frame_index=None,
                with_loss: Optional[bool] = None) -> SSNOutput:
        """Run both rounds on frames x of (B, C, H, W).

        keypoint_windows: (B, N, 2) long (row, col) window indices (see keypoints_to_windows);
        keypoint_visible: (B, N) bool; labelled: (B,) bool, which samples carry keypoints.
        - unsupervised: keypoints are ignored.
        - semi-supervised: for labelled samples, part i is the window at keypoint i
          (eq. 3 replaced) and its loss term uses it; an invisible keypoint keeps the
          attention part and adds no loss term. Unlabelled samples are unsupervised.
        - supervised: every part is its keypoint window (zeros when invisible); no
          attention and no SSN loss.
        frame_index: (B,) clip positions, needed when classifiers are not shared.
        with_loss: compute the 2nd round and loss; default: in training mode.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SSN expects (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        b = x.shape[0]
        grid = self.grid_size(x.shape[-2:])
        if min(grid) < 1:
            raise ValueError(f"a {self.window}x{self.window} window with padding {self.padding} "
                             f"does not fit a {tuple(x.shape[-2:])} feature map")
        if with_loss is None:
            with_loss = self.training
        xp = F.pad(x, [self.padding] * 4) if self.padding else x
        ids = self._classifier_ids(b, frame_index, x.device)

        use_keypoint = self._keypoint_mask(b, keypoint_windows, keypoint_visible, labelled, x.device)
        if self.strategy == "supervised":
            weights = one_hot_windows(keypoint_windows, grid).to(x.dtype)
            weights = weights * keypoint_visible.reshape(b, -1, 1, 1).to(x.dtype)
            parts = weighted_window_sum(xp, weights, self.window)
            return SSNOutput(scores=None, maps=None, parts=parts,
                             loss=x.new_zeros(()) if with_loss else None)

        scores = self._classify(xp, ids)                                   # (B, N, H', W')
        maps = scores.flatten(2).softmax(dim=-1).reshape_as(scores)        # eq. 2
        weights = maps
        if use_keypoint is not None:
            onehot = one_hot_windows(keypoint_windows, grid).to(maps.dtype)
            weights = torch.where(use_keypoint[..., None, None], onehot, maps)
        parts = weighted_window_sum(xp, weights, self.window)              # eq. 3
        loss = self._loss(parts, ids, labelled, use_keypoint) if with_loss else None
        if loss is not None and self.map_loss_weight and use_keypoint is not None and use_keypoint.any():
            target = keypoint_windows[..., 0] * grid[1] + keypoint_windows[..., 1]
            map_term = F.cross_entropy(scores.flatten(2)[use_keypoint], target[use_keypoint].long())
            loss = loss + self.map_loss_weight * map_term
        return SSNOutput(scores=scores, maps=maps, parts=parts, loss=loss)

    def _keypoint_mask(self, b, windows, visible, labelled, device) -> Optional[torch.Tensor]:
        """(B, N) bool: which parts come from keypoint windows, or None."""
        if self.strategy == "unsupervised":
            return None
        if windows is None or visible is None:
            if self.strategy == "supervised":
                raise ValueError("the supervised SSN strategy needs keypoint_windows and "
                                 "keypoint_visible for every sample")
            return None  # semi-supervised batch without labelled samples
        if windows.shape != (b, self.num_parts, 2) or visible.shape != (b, self.num_parts):
            raise ValueError(f"keypoints must be (B={b}, N={self.num_parts}, 2) windows and (B, N) "
                             f"visibility, got {tuple(windows.shape)} and {tuple(visible.shape)}")
        mask = visible.bool().to(device)
        if self.strategy == "semi-supervised":
            if labelled is None:
                raise ValueError("semi-supervised SSN with keypoints needs the per-sample "
                                 "`labelled` mask")
            mask = mask & labelled.bool().to(device).reshape(b, 1)
        return mask

    def _loss(self, parts, ids, labelled, use_keypoint) -> torch.Tensor:
        """Eq. 4: part i's 2nd-round prediction should be label i.

        Averaged over terms (not summed over parts as printed in eq. 4) so that a
        fresh model sits at log N whatever N; with non-shared classifiers each
        classifier's loss is averaged separately, then the T losses are averaged.
        """
        b, n = parts.shape[:2]
        logits = self._classify(parts.flatten(0, 1), ids.repeat_interleave(n)).reshape(b, n, n)
        target = torch.arange(n, device=parts.device).expand(b, n)
        terms = F.cross_entropy(logits.reshape(b * n, n), target.reshape(-1), reduction="none")
        terms = terms.reshape(b, n)
        keep = torch.ones_like(terms, dtype=torch.bool)
        if use_keypoint is not None and labelled is not None:
            # Labelled samples contribute only through their visible keypoint windows.
            is_labelled = labelled.bool().to(parts.device).reshape(b, 1)
            keep = torch.where(is_labelled, use_keypoint, keep)
        weights = keep.to(terms.dtype)
        per_classifier = []
        for c in range(self.num_classifiers):
            rows = (ids == c).to(terms.dtype).reshape(b, 1) * weights
            count = rows.sum()
            if count > 0:
                per_classifier.append((terms * rows).sum() / count)
        if not per_classifier:
            return terms.sum() * 0.0  # nothing to learn from in this batch (keeps the graph)
        return torch.stack(per_classifier).mean()
