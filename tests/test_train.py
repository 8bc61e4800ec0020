"""Training loop: a tiny run learns, kill -9 + rerun gives the uninterrupted run's weights, a finished
run says so, a changed model config refuses to resume, the data plan is deterministic and sharded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dmha.training.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from dmha.training.dataset import epoch_plan, step_batches

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import prepare_lists, subprocess_env  # noqa: E402


def _train_cmd(conf: Path, lists: Path, exp: Path, *extra: str, device: str = "cpu") -> list[str]:
    return [sys.executable, "-m", "dmha.bin.train", "--device", device, "--config", str(conf), *extra,
            str(lists), str(exp)]


@pytest.mark.parametrize("bf16", ["false", "true"])
def test_tiny_training_lowers_loss(tmp_path, bf16):
    conf, lists = prepare_lists(tmp_path, max_epochs=10, lr=3e-3, num_workers=1)  # worker path too
    exp = tmp_path / "exp"
    overrides = f"model.channels=[8,16,16,16] train.bf16={bf16}"
    proc = subprocess.run(_train_cmd(conf, lists, exp, "--override", overrides),
                          env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    precision = "precision: bf16 autocast" if bf16 == "true" else "precision: float32"
    assert precision in (exp / "train.log").read_text()
    rows = (exp / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header == ["epoch", "step", "loss", "acc", "val_eer", "val_mindcf", "lr", "time", "margin"]
    data = [dict(zip(header, r.split(","))) for r in rows[1:]]
    assert len(data) == 10
    first, last = float(data[0]["loss"]), float(data[-1]["loss"])
    assert last < 0.7 * first, (first, last)
    assert float(data[-1]["acc"]) > 0.5  # 4 speakers: chance is 0.25
    for name in ("config.yaml", "ckpt.pt", "best.pt", "train.log", "training.png", "spk2int"):
        assert (exp / name).is_file(), name
    best = load_checkpoint(exp / "best.pt")
    eers = [float(r["val_eer"]) for r in data]
    assert best["val_eer"] == pytest.approx(min(eers), abs=1e-3)
    assert (exp / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _final_net(exp: Path) -> dict:
    ckpt = load_checkpoint(exp / "ckpt.pt")
    assert ckpt["state"]["finished"]
    return ckpt


CUDA_DETERMINISTIC = pytest.param(
    "cuda", False, id="cuda-deterministic",
    marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")])


@pytest.mark.parametrize("device, partial_reads", [("cpu", False), ("cpu", True), CUDA_DETERMINISTIC],
                         ids=["whole-reads", "partial-reads+cosine-lr", "cuda-deterministic"])
def test_kill9_then_rerun_equals_uninterrupted_run(tmp_path, device, partial_reads):
    # 3 steps per epoch, a checkpoint every 2 steps: the kill usually lands mid-epoch. The second case
    # also runs the cosine LR schedule (a function of the step: a resumed run must set the same LRs).
    # On CUDA the same holds with train.deterministic: true (cuDNN's default kernels are not repeatable).
    schedule = {"lr_schedule": "cosine", "lr_warmup_epochs": 1.0, "min_lr": 1e-5} if partial_reads else {}
    conf, lists = prepare_lists(tmp_path, cmn_tables=partial_reads, max_epochs=8, ckpt_every_steps=2,
                                deterministic=device == "cuda", **schedule)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(conf, lists, ref, device=device), env=subprocess_env(), check=True,
                   capture_output=True)

    proc = subprocess.Popen(_train_cmd(conf, lists, killed, device=device), env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "ckpt.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    interrupted = load_checkpoint(killed / "ckpt.pt")["state"]
    assert not interrupted["finished"] and interrupted["global_step"] < 24

    rerun = subprocess.run(_train_cmd(conf, lists, killed, device=device), env=subprocess_env(),
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in (killed / "train.log").read_text()
    if device == "cuda":
        assert "kernels: deterministic cuDNN/cuBLAS kernels" in (killed / "train.log").read_text()
    assert ("data: partial reads" in (killed / "train.log").read_text()) == partial_reads

    a, b = _final_net(ref), _final_net(killed)
    assert a["state"]["global_step"] == b["state"]["global_step"] == 24
    assert a["net"].keys() == b["net"].keys()
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    strip = [{k: v for k, v in row.items() if k != "time"} for row in a["state"]["history"]]
    assert strip == [{k: v for k, v in row.items() if k != "time"} for row in b["state"]["history"]]
    lrs = [row["lr"] for row in a["state"]["history"]]
    if schedule:  # annealed to min_lr at the last step, decreasing after the warm-up epoch
        assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(1e-5) and lrs[0] > lrs[-1] * 10


def test_finished_run_reports_done_and_changed_model_refuses(tmp_path):
    conf, lists = prepare_lists(tmp_path, max_epochs=1)
    exp = tmp_path / "exp"
    subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), check=True, capture_output=True)
    mtime = (exp / "ckpt.pt").stat().st_mtime_ns
    stamped = {n: (exp / n).stat().st_mtime_ns for n in ("config.yaml", "spk2int")}
    again = subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), capture_output=True, text=True)
    assert again.returncode == 0
    assert "already finished" in again.stderr
    assert (exp / "ckpt.pt").stat().st_mtime_ns == mtime  # nothing retrained
    # nor rewritten: extraction's up-to-date stamps key on config.yaml's mtime
    assert {n: (exp / n).stat().st_mtime_ns for n in stamped} == stamped

    # Resuming without --config uses the saved one; more epochs continue the finished run.
    more = subprocess.run([sys.executable, "-m", "dmha.bin.train", "--device", "cpu", "--override",
                           "train.max_epochs=2", str(lists), str(exp)], env=subprocess_env(),
                          capture_output=True, text=True)
    assert more.returncode == 0, more.stderr
    assert load_checkpoint(exp / "ckpt.pt")["state"]["epoch"] == 2

    bad = subprocess.run(_train_cmd(conf, lists, exp, "--override", "model.heads=4"), env=subprocess_env(),
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "different config" in bad.stderr and "model.heads" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_training_refuses_lists_of_features_computed_otherwise_than_its_config(tmp_path):
    """Stage 3 is often re-run alone after a config change: features of the old settings are refused."""
    conf, lists = prepare_lists(tmp_path, max_epochs=1)
    (lists / "fbank.yaml").write_text("fmax: 4000\nn_mels: 20\n")
    exp = tmp_path / "exp"
    out = subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "lists/fbank.yaml" in out.stderr and "fmax=4000 (expected None)" in out.stderr
    assert "re-run stages 1-2" in out.stderr and not (exp / "ckpt.pt").exists()
    (lists / "fbank.yaml").write_text("{not: [a, record")
    out = subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), capture_output=True, text=True)
    assert out.returncode == 1 and "not a feature settings record" in out.stderr


def test_second_training_in_a_busy_exp_dir_stops_and_a_killed_holder_frees_it(tmp_path):
    """Two trainings in one exp dir would resume from the same checkpoint and overwrite each other."""
    conf, lists = prepare_lists(tmp_path, max_epochs=1)
    exp = tmp_path / "exp"
    exp.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from dmha.common.fileio import exclusive_lock\n"
        f"with exclusive_lock({str(exp / '.train.lock')!r}, 'x'):\n"
        "    print('held', flush=True); time.sleep(60)")], env=subprocess_env(), stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), capture_output=True,
                              text=True)
        assert busy.returncode == 1
        lines = busy.stderr.strip().splitlines()
        assert len(lines) == 1 and f"another process (pid {holder.pid})" in lines[0] and str(exp) in lines[0]
        assert sorted(p.name for p in exp.iterdir()) == [".train.lock"]  # nothing else written
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock with the process
        holder.wait()
    done = subprocess.run(_train_cmd(conf, lists, exp), env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(exp / "ckpt.pt")["state"]["epoch"] == 1


def test_epoch_plan_is_a_pure_function_of_seed_and_epoch():
    frames = np.array([10, 50, 400, 351, 350, 1000])
    o1, c1 = epoch_plan(frames, 350, seed=7, epoch=3)
    o2, c2 = epoch_plan(frames, 350, seed=7, epoch=3)
    assert np.array_equal(o1, o2) and np.array_equal(c1, c2)
    o3, _ = epoch_plan(np.arange(100) + 400, 350, seed=7, epoch=4)
    o4, _ = epoch_plan(np.arange(100) + 400, 350, seed=7, epoch=3)
    assert not np.array_equal(o3, o4)
    assert sorted(o1.tolist()) == list(range(6))
    assert np.all(c1 >= 0) and np.all(c1 <= np.maximum(frames - 350, 0))
    assert c1[0] == 0 and c1[4] == 0  # not longer than the crop: start at 0


def test_step_batches_shard_each_step_across_ranks():
    order = np.random.default_rng(0).permutation(70)
    offsets = np.arange(70) * 10
    single = step_batches(order, offsets, batch_size=16, grad_accum=2, rank=0, world_size=1)
    assert len(single) == 4 * 2 and all(len(b) == 8 for b in single)  # 70 // 16 = 4 steps
    ranks = [step_batches(order, offsets, 16, 2, r, 2) for r in range(2)]
    for step in range(4):
        union = sorted(i for r in range(2) for mb in ranks[r][2 * step:2 * step + 2] for i, _ in mb)
        assert union == sorted(order[16 * step:16 * (step + 1)].tolist())
    resumed = step_batches(order, offsets, 16, 2, 0, 1, start_step=3)
    assert resumed == single[6:]
    assert all(off == 10 * i for b in single for i, off in b)


def test_checkpoint_roundtrip_restores_rng_with_weights_only(tmp_path):
    import random

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = get_rng_state()
    expect = (torch.rand(3), np.random.rand(3), random.random())
    save_checkpoint({"rng": state, "x": torch.ones(2)}, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    set_rng_state(loaded["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]
    assert not list(tmp_path.glob(".c.pt.*"))  # no temporary left behind


def test_cosine_lr_warms_up_then_anneals_to_the_floor():
    from dmha.training.schedule import cosine_lr

    lrs = [cosine_lr(s, 1e-3, 1e-5, warmup_steps=10, total_steps=110) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up, never 0
    assert lrs[10] == pytest.approx(1e-3) and lrs[109] == pytest.approx(1e-5)  # cosine from base to floor
    assert (lrs[59] + lrs[60]) / 2 == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-3)  # half way: step 59.5
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[119] == pytest.approx(1e-5)  # past the budget: stays at the floor
    assert cosine_lr(0, 1e-3, 0.0, warmup_steps=0, total_steps=50) == pytest.approx(1e-3)  # no warm-up


def test_lr_schedule_settings_are_checked(tmp_path):
    from dmha.common.errors import UserError
    from dmha.config import load_config

    conf = tmp_path / "c.yaml"
    conf.write_text("train: {lr_schedule: linear}\n")
    with pytest.raises(UserError, match="lr_schedule=linear is not one of plateau, cosine"):
        load_config(conf)
    conf.write_text("train: {lr_schedule: cosine, lr: 1.0e-3, min_lr: 1.0e-2}\n")
    with pytest.raises(UserError, match="min_lr < train.lr"):
        load_config(conf)
    conf.write_text("train: {lr_schedule: cosine, lr_warmup_epochs: 5, max_epochs: 5}\n")
    with pytest.raises(UserError, match="lr_warmup_epochs < train.max_epochs"):
        load_config(conf)


def test_margin_warmup_is_a_pure_function_of_the_step():
    from dmha.training.schedule import margin_at

    assert margin_at(0, 0.4, 100) == 0.0
    assert margin_at(50, 0.4, 100) == pytest.approx(0.2)
    assert margin_at(100, 0.4, 100) == margin_at(1000, 0.4, 100) == pytest.approx(0.4)
    assert margin_at(0, 0.4, 0) == 0.4  # no warm-up: the configured margin from the start


def test_validation_with_domains_scores_each_domain_apart(tmp_path, monkeypatch):
    """With val_utt2domain, cross-domain pairs do not count: here every real speaker's embedding equals a
    synthetic speaker's, so the pooled EER is high while each domain alone is perfectly separated."""
    from train_fixtures import make_corpus, write_trials_all_pairs

    from dmha.common.errors import UserError
    from dmha.common.fileio import read_kv
    from dmha.data.lists import prepare_lists as write_lists
    from dmha.training import loop

    train, val = make_corpus(tmp_path, val_spk=4)
    write_trials_all_pairs(val)
    spks = sorted(set(read_kv(val / "utt2spk").values()))
    domain = {s: "real" if i < 2 else "synthetic" for i, s in enumerate(spks)}
    direction = {s: i % 2 for i, s in enumerate(spks)}   # real i and synthetic i + 2 share a direction
    lists = tmp_path / "lists"

    def fake_embed(model, feats, *args, **kwargs):
        utt2spk = read_kv(val / "utt2spk")
        return np.stack([np.eye(2)[direction[utt2spk[u]]] for u in vset.utts])

    monkeypatch.setattr(loop, "embed_feature_list", fake_embed)
    tcfg = {"val_max_frames": 1000, "val_batch_size": 4, "bf16": False}

    write_lists(train, val, lists, min_frames=1, crop_frames=40)
    vset = loop.ValidationSet(lists)
    pooled = vset.evaluate(None, torch.device("cpu"), tcfg, "cmn")
    assert pooled["eer"] > 10 and "domains" not in pooled

    (val / "spk2domain").write_text("".join(f"{s} {d}\n" for s, d in domain.items()))
    write_lists(train, val, lists, min_frames=1, crop_frames=40)
    vset = loop.ValidationSet(lists)
    by_domain = vset.evaluate(None, torch.device("cpu"), tcfg, "cmn")
    assert sorted(by_domain["domains"]) == ["real", "synthetic"]
    assert by_domain["eer"] == 0.0 and by_domain["trials"] < pooled["trials"]
    # a domain with a single speaker has no non-target pairs of its own: refused with one line
    (val / "spk2domain").write_text("".join(f"{s} {'solo' if s == spks[0] else 'rest'}\n" for s in spks))
    write_lists(train, val, lists, min_frames=1, crop_frames=40)
    with pytest.raises(UserError, match="domain 'solo' need target and non-target"):
        loop.ValidationSet(lists)
