"""utils/parse_options.sh follows Kaldi's semantics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import REPO, run_script


@pytest.fixture
def script(tmp_path: Path) -> Path:
    p = tmp_path / "t.sh"
    p.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        set -euo pipefail
        stage=0
        stop_stage=100
        use_gpu=false
        name=default
        help_message="Usage: t.sh [options] <dir>"
        . {REPO}/utils/parse_options.sh
        echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu name=$name rest=$*"
        """))
    return p


def test_hyphen_and_underscore_set_the_same_variable(script):
    a = run_script(["bash", str(script), "--stop-stage", "5"]).stdout
    b = run_script(["bash", str(script), "--stop_stage", "5"]).stdout
    assert "stop_stage=5" in a
    assert a == b


def test_positional_arguments_are_left(script):
    out = run_script(["bash", str(script), "--stage", "2", "--name=x y", "data/a", "--stage"]).stdout
    assert out.strip() == "stage=2 stop_stage=100 use_gpu=false name=x y rest=data/a --stage"


def test_unknown_option_fails_naming_it(script):
    proc = run_script(["bash", str(script), "--no-such-opt", "1"], check=False)
    assert proc.returncode != 0
    assert "--no-such-opt" in proc.stderr
    assert "stage=" not in proc.stdout


@pytest.mark.parametrize("value,ok", [("true", True), ("false", True), ("yes", False), ("1", False)])
def test_booleans_only_true_or_false(script, value, ok):
    proc = run_script(["bash", str(script), "--use-gpu", value], check=False)
    assert (proc.returncode == 0) == ok
    if ok:
        assert f"use_gpu={value}" in proc.stdout
    else:
        assert "true or false" in proc.stderr


def test_config_file_is_sourced(script, tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text("stage=7\nname=fromconf\n")
    out = run_script(["bash", str(script), "--config", str(conf), "--stage", "3"]).stdout
    # later options override what the config set
    assert "stage=3" in out and "name=fromconf" in out


def test_missing_config_file_fails(script, tmp_path):
    proc = run_script(["bash", str(script), "--config", str(tmp_path / "nope.conf")], check=False)
    assert proc.returncode != 0 and "nope.conf" in proc.stderr


def test_config_is_an_ordinary_option_when_the_script_declares_it(tmp_path):
    p = tmp_path / "c.sh"
    p.write_text(f"set -euo pipefail\nconfig=\nstage=0\n. {REPO}/utils/parse_options.sh\n"
                 'echo "config=$config stage=$stage"\n')
    out = run_script(["bash", str(p), "--config", "egs/x.yaml", "--stage", "1"]).stdout
    assert out.strip() == "config=egs/x.yaml stage=1"


def test_help_prints_usage_and_exits_zero(script):
    proc = run_script(["bash", str(script), "--help"])
    assert proc.stdout.strip() == "Usage: t.sh [options] <dir>"
