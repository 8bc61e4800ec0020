"""bench/gpu_check.sh --dry-run: the GPU check's plumbing (simulator -> real loader with partial reads ->
training step in float32 and bf16 -> extraction bench -> run.sh smoke test -> one table) runs end to end
on CPU.

Slow (tens of seconds on an idle 2-core machine): it starts seven Python processes that each import torch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "bench/gpu_check.sh"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


def test_help_and_unknown_option():
    proc = _run("--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout + proc.stderr
    proc = _run("--no-such-option", "1")
    assert proc.returncode != 0 and "no-such-option" in proc.stderr


@pytest.mark.slow
def test_dry_run_prints_every_row_of_the_table(tmp_path):
    proc = _run("--dry-run", "true", "--skip-pytest", "true", "--workdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| check | result |"
    rows = "\n".join(table)
    for name in ("training, float32 (cpu, batch 4 x 2", "training, bf16 autocast (cpu, batch 4 x 2",
                 "extraction, batched", "extraction, batch-1", "extraction speed-up batched / batch-1"):
        assert name in rows, name
    for line in table:
        if line.startswith("| training"):
            rate = float(line.split("| ")[2].split(" samples/s")[0])
            assert rate > 0
    # The recipe smoke test ran run.sh stages 0-5 to the end on the fake tree, and its training ran on
    # the device the check was given.
    recipe = next(line for line in table if line.startswith("| run.sh --corpus voxceleb stages 0-5"))
    assert "| exit 0;" in recipe and "training log: device cpu,precision: float32" in recipe, recipe
    assert (tmp_path / "recipe" / "work" / "exp" / "voxceleb_toy" / "best.pt").is_file()
    # The training check really read the simulator's archives through the partial-read path.
    assert (tmp_path / "sim" / "vox2_train" / "lists" / "train.list").is_file()
    assert '"partial_reads": true' in (tmp_path / "results" / "train_bf16_true.json").read_text()


def test_without_a_gpu_the_real_run_stops_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real check would run")
    proc = _run("--workdir", str(tmp_path))
    assert proc.returncode == 1
    assert "sees no CUDA device" in proc.stderr and "--dry-run true" in proc.stderr
    assert not (tmp_path / "results").exists()
