"""Models declare what they need and give (ModelCapabilities) and the engine asks them rather
than testing model names: a new part model with an SSN is one class and one register_model line."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from ssn3dlib.engine import ConfigError, build, evaluate, load_config, read_metrics, train
from ssn3dlib.engine.evaluator import run_description
from ssn3dlib.models import (
    MODELS,
    SSN3D,
    STRATEGIES,
    EmbeddingHead,
    Keypoints,
    LabelledFrames,
    ModelCapabilities,
    SelfSeparatedNetwork,
    VideoOutput,
    build_backbone,
    keypoints_to_windows,
    model_capabilities,
    register_model,
)

from engine_helpers import tiny_config

#: What SSN3D declares beyond every strategy's ssn=True, parts=True, train_clip_len=True.
SSN3D_BY_STRATEGY = {
    "unsupervised": dict(ssn_loss=True, attention_maps=True),
    "semi-supervised": dict(keypoints_in_training=True, ssn_loss=True, attention_maps=True),
    "supervised": dict(keypoints_in_training=True, keypoints_at_test=True, unused_parameters=True),
}


def configured_models():
    """(name, strategy) for every registered model; strategy None for models that take none."""
    return [(name, strategy) for name in sorted(MODELS)
            for strategy in (STRATEGIES if "strategy" in inspect.signature(MODELS[name]).parameters else [None])]


def tiny_model_config(name, strategy=None, *overrides):
    """configs/synthetic_tiny.yaml with another model (validation needs no data)."""
    return load_config("synthetic_tiny", [f"model.name={name}", *overrides] +
                       ([f"model.strategy={strategy}"] if strategy else []))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ssn3d_declares_per_strategy(strategy):
    expected = ModelCapabilities(ssn=True, parts=True, train_clip_len=True, **SSN3D_BY_STRATEGY[strategy])
    assert model_capabilities("ssn3d", strategy=strategy) == SSN3D.capabilities(strategy=strategy) == expected
    assert expected.uses_keypoints == (strategy != "unsupervised")


def test_ssn3d_capabilities_default_to_its_constructor_and_refuse_unknown_strategies():
    assert SSN3D.capabilities() == SSN3D.capabilities(strategy=inspect.signature(SSN3D).parameters["strategy"].default)
    with pytest.raises(ValueError, match="unknown SSN strategy"):
        SSN3D.capabilities(strategy="weakly")
    with pytest.raises(ValueError, match="unknown model 'lstm'"):
        model_capabilities("lstm")


@pytest.mark.parametrize("name", ["tp", "c3d", "st-attention"])
def test_baselines_need_no_keypoints_and_give_only_an_embedding(name):
    caps = model_capabilities(name, backbone="resnet18-layer2", embedding_dim=64)
    assert caps == ModelCapabilities() and not caps.uses_keypoints


@pytest.mark.parametrize("name, strategy", configured_models())
def test_declarations_match_what_the_built_model_does(name, strategy):
    """Built through the engine: maps, a trainable SSN loss, parameters without gradient and
    test-time keypoints are exactly what the model declares."""
    config = tiny_model_config(name, strategy)
    caps = config.model.capabilities()
    model = build.build_model(config)
    b, t, n, size = 2, 4, config.model.num_parts, tuple(config.data.size)
    clips = torch.randn(b, t, 3, *size)

    def keypoints(*lead):
        xy = torch.stack([torch.rand(*lead, n) * size[1], torch.rand(*lead, n) * size[0]], dim=-1)
        return Keypoints(xy, torch.ones(*lead, n, dtype=torch.bool))

    extra = {}
    if caps.keypoints_in_training:
        extra = dict(keypoints=keypoints(b, t), labelled=LabelledFrames(torch.randn(2, 3, *size), keypoints(2)))
    out = model(clips, **extra)
    assert (out.maps is not None) == caps.attention_maps
    assert (out.ssn_loss is not None and out.ssn_loss.requires_grad) == caps.ssn_loss
    loss = out.embedding.sum() + (out.ssn_loss if caps.ssn_loss else 0)
    loss.backward()
    assert any(p.grad is None for p in model.parameters()) == caps.unused_parameters
    model.eval()
    if caps.keypoints_at_test:
        with pytest.raises(ValueError, match="keypoints"):
            model(clips)
        assert model(clips, keypoints=keypoints(b, t)).embedding.shape == (b, 64)
    else:
        assert model(clips).embedding.shape == (b, 64)


@pytest.mark.parametrize("name, strategy", configured_models())
def test_engine_decisions_follow_the_declaration(name, strategy):
    config = tiny_model_config(name, strategy)
    caps = config.model.capabilities()
    assert build.needs_keypoints(config) == caps.uses_keypoints
    assert build.keypoints_at_test_time(config) == caps.keypoints_at_test
    assert ("train_clip_len" in build.model_kwargs(config)) == caps.train_clip_len
    described = run_description(config)
    assert (described["strategy"] is not None) == (described["lambda_ssn"] is not None) == caps.ssn


@pytest.mark.parametrize("name, strategy, refused", [
    ("ssn3d", "semi-supervised", True), ("ssn3d", "supervised", True), ("ssn3d", "unsupervised", False),
    ("tp", None, False)])
def test_part_count_must_match_the_part_set_only_where_keypoints_name_the_parts(name, strategy, refused):
    overrides = ["model.num_parts=6"]
    if refused:
        with pytest.raises(ConfigError, match="part_set 'benchmark9' has 9 parts"):
            tiny_model_config(name, strategy, *overrides)
    else:
        assert tiny_model_config(name, strategy, *overrides).model.num_parts == 6


# ----------------------------------------------------------------------------- a new model

class MeanPoolSSN(nn.Module):
    """A toy part model: semi-supervised SSN parts per frame, averaged over parts, window and time."""

    #: How many labelled frames each training forward received (what the engine passed).
    labelled_seen: list = []

    def __init__(self, backbone: str = "resnet18-layer2", num_parts: int = 9, hidden: int = 32,
                 embedding_dim: int = 64):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.ssn = SelfSeparatedNetwork(self.backbone.out_channels, num_parts, hidden=hidden,
                                        strategy="semi-supervised")
        self.head = EmbeddingHead(self.backbone.out_channels, embedding_dim)

    @classmethod
    def capabilities(cls, **_) -> ModelCapabilities:
        return ModelCapabilities(keypoints_in_training=True, ssn=True, ssn_loss=True, attention_maps=True,
                                 parts=True)

    def forward(self, clips, keypoints=None, labelled=None) -> VideoOutput:
        b, t = clips.shape[:2]
        out = self.ssn(self.backbone(clips.flatten(0, 1)))
        loss = out.loss
        if labelled is not None and self.training:
            type(self).labelled_seen.append(len(labelled.images))
            feats = self.backbone(labelled.images)
            windows, visible = keypoints_to_windows(labelled.keypoints.xy, labelled.keypoints.visible,
                                                    clips.shape[-2:], feats.shape[-2:], self.ssn.window)
            is_labelled = torch.ones(len(feats), dtype=torch.bool)
            loss = (loss + self.ssn(feats, windows, visible, labelled=is_labelled).loss) / 2
        embedding = self.head(out.parts.mean(dim=(1, 3, 4)).reshape(b, t, -1).mean(dim=1))
        return VideoOutput(embedding, ssn_loss=loss, maps=out.maps.reshape(b, t, *out.maps.shape[1:]))


@pytest.fixture
def toy_model():
    register_model("toy-ssn", MeanPoolSSN)
    MeanPoolSSN.labelled_seen.clear()
    yield "toy-ssn"
    del MODELS["toy-ssn"]


def test_registration_refuses_a_taken_name_or_a_class_without_capabilities(toy_model):
    with pytest.raises(ValueError, match="'toy-ssn' is already registered"):
        register_model(toy_model, MeanPoolSSN)
    with pytest.raises(TypeError, match="must declare a class method capabilities"):
        register_model("plain", nn.Linear)
    assert "plain" not in MODELS


def test_a_registered_part_model_trains_and_evaluates_through_the_engine(toy_model, tiny_world, tmp_path):
    config = tiny_config(tiny_world, f"model.name={toy_model}", "train.epochs=1", "train.max_steps_per_epoch=2")
    assert build.needs_keypoints(config) and not build.keypoints_at_test_time(config)
    assert isinstance(build.build_model(config), MeanPoolSSN)
    with pytest.raises(ConfigError, match="has 9 parts"):
        tiny_config(tiny_world, f"model.name={toy_model}", "model.num_parts=6")

    result = train(config, tmp_path, progress=False)
    assert MeanPoolSSN.labelled_seen and all(n > 0 for n in MeanPoolSSN.labelled_seen)
    steps = read_metrics(tmp_path).query("kind == 'step'")
    assert len(steps) == 2 and (steps["ssn"] > 0).all()
    assert steps["loss"].tolist() == pytest.approx((steps["triplet"] + config.lambda_ssn() * steps["ssn"]).tolist())
    metrics = evaluate(result.paths["last"], progress=False)
    assert metrics["model"] == toy_model and metrics["mAP"] == result.final["mAP"]
    assert metrics["lambda_ssn"] == config.lambda_ssn()
