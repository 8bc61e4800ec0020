"""The whole recipe, stages 0-5, at toy scale: run.sh in a temporary copy of the repo.

A toy mini corpus (7 voices, 6 utterances each, 4 prompts per real speaker), a tiny model trained for
1 epoch, then embeddings, the verification threshold, scoring and the results summary. Checks that
every stage leaves its files and that both test sets get a finite EER; then dmha-verify runs on the
trained exp. Why a copy: run.sh works in data/ and exp/ under its own directory, and the test must
not touch the developer's. The Debian packages the corpus is built from are cached in the repo's
downloads/ (fetched there on first use).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COPY = ("run.sh", "path.sh", "pyproject.toml", "requirements.txt", "egs", "local", "steps", "utils", "dmha")
TOY_CORPUS = ("--voices us1,us2,us3,de1,de2,fr1,fr2 --utts-per-spk 6 --n-test 2 --n-val 2 "
              "--real-max-utts 4 --download-dir {downloads}")
TOY_CONFIG = {
    # not the default fmax: stage 1 must compute the config's features (stage 2 refuses others)
    "features": {"fmax": 7600},
    "model": {"channels": [4, 8, 8, 16], "pooling": "dmha", "heads": 2, "embed_dim": 400},
    "train": {"seed": 0, "crop_frames": 100, "min_frames": 50, "batch_size": 6, "grad_accum": 1,
              "lr": 1e-3, "max_epochs": 1, "num_threads": 1, "ckpt_every_steps": 0, "log_every_steps": 1,
              "keep_epoch_models": 1},
}


def _copy_repo(dest: Path) -> None:
    dest.mkdir()
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_sh_stages_0_to_5_toy(tmp_path):
    if shutil.which("apt-get") is None and not (REPO / "downloads" / "mbrola").is_dir():
        pytest.skip("the mini corpus needs Debian's apt-get (or a filled downloads/ cache)")
    root = tmp_path / "recipe"
    _copy_repo(root)
    conf = tmp_path / "toy.yaml"
    conf.write_text(yaml.safe_dump(TOY_CONFIG))
    env = dict(os.environ, DMHA_NO_VENV="1", OMP_NUM_THREADS="1", LC_ALL="C",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)  # path.sh points it at the copy
    # --average-models 1: stages 4-5 run on avg_last1.pt (checkpoint averaging wired through run.sh)
    cmd = ["bash", "run.sh", "--nj", "2", "--device", "cpu", "--config", str(conf), "--average-models", "1",
           "--mini-opts", TOY_CORPUS.format(downloads=REPO / "downloads")]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    for stage in range(6):
        assert f"stage {stage}:" in log, f"stage {stage} did not run"

    exp = root / "exp" / "mini_toy"
    for data_set in ("mini_train", "mini_val", "mini_test", "real_test"):
        assert yaml.safe_load((root / "data" / data_set / "fbank.yaml").read_text())["fmax"] == 7600
    for name in ("config.yaml", "best.pt", "models/epoch_1.pt", "avg_last1.pt", "threshold.yaml", "results",
                 "results.tsv"):
        assert (exp / name).is_file(), name
    threshold = yaml.safe_load((exp / "threshold.yaml").read_text())
    assert math.isfinite(threshold["threshold"]) and threshold["model_file"] == "avg_last1.pt"
    # the mini corpus's default back-end (mean + LDA + PLDA on mini_train's embeddings of the scored model)
    backend = yaml.safe_load((exp / "backend" / "backend.yaml").read_text())
    assert backend["kind"] == "plda" and backend["model_file"] == "avg_last1.pt"
    assert threshold["backend"] == backend["fingerprint"]
    all_rows = list(csv.DictReader(open(exp / "results.tsv"), delimiter="\t"))
    rows = {r["set"]: r for r in all_rows if r["backend"] == ""}
    plda_rows = {r["set"]: r for r in all_rows if r["backend"].startswith("plda")}
    for test_set in ("mini_test", "real_test"):
        data = root / "data" / test_set
        utts = (data / "utt2spk").read_text().split("\n")
        emb = kaldiio.load_scp(str(exp / "embeddings" / test_set / "xvector.scp"))
        assert len(emb) == len([u for u in utts if u]) and all(v.shape == (400,) for v in emb.values())
        n_trials = len((data / "trials").read_text().splitlines())
        assert len((exp / "scores" / f"{test_set}.score").read_text().splitlines()) == n_trials
        assert len((exp / "scores" / f"{test_set}.plda.score").read_text().splitlines()) == n_trials
        for row in (rows[test_set], plda_rows[test_set]):
            eer = float(row["eer"])
            assert math.isfinite(eer) and 0.0 <= eer <= 100.0, row

    # the trained exp works with dmha-verify (calibration, else threshold, from stage 4)
    wav_scp = (root / "data" / "mini_test" / "wav.scp").read_text().splitlines()
    wavs = [line.split(None, 1)[1] for line in wav_scp]
    out = subprocess.run([sys.executable, "-m", "dmha.bin.verify", "--exp", str(exp), "--device", "cpu",
                          "--model", "avg_last1.pt", wavs[0], wavs[-1]], cwd=root,
                         env=dict(env, PYTHONPATH=str(root)), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] in ("same", "different")
    if (exp / "calibration.yaml").is_file():  # stage 4 skips it (with a warning) for reversed scores
        assert "LLR" in out.stdout and "calibration.yaml" in out.stdout
        assert plda_rows["mini_test"]["cllr"] != "" and rows["mini_test"]["cllr"] == ""
    else:
        assert "threshold.yaml" in out.stdout
