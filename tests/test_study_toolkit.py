"""The study toolkit: each piece against a hand-computed case or a behaviour that could break."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ssn3dlib.models import SelfSeparatedNetwork, build_backbone
from ssn3dlib.studies.toolkit import (
    Claim,
    WindowGrid,
    attention_maps,
    by_name,
    ceiling_pck,
    chance_pck,
    claims_from_records,
    claims_to_records,
    match_parts,
    pck,
    peak_windows,
    position_prior,
    read_json,
    to_jsonable,
    train_ssn,
    visible_keypoints,
    write_json,
    write_metrics,
)
from ssn3dlib.studies.toolkit.engine_runs import config_differences, epoch_losses, train_or_reuse, was_loaded

from engine_helpers import tiny_config

# ============================================================================ window grid


@pytest.mark.parametrize("image_size", [(64, 32), (70, 30), (57, 41)])
def test_window_grid_matches_the_maps_the_model_really_produces(image_size):
    """Input sizes that are not a multiple of the stride: the grid must be the maps' grid."""
    backbone = build_backbone("resnet18-layer2").eval()
    ssn = SelfSeparatedNetwork(backbone.out_channels, 3, window=3, hidden=8).eval()
    with torch.no_grad():
        maps = ssn(backbone(torch.rand(1, 3, *image_size)), with_loss=False).maps
    grid = WindowGrid.of(ssn, backbone, image_size)
    assert grid.size == tuple(maps.shape[-2:])
    assert grid.all_centres().shape == (grid.size[0] * grid.size[1], 2)


def test_window_centres_at_stride_8():
    # k = 3, no padding: window (r, c) centres on feature cell (r + 1, c + 1), pixel (j + 0.5) * 8 - 0.5.
    grid = WindowGrid((64, 32), (8, 4), window=3)
    ys, xs = grid.centres
    assert grid.size == (6, 2)
    np.testing.assert_allclose(ys, [11.5, 19.5, 27.5, 35.5, 43.5, 51.5])
    np.testing.assert_allclose(xs, [11.5, 19.5])
    assert grid.window_pixels == 24


def test_peaks_in_windows_and_pixels():
    maps = np.zeros((1, 2, 6, 2))
    maps[0, 0, 4, 1] = 1.0
    maps[0, 1, 0, 0] = 1.0
    assert peak_windows(maps).tolist() == [[[4, 1], [0, 0]]]
    assert peak_windows(torch.from_numpy(maps)).tolist() == [[[4, 1], [0, 0]]]
    grid = WindowGrid((64, 32), (8, 4), window=3)
    assert grid.peak_pixels(maps).tolist() == [[[19.5, 43.5], [11.5, 11.5]]]
    with pytest.raises(ValueError, match="do not match"):
        grid.peak_pixels(np.zeros((1, 2, 5, 2)))


# ============================================================================ part scoring

def _two_part_case():
    """Two frames, two parts; keypoints (x, y, visibility)."""
    keypoints = np.array([[[10.0, 10.0, 1.0], [50.0, 50.0, 0.5]],
                          [[12.0, 10.0, 1.0], [np.nan, np.nan, 0.0]]])
    peaks = np.array([[[11.0, 10.0], [20.0, 20.0]],
                      [[30.0, 30.0], [0.0, 0.0]]])
    return peaks, keypoints


def test_visibility_threshold_is_an_explicit_rule():
    _, keypoints = _two_part_case()
    assert visible_keypoints(keypoints, 0.5).tolist() == [[True, False], [True, False]]
    assert visible_keypoints(keypoints, 0.0).tolist() == [[True, True], [True, False]]


def test_pck_by_hand():
    peaks, keypoints = _two_part_case()
    visible = visible_keypoints(keypoints, 0.0)
    result = pck(peaks, keypoints, visible, radius=2.0, part_names=["head", "foot"])
    # hits: frame 0 head (1 px away) yes, frame 0 foot (42 px) no, frame 1 head (~28 px) no.
    assert result["overall"] == pytest.approx(1 / 3)
    assert result["per_part"] == {"head": 0.5, "foot": 0.0}
    strict = pck(peaks, keypoints, visible_keypoints(keypoints, 0.5), radius=2.0, part_names=["head", "foot"])
    assert strict["overall"] == 0.5 and strict["per_part"]["foot"] is None


def test_chance_and_ceiling_on_a_tiny_grid():
    grid = WindowGrid((64, 32), (8, 4), window=3)         # centres x in {11.5, 19.5}, y in 11.5..51.5
    keypoints = np.array([[[11.5, 11.5, 1.0]]])
    visible = np.array([[True]])
    # Radius 1: only the window centred on the keypoint is near: chance 1/12, ceiling 1.
    assert chance_pck(keypoints, visible, grid, 1.0)["overall"] == pytest.approx(1 / 12)
    assert ceiling_pck(keypoints, visible, grid, 1.0)["overall"] == 1.0
    # Radius 8: also the next column and the next row: 3 of 12.
    assert chance_pck(keypoints, visible, grid, 8.0)["overall"] == pytest.approx(3 / 12)
    far = np.array([[[200.0, 200.0, 1.0]]])
    assert ceiling_pck(far, visible, grid, 8.0)["overall"] == 0.0


def test_position_prior_is_the_nearest_centre_to_the_mean_position():
    grid = WindowGrid((64, 32), (8, 4), window=3)
    keypoints = np.array([[[10.0, 40.0, 1.0]], [[14.0, 48.0, 1.0]], [[100.0, 100.0, 0.0]]])
    prior = position_prior(keypoints, visible_keypoints(keypoints, 0.5), grid)
    assert prior.tolist() == [[11.5, 43.5]]               # mean (12, 44); the invisible row is ignored
    with pytest.raises(ValueError, match="no fitting frame shows part"):
        position_prior(keypoints[2:], visible_keypoints(keypoints[2:], 0.5), grid, ["head"])


def test_match_parts_recovers_a_permutation_from_the_fitting_frames():
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(0, 60, (20, 4, 2)), np.ones((20, 4, 1))], axis=-1)
    order = np.array([2, 0, 3, 1])                       # map j shows part order[j]
    peaks = keypoints[:, order, :2] + rng.normal(0, 0.5, (20, 4, 2))
    perm = match_parts(peaks, keypoints, visible_keypoints(keypoints, 0.5))
    np.testing.assert_allclose(peaks[:, perm], keypoints[..., :2], atol=3)
    assert [int(order[p]) for p in perm] == [0, 1, 2, 3]


# ============================================================================ SSN training

def test_train_ssn_lowers_the_loss_and_records_every_step():
    torch.manual_seed(0)
    ssn = SelfSeparatedNetwork(8, 3, window=3, hidden=16)
    generator = torch.Generator().manual_seed(0)
    run = train_ssn(ssn, lambda: {"x": torch.randn(16, 8, 6, 6, generator=generator)}, steps=60, seed=0,
                    lr=3e-3, labels={"distribution": "gaussian"}, progress=False)
    assert len(run.losses) == 60 and not ssn.training
    assert run.losses[0] == pytest.approx(math.log(3), abs=0.3)
    assert run.final_loss() < 0.5 * run.log_n
    first = run.first_step_below(0.5)
    assert first is not None and run.losses[first] < 0.5 * run.log_n
    assert all(v >= 0.5 * run.log_n for v in run.losses[:first])
    record = run.record()
    assert record["distribution"] == "gaussian" and record["steps"] == 60 and record["num_parts"] == 3


def test_train_ssn_is_reproducible_under_the_same_seeds():
    def once():
        torch.manual_seed(1)
        ssn = SelfSeparatedNetwork(4, 2, window=3, hidden=8)
        generator = torch.Generator().manual_seed(1)
        return train_ssn(ssn, lambda: {"x": torch.rand(4, 4, 5, 5, generator=generator)}, steps=5, seed=1,
                         progress=False).losses
    assert once() == once()


def test_an_untrained_run_has_no_final_loss():
    from ssn3dlib.studies.toolkit import SSNRun

    with pytest.raises(ValueError, match="never trained"):
        SSNRun(SelfSeparatedNetwork(4, 2, window=3, hidden=8), seed=0).final_loss()


def test_attention_maps_in_chunks_equal_one_pass():
    ssn = SelfSeparatedNetwork(4, 3, window=3, hidden=8).eval()
    x = torch.randn(10, 4, 6, 5)
    with torch.no_grad():
        whole = ssn(x, with_loss=False).maps
    torch.testing.assert_close(attention_maps(ssn, x, chunk=3), whole)
    doubled = attention_maps(ssn, x / 2, chunk=4, features=lambda c: c * 2)
    torch.testing.assert_close(doubled, whole)


# ============================================================================ records and claims

def test_to_jsonable_cleans_what_json_cannot_hold(tmp_path):
    value = {1: (np.float32(0.5), np.int64(3), float("nan")), "a": np.array([1.0, np.inf]),
             "p": tmp_path, "b": np.bool_(True)}
    out = to_jsonable(value)
    assert out == {"1": [0.5, 3, None], "a": [1.0, None], "p": str(tmp_path), "b": True}
    assert to_jsonable({"x": 1.234567}, digits=2) == {"x": 1.23}
    json.dumps(out, allow_nan=False)


def test_writes_are_atomic_and_read_back(tmp_path, monkeypatch):
    path = write_json(tmp_path / "sub" / "r.json", {"x": np.float64(1.5)})
    assert read_json(path) == {"x": 1.5}
    assert read_json(tmp_path / "missing.json") is None
    # A write that fails halfway leaves the previous file untouched.
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        write_json(path, {"x": 2})
    monkeypatch.undo()
    assert read_json(path) == {"x": 1.5}
    assert write_metrics({"wall_time_s": 1.0}, tmp_path).name == "metrics.json"


def test_claims_round_trip_and_refuse_what_they_do_not_know():
    claims = [Claim("a", "Fig. 5", "noise converges", np.bool_(True), "median step 23"),
              Claim("b", "Fig. 5", "anything", False, paper_claim=False)]
    records = claims_to_records(claims)
    assert json.loads(json.dumps(records))[0]["holds"] is True
    back = claims_from_records(records)
    assert back == claims and by_name(back)["b"].statement == "not in the paper"
    with pytest.raises(ValueError, match="unknown keys"):
        Claim.from_dict({**records[0], "verdict": "yes"})
    with pytest.raises(ValueError, match="unique"):
        claims_to_records([claims[0], claims[0]])


# ============================================================================ engine runs

def test_result_neutral_keys_do_not_make_a_run_stale(tiny_world):
    base = tiny_config(tiny_world).to_dict()
    threads = tiny_config(tiny_world, "train.num_threads=2", "data.num_workers=1").to_dict()
    lr = tiny_config(tiny_world, "optim.lr=0.01").to_dict()
    assert config_differences(base, threads) == []
    assert config_differences(base, lr) == ["optim.lr"]


def test_train_or_reuse_loads_a_finished_run_and_retrains_a_changed_one(tiny_world, tmp_path):
    config = tiny_config(tiny_world)
    first = train_or_reuse(config, tmp_path / "run")
    assert not was_loaded(first, config)
    again = train_or_reuse(tiny_config(tiny_world, "train.num_threads=1"), tmp_path / "run")
    assert was_loaded(again, config) and again.final["rank1"] == first.final["rank1"]
    changed = tiny_config(tiny_world, "optim.lr=0.0001")
    retrained = train_or_reuse(changed, tmp_path / "run")
    assert not was_loaded(retrained, changed)
    losses = epoch_losses(tmp_path / "run", has_ssn=True)
    assert losses["steps"] > 0 and losses["final_ssn_loss"] is not None
    assert epoch_losses(tmp_path / "run", has_ssn=False)["final_ssn_loss"] is None


def test_distinctness_counts_distinct_peaks_per_frame():
    from ssn3dlib.studies.toolkit import distinctness

    peaks = np.array([[[0, 0], [0, 0], [1, 1]],          # 2 distinct of 3
                      [[0, 0], [1, 0], [2, 2]]])         # 3 of 3
    assert distinctness(peaks) == pytest.approx((2 / 3 + 1) / 2)


def test_chance_rank1_counts_true_matches_among_valid_gallery_entries():
    from types import SimpleNamespace

    from ssn3dlib.studies.toolkit.engine_runs import chance_rank1

    def t(pid, camid):
        return SimpleNamespace(pid=pid, camid=camid)

    dataset = SimpleNamespace(query=[t(1, 1), t(2, 1)], gallery=[t(1, 2), t(1, 1), t(2, 2), t(2, 2), t(3, 2)])
    # query 1: valid gallery = all but (1, 1) -> 1 match in 4; query 2: 2 matches in 5
    assert chance_rank1(dataset) == pytest.approx(100 * (1 / 4 + 2 / 5) / 2)


def test_part_hits_are_per_part_pck_with_nan_where_invisible():
    from ssn3dlib.studies.toolkit import chance_part_hits, part_hits
    peaks = np.array([[[0.0, 0.0], [5.0, 5.0]]])
    kp = np.array([[[1.0, 1.0, 1.0], [9.0, 5.0, 0.0]]])
    vis = np.array([[True, False]])
    np.testing.assert_equal(part_hits(peaks, kp, vis, radius=1.5), [[1.0, np.nan]])
    np.testing.assert_equal(part_hits(peaks, kp, vis, radius=1.0), [[0.0, np.nan]])
    grid = WindowGrid((4, 4), (4, 4), 3)                  # 2 x 2 windows centred at pixels 1.5 and 2.5
    chance = chance_part_hits(kp, vis, grid, radius=0.8)   # only the window at (1.5, 1.5) is within 0.8 of (1, 1)
    np.testing.assert_equal(chance, [[0.25, np.nan]])


def test_a_peak_follows_the_motion_of_its_part_within_the_radius():
    from ssn3dlib.studies.toolkit import chance_follows_motion, follows_motion
    kp_a = np.array([[[1.5, 1.5, 1.0], [1.5, 1.5, 1.0]]])
    kp_b = np.array([[[2.5, 1.5, 1.0], [2.5, 1.5, 1.0]]])                 # both parts moved 1 px right
    peaks_a = np.array([[[1.5, 1.5], [1.5, 1.5]]])
    peaks_b = np.array([[[2.5, 1.5], [1.5, 1.5]]])                        # one moved with it, one stayed
    both = np.array([[True, True]])
    np.testing.assert_equal(follows_motion(peaks_a, peaks_b, kp_a, kp_b, both, radius=0.5), [[1.0, 0.0]])
    np.testing.assert_equal(follows_motion(peaks_a, peaks_b, kp_a, kp_b, both, radius=1.0), [[1.0, 1.0]])
    grid = WindowGrid((4, 4), (4, 4), 3)
    # of the 16 (a, b) window pairs, b - a = (+1, 0) for 2 of them (within 0.5 of the keypoint's step)
    chance = chance_follows_motion(kp_a, kp_b, np.array([[True, False]]), grid, radius=0.5)
    np.testing.assert_equal(chance, [[2 / 16, np.nan]])


def test_the_verdict_figure_draws_each_comparison_where_its_numbers_say():
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from ssn3dlib.studies.toolkit.verdict_figure import plot_comparisons

    def claim(name, low, effect, high, verdict):
        cmp = {"effect": effect, "low": low, "high": high, "mde": 4.0, "verdict": verdict, "n": {"queries": 9}}
        return Claim(name, "Fig. 1", "s", None, comparison=cmp)

    claims = [claim("win", 2.0, 5.0, 8.0, "reproduced"), Claim("words only", "Fig. 1", "s", None),
              claim("tie", -3.0, 0.0, 3.0, "inconclusive"), claim("loss", -9.0, -6.0, -1.0, "contradicted")]
    fig = plot_comparisons(claims, "three verdicts")
    ax = fig.axes[0]
    # Top to bottom in the given order; the claim without a comparison is left out.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["loss", "tie", "win"]
    drawn = {}
    for container in ax.containers:                                # one errorbar per claim
        dot, _, (interval,) = container
        x, y = dot.get_data()
        (start, _), (end, _) = interval.get_segments()[0]
        drawn[int(y[0])] = (float(x[0]), (float(start), float(end)), mcolors.to_hex(dot.get_color()))
    assert drawn == {0: (-6.0, (-9.0, -1.0), mcolors.to_hex("tab:red")),
                     1: (0.0, (-3.0, 3.0), mcolors.to_hex("tab:grey")),
                     2: (5.0, (2.0, 8.0), mcolors.to_hex("tab:green"))}
    plt.close(fig)
    with pytest.raises(ValueError, match="no claim with a comparison"):
        plot_comparisons([Claim("words only", "Fig. 1", "s", None)], "none")
