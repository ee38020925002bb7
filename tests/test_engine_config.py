"""Run configs: paper defaults, YAML files and overrides, and immediate clear errors."""
from __future__ import annotations

import pytest
import yaml

from ssn3dlib.engine.config import CONFIG_DIR, ConfigError, RunConfig, load_config, save_config


def test_defaults_are_the_papers_recipe():
    c = load_config()
    assert (c.data.clip_len, c.data.stride, tuple(c.data.size)) == (4, 8, (256, 128))
    assert (c.data.identities_per_batch, c.data.instances_per_identity) == (8, 4)
    assert (c.model.backbone, c.model.num_parts, c.model.window, c.model.embedding_dim) == \
        ("resnet50-layer3", 9, 3, 1024)
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay) == ("adam", 3e-4, 5e-4)
    assert (c.schedule.milestones, c.schedule.gamma, c.train.epochs) == ([50], 0.1, 150)
    assert c.eval.clip_len == 32


@pytest.mark.parametrize("dataset, expected", [("mars", 0.1), ("ilidsvid", 0.1), ("dukemtmc-videoreid", 0.05),
                                               ("pku_reid_subset", 0.1)])
def test_lambda_defaults_to_the_papers_value_per_dataset(dataset, expected):
    assert load_config(None, [f"data.name={dataset}"]).lambda_ssn() == expected
    assert load_config(None, [f"data.name={dataset}", "loss.lambda_ssn=0.3"]).lambda_ssn() == 0.3


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path, tmp_path):
    config = load_config(path)
    assert load_config(path.stem) == config                      # by name too
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config


def test_overrides_parse_yaml_values_and_nested_options():
    c = load_config(None, ["optim.lr=1e-4", "schedule.milestones=[40, 80]", "data.options.split=3",
                           "model.backbone_weights=null", "train.channels_last=true"])
    assert c.optim.lr == pytest.approx(1e-4) and isinstance(c.optim.lr, float)
    assert c.schedule.milestones == [40, 80]
    assert c.data.options == {"split": 3}
    assert c.train.channels_last is True


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 3e-4\n")   # PyYAML reads this as a string
    assert load_config(path).optim.lr == pytest.approx(3e-4)


@pytest.mark.parametrize("overrides, message", [
    (["optim.lrr=1e-4"], "did you mean 'optim.lr'"),
    (["trian.epochs=3"], "did you mean 'train'"),
    (["loss.lambda_ssn=-0.1"], "loss.lambda_ssn must be >= 0"),
    (["model.backbone=resnet51-layer3"], "model.backbone 'resnet51-layer3' does not exist"),
    (["model.backbone=resnet50-layer5"], "does not exist"),
    (["model.name=ssn4d"], "model.name must be one of"),
    (["model.strategy=semisupervised"], "did you mean 'semi-supervised'"),
    (["data.name=market"], "data.name must be one of"),
    (["train.epochs=0"], "train.epochs must be >= 1"),
    (["train.epochs=1.5"], "train.epochs must be an integer"),
    (["train.channels_last=yes please"], "must be true or false"),
    (["optim.lr=0"], "optim.lr must be > 0"),
    (["data.identities_per_batch=1"], "data.identities_per_batch must be >= 2"),
    (["data.clip_len=0"], "data.clip_len must be >= 1"),
    (["data.short=pad"], "data.short must be one of"),
    (["schedule.milestones=[50, 40]"], "increasing"),
    (["train.amp=fp8"], "train.amp must be one of"),
    (["train.device=gpu"], "train.device must be auto, cpu"),
    (["eval.ap=interpolated"], "eval.ap must be one of"),
    (["model.options.reductio=4"], "not arguments of model 'ssn3d'"),
    (["model.options.train_clip_len=8"], "set data.clip_len instead"),
    (["data.name=mars", "data.world.seed=1"], "data.world describes a synthetic world"),
    (["data.world.num_identities=1"], "data.world: WorldConfig.num_identities"),
    (["model.num_parts=6"], "part_set 'benchmark9' has 9 parts"),
    (["optim.lr"], "must look like section.key=value"),
    (["optim.lr.x=1"], "optim.lr must be a number"),
])
def test_bad_configs_fail_at_once_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, overrides)


def test_unknown_key_in_a_file_names_the_file_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"backbone": "resnet18-layer2", "embeding_dim": 64}}))
    with pytest.raises(ConfigError,
                       match=r"unknown config key 'model.embeding_dim'; did you mean 'model.embedding_dim'"):
        load_config(path)


def test_missing_config_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="synthetic_cpu"):
        load_config("no_such_config")


def test_baseline_options_are_checked_against_that_model():
    assert load_config(None, ["model.name=st-attention", "model.options.reduction=8"]).model.options == \
        {"reduction": 8}
    with pytest.raises(ConfigError, match="not arguments of model 'tp'"):
        load_config(None, ["model.name=tp", "model.options.reduction=8"])


def test_config_object_is_accepted_and_not_shared():
    base = RunConfig()
    changed = load_config(base, ["train.epochs=3"])
    assert changed.train.epochs == 3 and base.train.epochs == 150
