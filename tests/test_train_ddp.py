"""Distributed training: a 2-process torchrun (gloo, CPU) run completes with identical weights on both
ranks, and steps/train.sh --nproc 2 trains and resumes through the same code path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dmha.training.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import prepare_lists, subprocess_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_two_process_run_keeps_ranks_identical(tmp_path):
    conf, lists = prepare_lists(tmp_path, max_epochs=3)
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
         "--nproc-per-node", "2", str(REPO / "tests" / "ddp_train_worker.py"), str(conf), str(lists),
         str(tmp_path / "exp"), str(hashes)],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    # Assert on what the ranks wrote (the job's exit status is checked too:
    # see dmha.training.distributed.finish).
    h0 = (hashes / "hash.0").read_text().split()
    h1 = (hashes / "hash.1").read_text().split()
    assert h0 == h1, (h0, h1)
    assert h0[1] == "9"  # 48 utterances // batch 16 = 3 steps x 3 epochs
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = load_checkpoint(tmp_path / "exp" / "ckpt.pt")
    assert ckpt["state"]["finished"] and len(ckpt["state"]["history"]) == 3
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "x 2 processes" in log


def test_train_sh_nproc2_then_resume_reports_done(tmp_path, repo):
    conf, lists = prepare_lists(tmp_path, max_epochs=1)
    exp = tmp_path / "exp"
    cmd = ["bash", str(repo / "steps" / "train.sh"), "--nproc", "2", "--device", "cpu", "--config", str(conf),
           str(lists), str(exp)]
    first = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert load_checkpoint(exp / "ckpt.pt")["state"]["epoch"] == 1
    again = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished" in (exp / "train.log").read_text()
