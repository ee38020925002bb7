"""SSN3D, the baselines and the backbones: shapes, clip lengths, independence, weights."""
import urllib.error

import pytest
import torch
import torchvision

from ssn3dlib.models import (
    KNOWN_BACKBONES,
    MODELS,
    SSN3D,
    GroupedConv3dBlock,
    Keypoints,
    LabelledFrames,
    build_backbone,
    build_model,
)

IMAGE = (128, 64)


def clips(b=2, t=4):
    return torch.randn(b, t, 3, *IMAGE)


def random_keypoints(*lead, n=9):
    xy = torch.stack([torch.rand(*lead, n) * IMAGE[1], torch.rand(*lead, n) * IMAGE[0]], dim=-1)
    return Keypoints(xy=xy, visible=torch.rand(*lead, n) > 0.2)


@pytest.mark.parametrize("shared", [True, False])
def test_ssn3d_accepts_train_and_test_clip_lengths(tiny_ssn3d_kwargs, shared):
    model = SSN3D(strategy="unsupervised", shared_classifier=shared, **tiny_ssn3d_kwargs)
    out = model(clips(t=4))
    assert out.embedding.shape == (2, 64)
    assert out.maps.shape == (2, 4, 9, 14, 6)       # 16 x 8 map, valid 3 x 3 windows
    assert out.ssn_loss is not None and out.ssn_loss.requires_grad
    model.eval()
    with torch.no_grad():
        test_out = model(clips(t=32))
    assert test_out.embedding.shape == (2, 64) and test_out.ssn_loss is None
    assert model.ssn.num_classifiers == (1 if shared else 4)


def test_part_blocks_do_not_share_information():
    block = GroupedConv3dBlock(num_groups=3, in_channels=4, out_channels=5).eval()
    x = torch.randn(2, 3, 4, 4, 3, 3, requires_grad=True)
    block(x)[:, 1].sum().backward()
    grad_per_part = x.grad.abs().sum(dim=(0, 2, 3, 4, 5))
    assert grad_per_part[1] > 0 and grad_per_part[0] == 0 and grad_per_part[2] == 0


def test_semi_supervised_labelled_frames_feed_only_the_ssn_loss(tiny_ssn3d_kwargs):
    model = SSN3D(strategy="semi-supervised", **tiny_ssn3d_kwargs)
    x = clips()
    labelled = LabelledFrames(images=torch.randn(4, 3, *IMAGE), keypoints=random_keypoints(4))
    torch.manual_seed(3)
    plain = model(x)
    torch.manual_seed(3)
    with_labels = model(x, labelled=labelled)
    torch.testing.assert_close(with_labels.embedding, plain.embedding)
    assert not torch.allclose(with_labels.ssn_loss, plain.ssn_loss)
    with_labels.ssn_loss.backward()
    assert model.ssn.classifiers[0].conv.weight.grad.abs().sum() > 0


def test_supervised_ssn3d_needs_keypoints_and_has_no_maps(tiny_ssn3d_kwargs):
    model = SSN3D(strategy="supervised", **tiny_ssn3d_kwargs)
    with pytest.raises(ValueError, match="keypoints"):
        model(clips())
    out = model(clips(), keypoints=random_keypoints(2, 4))
    assert out.embedding.shape == (2, 64) and out.maps is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_embeds_clips_of_any_length(name, tiny_ssn3d_kwargs):
    kwargs = {"backbone": "resnet18-layer2", "embedding_dim": 64}
    if name == "ssn3d":
        kwargs = dict(tiny_ssn3d_kwargs, strategy="unsupervised")
    model = build_model(name, **kwargs)
    out = model(clips(b=3, t=4))
    assert out.embedding.shape == (3, 64)
    out.embedding.sum().backward()
    model.eval()
    with torch.no_grad():
        assert model(clips(b=1, t=32)).embedding.shape == (1, 64)


def test_temporal_pooling_ignores_frame_order_but_3d_conv_does_not():
    x = clips()
    reversed_x = x.flip(1)
    tp = build_model("tp", backbone="resnet18-layer2", embedding_dim=32).eval()
    c3d = build_model("c3d", backbone="resnet18-layer2", hidden=32, embedding_dim=32).eval()
    with torch.no_grad():
        torch.testing.assert_close(tp(x).embedding, tp(reversed_x).embedding, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(c3d(x).embedding, c3d(reversed_x).embedding, atol=1e-4)


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lstm")


@pytest.mark.parametrize("name", sorted(KNOWN_BACKBONES))
def test_backbone_channels_stride_and_feature_size(name):
    backbone = build_backbone(name)
    for size in [(128, 64), (120, 60), (256, 128)]:
        out = backbone(torch.randn(1, 3, *size))
        assert out.shape[1] == backbone.out_channels
        assert tuple(out.shape[-2:]) == backbone.feature_size(size)


def test_paper_backbones_have_the_documented_shapes():
    assert build_backbone("resnet50-layer3")(torch.randn(1, 3, 256, 128)).shape == (1, 1024, 16, 8)
    assert build_backbone("resnet34-layer2")(torch.randn(1, 3, 120, 60)).shape == (1, 128, 15, 8)


def test_backbone_loads_weights_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    backbone = build_backbone("resnet18-layer2", weights=path)
    torch.testing.assert_close(backbone.body[0].weight, reference.conv1.weight)
    torch.testing.assert_close(backbone.body[5][0].conv1.weight, reference.layer2[0].conv1.weight)


def test_backbone_rejects_a_file_of_another_architecture(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(Exception, match="size mismatch|not a resnet18"):
        build_backbone("resnet18-layer2", weights=path)
    with pytest.raises(FileNotFoundError):
        build_backbone("resnet18-layer2", weights=tmp_path / "missing.pth")


def test_unreachable_imagenet_weights_fail_with_instructions(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"could not load ImageNet weights.*download\.pytorch\.org"):
        build_backbone("resnet50-layer3", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="unknown torchvision weights"):
        build_backbone("resnet50-layer3", weights="IMAGENET9K")


@pytest.mark.parametrize("name", ["resnet50-layer5", "vgg16-layer2", "resnet"])
def test_unknown_backbone_names_are_rejected(name):
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone(name)
