"""Large-margin fine-tuning: train.init_from loads a trained run's model and classifier at step 0 only,
so a fine-tuning killed with -9 and re-run ends with the uninterrupted run's weights; the override YAML
changes only the keys it names; bad sources fail with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from dmha.training.checkpoint import load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import REPO, prepare_lists, subprocess_env  # noqa: E402

LMFT = {"train": {"crop_frames": 60, "lr": 1.0e-3, "max_epochs": 4, "margin_warmup_epochs": 0},
        "loss": {"margin": 0.35}}


def _train(conf: Path, lists: Path, exp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dmha.bin.train", "--device", "cpu", "--config", str(conf), *extra,
           str(lists), str(exp)]
    return subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True)


def _finetune_cmd(lmft: Path, lists: Path, src: Path, dest: Path) -> list[str]:
    return ["bash", str(REPO / "steps/lm_finetune.sh"), "--device", "cpu", "--conf", str(lmft), str(lists),
            str(src), str(dest)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny trained run to fine-tune from (2 epochs)."""
    root = tmp_path_factory.mktemp("lmft")
    conf, lists = prepare_lists(root, max_epochs=2, ckpt_every_steps=2)
    r = _train(conf, lists, root / "base")
    assert r.returncode == 0, r.stderr
    lmft = root / "lmft.yaml"
    lmft.write_text(yaml.safe_dump(LMFT))
    return root, lists, root / "base", lmft


def test_init_from_loads_model_and_classifier_of_best(base):
    root, lists, src, _ = base
    from dmha.config import load_config
    from dmha.models import build_model
    from dmha.models.losses import build_loss
    from dmha.training.loop import SpeakerClassifier, init_weights

    cfg = load_config(src / "config.yaml")
    best = load_checkpoint(src / "best.pt")
    assert "loss" in best  # best.pt now carries the classifier
    n = best["loss"]["weight"].shape[0]
    net = SpeakerClassifier(build_model(cfg["model"], n), build_loss(cfg["loss"], 32, n))
    init_weights(net, src / "best.pt", torch.device("cpu"))
    for k, v in best["model"].items():
        assert torch.equal(net.model.state_dict()[k], v), k
    assert torch.equal(net.loss.weight, best["loss"]["weight"])

    # A best.pt of an older dmha (no classifier): the ckpt.pt beside it serves when it is the same model.
    old = root / "old"
    old.mkdir()
    ck = load_checkpoint(src / "ckpt.pt")
    model_of_ckpt = {k[6:]: v for k, v in ck["net"].items() if k.startswith("model.")}
    save_checkpoint({"model": model_of_ckpt, "epoch": 2}, old / "best.pt")
    save_checkpoint(ck, old / "ckpt.pt")
    net2 = SpeakerClassifier(build_model(cfg["model"], n), build_loss(cfg["loss"], 32, n))
    init_weights(net2, old / "best.pt", torch.device("cpu"))
    assert torch.equal(net2.loss.weight, ck["net"]["loss.weight"])
    # ... and not when the ckpt.pt holds another model.
    key = next(iter(model_of_ckpt))
    save_checkpoint({"model": model_of_ckpt | {key: model_of_ckpt[key] + 1}, "epoch": 1}, old / "best.pt")
    from dmha.common.errors import UserError

    with pytest.raises(UserError, match="no classifier weights"):
        init_weights(net2, old / "best.pt", torch.device("cpu"))
    # Another number of speakers: one clear line.
    net3 = SpeakerClassifier(build_model(cfg["model"], n + 1), build_loss(cfg["loss"], 32, n + 1))
    with pytest.raises(UserError, match="classifier is"):
        init_weights(net3, src / "best.pt", torch.device("cpu"))


def test_finetune_kill9_then_rerun_equals_uninterrupted_run(base):
    root, lists, src, lmft = base
    ref, killed = root / "ft_ref", root / "ft_killed"
    r = subprocess.run(_finetune_cmd(lmft, lists, src, ref), env=subprocess_env(), capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load((ref / "config.yaml").read_text())
    base_cfg = yaml.safe_load((src / "config.yaml").read_text())
    assert cfg["train"]["crop_frames"] == 60 and cfg["loss"]["margin"] == 0.35
    assert cfg["train"]["init_from"] == str(src / "best.pt")
    assert cfg["model"] == base_cfg["model"] and cfg["features"] == base_cfg["features"]
    assert "initialised model and classifier from" in (ref / "train.log").read_text()

    proc = subprocess.Popen(_finetune_cmd(lmft, lists, src, killed), env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (killed / "ckpt.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "fine-tuning ended before it could be killed"
    assert not load_checkpoint(killed / "ckpt.pt")["state"]["finished"]
    r = subprocess.run(_finetune_cmd(lmft, lists, src, killed), env=subprocess_env(), capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    log = (killed / "train.log").read_text()
    assert "resuming from" in log and log.count("initialised model and classifier") == 1

    a, b = load_checkpoint(ref / "ckpt.pt"), load_checkpoint(killed / "ckpt.pt")
    assert a["state"]["finished"] and b["state"]["finished"]
    assert a["state"]["global_step"] == b["state"]["global_step"] == 4 * 3
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    # Fine-tuning changed the weights it started from.
    start = load_checkpoint(src / "best.pt")["model"]
    assert not all(torch.equal(a["net"][f"model.{k}"], v) for k, v in start.items())


def test_bad_finetune_inputs_fail_with_one_line(base):
    root, lists, src, lmft = base
    bad_yaml = root / "bad.yaml"
    bad_yaml.write_text("train: {crop_frame: 60}\n")
    r = subprocess.run(_finetune_cmd(bad_yaml, lists, src, root / "ft_bad"), env=subprocess_env(),
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and "crop_frame" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(_finetune_cmd(lmft, lists, root / "nope", root / "ft_bad2"), env=subprocess_env(),
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and "nope/config.yaml not found" in r.stderr
