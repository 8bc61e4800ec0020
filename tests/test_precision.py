"""bf16 settings: true/false/auto resolve per device, autocast really lowers the matmul precision,
configs accept "auto" and reject anything else with the key named."""

from __future__ import annotations

import pytest
import torch

from dmha.common.errors import UserError
from dmha.config import load_config
from dmha.models.precision import bf16_autocast, check_bf16_setting, describe, native_bf16, resolve_bf16


def test_auto_follows_the_hardware_and_explicit_values_win():
    assert resolve_bf16("auto", "cpu") is native_bf16("cpu")
    assert resolve_bf16(True, "cpu") is True and resolve_bf16(False, "cpu") is False
    if not torch.cuda.is_available():
        assert native_bf16("cuda") is False and resolve_bf16("auto", "cuda") is False


@pytest.mark.parametrize("bad", ["yes", 1, None, "bf16"])
def test_bad_setting_names_the_key(bad):
    with pytest.raises(UserError, match="train.bf16.*true, false or auto"):
        check_bf16_setting(bad)


def test_autocast_computes_linear_layers_in_bf16_only_when_enabled():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with bf16_autocast(True, "cpu"):
        assert lin(x).dtype == torch.bfloat16
    with bf16_autocast(False, "cpu"):
        assert lin(x).dtype == torch.float32


def test_describe_says_what_auto_chose():
    text = describe("auto", "cpu")
    assert text.startswith("bf16 autocast" if native_bf16("cpu") else "float32") and "auto" in text
    assert describe(False, "cpu") == "float32" and describe(True, "cpu") == "bf16 autocast"


def test_config_accepts_auto_in_yaml_and_overrides(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("train:\n  bf16: auto\n")
    assert load_config(conf)["train"]["bf16"] == "auto"
    assert load_config(conf, "train.bf16=false")["train"]["bf16"] is False
    conf.write_text("train:\n  bf16: false\n")
    assert load_config(conf, "train.bf16=auto")["train"]["bf16"] == "auto"
    conf.write_text("train:\n  bf16: sometimes\n")
    with pytest.raises(UserError, match="train.bf16"):
        load_config(conf)
