"""Config loading: defaults filled, typed dotted overrides, unknown keys rejected, resolved config saved."""

from __future__ import annotations

import os

import pytest
import yaml

from dmha.common.errors import UserError
from dmha.config import apply_overrides, config_diff, load_config, save_config


def _write(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_yaml_1_1_numbers(tmp_path):
    cfg = load_config(_write(tmp_path, "model:\n  heads: 8\ntrain:\n  lr: 1e-4\n  max_epochs: 5\n"))
    assert cfg["train"]["lr"] == 1e-4 and isinstance(cfg["train"]["lr"], float)  # YAML 1.1: a string
    assert cfg["train"]["max_epochs"] == 5 and cfg["train"]["batch_size"] == 128
    assert cfg["features"]["n_mels"] == 80 and cfg["features"]["norm"] == "cmn"
    assert cfg["model"]["heads"] == 8 and cfg["model"]["channels"] == [128, 256, 512, 1024]
    assert cfg["loss"] == {"type": "amsoftmax", "scale": 30.0, "margin": 0.4}


def test_overrides_coerce_types(tmp_path):
    cfg = load_config(_write(tmp_path, "model:\n  heads: 8\n"),
                      "train.lr=1e-3 train.max_epochs=7 train.bf16=true model.heads=16 "
                      "model.channels=[4,8,8,16] features.norm=cmvn loss.margin=0.3 train.batch_size=2e2")
    t = cfg["train"]
    assert t["lr"] == 1e-3 and isinstance(t["lr"], float)
    assert t["max_epochs"] == 7 and isinstance(t["max_epochs"], int)
    assert t["batch_size"] == 200 and isinstance(t["batch_size"], int)
    assert t["bf16"] is True
    assert cfg["model"]["heads"] == 16 and cfg["model"]["channels"] == [4, 8, 8, 16]
    assert cfg["features"]["norm"] == "cmvn" and cfg["loss"]["margin"] == 0.3


@pytest.mark.parametrize("override, words", [
    ("train.lrr=1", ["train.lrr", "'lrr'"]),
    ("nosuch.x=1", ["'nosuch'"]),
    ("train.max_epochs=2.5", ["train.max_epochs", "integer"]),
    ("train.bf16=maybe", ["train.bf16", "true or false, or auto"]),
    ("train.lr=fast", ["train.lr", "number"]),
    ("train.deterministic=maybe", ["train.deterministic"]),
    ("train.lr", ["section.key=value"]),
])
def test_bad_overrides_are_user_errors(tmp_path, override, words):
    with pytest.raises(UserError) as e:
        load_config(_write(tmp_path, "train: {}\n"), override)
    for w in words:
        assert w in str(e.value)


def test_unknown_keys_in_yaml(tmp_path):
    with pytest.raises(UserError, match="lr_patiense"):
        load_config(_write(tmp_path, "train:\n  lr_patiense: 3\n"))
    with pytest.raises(UserError, match="trian"):
        load_config(_write(tmp_path, "trian:\n  lr: 1\n"))
    with pytest.raises(UserError, match="hedas"):
        load_config(_write(tmp_path, "model:\n  hedas: 3\n"))
    with pytest.raises(UserError, match="c.yaml"):
        load_config(_write(tmp_path, "train: [1, 2\n"))


def test_resolved_config_saved_and_reloads_identically(tmp_path):
    cfg = load_config(_write(tmp_path, "model:\n  heads: 8\n"), ["train.seed=5", "model.channels=[4,8,8,8]"])
    out = tmp_path / "exp" / "config.yaml"
    save_config(cfg, out)
    raw = yaml.safe_load(out.read_text())
    assert list(raw) == ["features", "model", "loss", "train"]
    assert raw["train"]["seed"] == 5 and raw["features"]["sample_rate"] == 16000
    assert load_config(out) == cfg
    assert config_diff(cfg, load_config(out, "train.seed=6")) == ["train.seed: 5 -> 6"]
    # saving the same config again leaves the file (and its mtime, which extraction stamps key on) alone
    os.utime(out, (1_000_000_000, 1_000_000_000))
    save_config(cfg, out)
    assert out.stat().st_mtime == 1_000_000_000
    save_config(load_config(out, "train.seed=6"), out)
    assert out.stat().st_mtime != 1_000_000_000 and yaml.safe_load(out.read_text())["train"]["seed"] == 6


def test_apply_overrides_quoting():
    cfg = {"train": {"name": "a"}}
    apply_overrides(cfg, "train.name='two words'")
    assert cfg["train"]["name"] == "two words"


def test_deterministic_must_be_a_boolean_and_is_a_no_op_on_cpu(tmp_path):
    import torch

    from dmha.common.device import use_deterministic_kernels

    assert load_config(_write(tmp_path, "train: {}\n"))["train"]["deterministic"] is False
    with pytest.raises(UserError, match=r"train.deterministic=sometimes: expected true or false"):
        load_config(_write(tmp_path, "train:\n  deterministic: sometimes\n"))
    # CPU training repeats itself already: nothing global is switched (it would slow other code down)
    assert use_deterministic_kernels(torch.device("cpu")) == "deterministic (CPU kernels are)"
    assert not torch.are_deterministic_algorithms_enabled()
