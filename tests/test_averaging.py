"""Checkpoint averaging: per-epoch snapshots, their selection, the averaged model and its use.

What is promised: the average of N copies of one model is that model (bit for bit); the average of two
is their mean, BatchNorm running statistics included, with the integer batch counter the newest
member's; "best" picks the epochs of lowest validation EER (ties: the earlier, as best.pt), "last" the latest;
pruning keeps the K latest and K best; the averaged file loads like best.pt; a failed write leaves no file.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_script  # noqa: E402
from extract_fixtures import make_tiny_exp  # noqa: E402

from dmha.common.errors import UserError  # noqa: E402
from dmha.training.averaging import (  # noqa: E402
    average_state_dicts,
    list_snapshots,
    select_snapshots,
    snapshot_path,
    snapshots_to_keep,
)
from dmha.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


def _net(seed: int, batches: int) -> torch.nn.Module:
    """A small net with BatchNorm whose running stats and counter were updated ``batches`` times."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.BatchNorm1d(5))
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net(torch.randn(8, 6) * (seed + 1))
    return net


def test_average_of_identical_models_is_the_model():
    state = _net(0, 3).state_dict()
    avg = average_state_dicts([state, state, state])
    assert list(avg) == list(state)
    for k, v in state.items():
        assert avg[k].dtype == v.dtype
        assert torch.equal(avg[k], v), k


def test_average_of_two_is_their_mean_with_bn_statistics():
    a, b = _net(0, 2).state_dict(), _net(1, 5).state_dict()
    assert not torch.allclose(a["2.running_mean"], b["2.running_mean"])  # the check below is not trivial
    avg = average_state_dicts([a, b])
    for k in a:
        if k.endswith("num_batches_tracked"):
            assert avg[k].dtype == torch.long and int(avg[k]) == 5  # the newest member's count, not 3.5
        else:
            expected = (a[k].double() + b[k].double()) / 2
            torch.testing.assert_close(avg[k], expected.float(), rtol=0, atol=1e-7)
    for k in ("2.running_mean", "2.running_var", "0.weight"):
        assert not torch.equal(avg[k], a[k]) and not torch.equal(avg[k], b[k])


def test_average_refuses_models_of_different_shape():
    a = _net(0, 1).state_dict()
    b = dict(a, **{"0.weight": torch.zeros(4, 6)})
    with pytest.raises(UserError, match="0.weight"):
        average_state_dicts([a, b])
    with pytest.raises(UserError, match="other parameters"):
        average_state_dicts([a, {k: v for k, v in a.items() if k != "0.bias"}])


EERS = {1: 5.0, 2: 1.0, 3: 4.0, 4: None, 5: 2.0, 6: 3.0}  # epoch 4: not validated


def _snapshots(exp: Path) -> dict[int, dict]:
    """models/epoch_<N>.pt for EERS, each a different small net; returns the state dicts."""
    states = {}
    for ep, eer in EERS.items():
        states[ep] = _net(ep, ep).state_dict()
        save_checkpoint({"model": states[ep], "epoch": ep, "step": 10 * ep, "val_eer": eer, "embed_dim": 5},
                        snapshot_path(exp, ep))
    return states


def test_selection_last_and_best(tmp_path):
    _snapshots(tmp_path)
    (tmp_path / "models" / ".epoch_7.pt.abc.tmp").write_bytes(b"partial")  # a killed writer's leftover
    assert sorted(list_snapshots(tmp_path)) == [1, 2, 3, 4, 5, 6]
    assert [s.epoch for s in select_snapshots(tmp_path, 2, "last")] == [5, 6]
    assert [s.epoch for s in select_snapshots(tmp_path, 2, "best")] == [2, 5]          # EER 1.0 and 2.0
    assert [s.epoch for s in select_snapshots(tmp_path, 3, "best")] == [2, 5, 6]
    with pytest.raises(UserError, match="5 validated epoch models, fewer than --num 6"):
        select_snapshots(tmp_path, 6, "best")  # epoch 4 has no EER: it cannot be among the best
    with pytest.raises(UserError, match="keep_epoch_models"):
        select_snapshots(tmp_path / "nothing", 1, "last")


def test_best_selection_ties_go_to_the_earlier_epoch_as_best_pt():
    assert snapshots_to_keep({1: 2.0, 2: 2.0, 3: 9.0}, 1) == {1, 3}  # best (tie -> 1, as best.pt) + latest
    assert snapshots_to_keep(dict(EERS), 2) == {5, 6} | {2, 5}
    assert snapshots_to_keep(dict(EERS), 0) == set()


def test_average_models_cli_writes_the_mean_in_best_pt_format(tmp_path):
    states = _snapshots(tmp_path)
    out = run_script(["steps/average_models.sh", "--num", "2", "--select", "best", str(tmp_path)])
    assert "averaged epochs 2, 5" in out.stdout
    ckpt = load_checkpoint(tmp_path / "avg_best2.pt")
    assert ckpt["averaged_epochs"] == [2, 5] and ckpt["epoch"] == 5 and ckpt["step"] == 50
    expected = average_state_dicts([states[2], states[5]])
    for k, v in expected.items():
        assert torch.equal(ckpt["model"][k], v), k
    # not enough epoch models: one clear line, no output file
    out = run_script(["steps/average_models.sh", "--num", "7", str(tmp_path)], check=False)
    assert out.returncode == 1 and "fewer than --num 7" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "avg_last7.pt").exists()


def test_killed_averaging_leaves_no_file(tmp_path, monkeypatch):
    from dmha.bin import average_models as cli

    _snapshots(tmp_path)

    def dies(*args, **kwargs):  # the process dies while writing: torch.save raises mid-way
        f = args[1]
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        cli.average_models(tmp_path, 3, "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_averaged_model_loads_like_best_pt_and_has_its_own_threshold(tmp_path):
    import dmha
    from dmha.experiment import load_exp

    exp = make_tiny_exp(tmp_path / "exp", step=7)
    best = load_checkpoint(exp / "best.pt")
    for ep in (1, 2):
        noisy = {k: (v + 0.01 * ep * torch.randn_like(v)) if v.is_floating_point() else v
                 for k, v in best["model"].items()}
        save_checkpoint({"model": noisy, "epoch": ep, "step": 7 * ep, "val_eer": 10.0 + ep, "embed_dim": 400},
                        snapshot_path(exp, ep))
    run_script([sys.executable, "-m", "dmha.bin.average_models", "--num", "2", str(exp)])
    loaded = load_exp(exp, "cpu", model="avg_last2.pt")
    assert loaded.model_file == "avg_last2.pt" and loaded.best["step"] == 14
    avg = load_checkpoint(exp / "avg_last2.pt")["model"]
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, avg[k]), k
    # a threshold computed for best.pt (same step as the newest epoch model here) does not hold for the
    # average: it names its model file
    (exp / "threshold.yaml").write_text(yaml.safe_dump({"threshold": 0.3, "model_step": 14,
                                                        "model_file": "best.pt"}))
    assert load_exp(exp, "cpu", model="avg_last2.pt").threshold is None
    (exp / "threshold.yaml").write_text(yaml.safe_dump({"threshold": 0.3, "model_step": 14,
                                                        "model_file": "avg_last2.pt"}))
    assert dmha.load_model(exp, device="cpu", model="avg_last2.pt").threshold == 0.3
    with pytest.raises(UserError, match="average_models.sh"):
        load_exp(exp, "cpu", model="avg_last9.pt")
    with pytest.raises(UserError, match="relative to the exp dir"):
        load_exp(exp, "cpu", model="../best.pt")


def test_training_writes_and_prunes_epoch_models(tmp_path):
    from train_fixtures import prepare_lists, subprocess_env

    conf, lists = prepare_lists(tmp_path, max_epochs=4, keep_epoch_models=1)
    exp = tmp_path / "exp"
    subprocess.run([sys.executable, "-m", "dmha.bin.train", "--config", str(conf), "--device", "cpu",
                    str(lists), str(exp)], check=True, env=subprocess_env(), capture_output=True)
    history = list(yaml.safe_load((exp / "config.yaml").read_text())["train"].items())
    assert ("keep_epoch_models", 1) in history
    with open(exp / "metrics.csv") as f:
        eers = {int(r["epoch"]): float(r["val_eer"]) for r in csv.DictReader(f)}
    best_epoch = min(sorted(eers), key=lambda e: (eers[e], e))
    kept = sorted(list_snapshots(exp))
    assert kept == sorted({4, best_epoch})  # the latest and the best survive, nothing else
    best = load_checkpoint(exp / "best.pt")
    snap = load_checkpoint(snapshot_path(exp, best["epoch"]))
    assert snap["epoch"] == best["epoch"] and snap["val_eer"] == pytest.approx(best["val_eer"], abs=1e-3)
    for k, v in best["model"].items():
        assert torch.equal(snap["model"][k], v), k
    assert np.isfinite(snap["val_eer"])
