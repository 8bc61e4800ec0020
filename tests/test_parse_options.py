"""utils/parse_options.sh follows Kaldi's semantics."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize("value,ok", [("7", True), ("abc", False), ("-1", False), ("2.5", False),
                                      ("", False)])
def test_whole_number_options_only_take_whole_numbers(script, value, ok):
    proc = run_script(["bash", str(script), "--stage", value], check=False)
    assert (proc.returncode == 0) == ok, proc.stderr
    if ok:
        assert f"stage={value} " in proc.stdout
    else:
        assert proc.stderr.strip() == f"{script}: option --stage takes a whole number, got '{value}'"
        assert proc.stdout == ""


def test_decimal_and_empty_numeric_options(tmp_path):
    p = tmp_path / "n.sh"
    p.write_text(textwrap.dedent(f"""\
        set -euo pipefail
        frac=0.05
        count=
        . {REPO}/utils/parse_options.sh
        po_require_int count
        echo "frac=$frac count=$count"
        """))
    out = run_script(["bash", str(p), "--frac", "1e-3", "--count", "12"]).stdout
    assert out.strip() == "frac=1e-3 count=12"
    assert run_script(["bash", str(p)]).stdout.strip() == "frac=0.05 count="
    bad = run_script(["bash", str(p), "--frac", "lots"], check=False)
    assert bad.returncode != 0 and "--frac takes a number, got 'lots'" in bad.stderr
    bad = run_script(["bash", str(p), "--count", "x1"], check=False)
    assert bad.returncode != 0 and "--count takes a whole number, got 'x1'" in bad.stderr


def _numeric_options(script: Path) -> list[str]:
    """The options of a recipe script whose default is a number, or that the script checks with
    po_require_int / po_require_number (read from the lines before it sources parse_options.sh)."""
    head, _, tail = script.read_text().partition("parse_options.sh")
    names = [m.group(1) for m in re.finditer(r"^([a-z_][a-z0-9_]*)=([0-9.]+)\s*(#.*)?$", head, re.M)]
    for m in re.finditer(r"^po_require_(?:int|number) (.+)$", tail, re.M):
        names += m.group(1).split()
    return [n.replace("_", "-") for n in names]


RECIPE_SCRIPTS = sorted([REPO / "run.sh", *REPO.glob("steps/*.sh"), *REPO.glob("local/*.sh"),
                         *REPO.glob("utils/*.sh"), *REPO.glob("bench/*.sh")])
NUMERIC_CASES = [(s, o) for s in RECIPE_SCRIPTS for o in _numeric_options(s)]


def test_every_numeric_option_of_the_recipe_is_found():
    found = {(s.relative_to(REPO).as_posix(), o) for s, o in NUMERIC_CASES}
    for expected in [("run.sh", "stage"), ("run.sh", "stop-stage"), ("run.sh", "nj"), ("run.sh", "nproc"),
                     ("run.sh", "ngpu"), ("run.sh", "nodes"), ("run.sh", "seed"),
                     ("steps/make_fbank.sh", "max-bad-frac"), ("local/make_mini_corpus.sh", "n-test"),
                     ("utils/subset_data_dir.sh", "random"), ("steps/train.sh", "nproc")]:
        assert expected in found


@pytest.mark.parametrize("script,option", NUMERIC_CASES,
                         ids=[f"{s.relative_to(REPO)}:{o}" for s, o in NUMERIC_CASES])
def test_recipe_scripts_reject_a_non_number(script, option, tmp_path):
    """`run.sh --stage abc` used to print "integer expression expected" and exit 0 having done nothing."""
    proc = run_script(["bash", str(script), f"--{option}", "abc", str(tmp_path / "a"), str(tmp_path / "b")],
                      check=False, cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"option --{option} takes a" in last and "'abc'" in last, proc.stderr
    assert "integer expression" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("option,value,message", [
    ("--feat-storage", "float16", "--feat-storage must be float32, cm2 or cm3"),
    ("--calibrate", "yes", "option --calibrate takes true or false, got 'yes'"),
])
def test_run_sh_rejects_an_unknown_choice_before_any_stage(option, value, message, tmp_path):
    # --stage 0 would build the corpus: the check must stop run.sh before stage 0 starts
    proc = run_script(["bash", "run.sh", option, value, "--stage", "0", "--stop-stage", "0"],
                      check=False, cwd=REPO)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"run.sh: {message}"]
    assert "stage 0" not in proc.stdout
