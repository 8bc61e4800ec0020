"""run.sh with speed perturbation, augmentation and large-margin fine-tuning on, at toy scale.

The same toy corpus and model as tests/test_recipe_e2e.py (a temporary copy of the repo): stage 1 makes
the speed-perturbed copies (new speakers) and augmented copies of the training set, computes their
features and combines them; stage 2 lists the combined set (3x the speakers); stage 3 trains and then
fine-tunes into exp/<name>_sp_aug_lmft, which stages 4-5 embed and score with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_recipe_e2e import REPO, TOY_CONFIG, TOY_CORPUS, _copy_repo

from dmha.common.fileio import read_kv
from dmha.data.datadir import validate_data_dir

TOY_LMFT = {"train": {"crop_frames": 150, "lr": 1e-4, "max_epochs": 1, "margin_warmup_epochs": 0},
            "loss": {"margin": 0.5}}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_sh_with_speed_perturbation_augmentation_and_lm_finetuning(tmp_path):
    if shutil.which("apt-get") is None and not (REPO / "downloads" / "mbrola").is_dir():
        pytest.skip("the mini corpus needs Debian's apt-get (or a filled downloads/ cache)")
    root = tmp_path / "recipe"
    _copy_repo(root)
    conf, lmft = tmp_path / "toy.yaml", tmp_path / "lmft.yaml"
    conf.write_text(yaml.safe_dump(TOY_CONFIG))
    lmft.write_text(yaml.safe_dump(TOY_LMFT))
    env = dict(os.environ, DMHA_NO_VENV="1", OMP_NUM_THREADS="1", LC_ALL="C",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    cmd = ["bash", "run.sh", "--nj", "2", "--device", "cpu", "--config", str(conf),
           "--mini-opts", TOY_CORPUS.format(downloads=REPO / "downloads"),
           "--speed-perturb", "true", "--augment", "true", "--aug-subset", "40",
           "--lm-finetune", "true", "--lmft-conf", str(lmft)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    data = root / "data"
    clean = read_kv(data / "mini_train" / "utt2spk")
    sp = read_kv(data / "mini_train_sp" / "utt2spk")
    aug = read_kv(data / "mini_train_sp_aug" / "utt2spk")
    assert len(sp) == 3 * len(clean) and len(set(sp.values())) == 3 * len(set(clean.values()))
    assert len(aug) == len(sp) + 40
    for d in ("mini_train_sp_copies", "mini_train_sp", "mini_train_sp_aug_copies", "mini_train_sp_aug"):
        assert validate_data_dir(data / d) == [], d
        assert (data / d / "feats.scp").is_file(), d
    assert len(read_kv(data / "mini_train_sp_aug" / "lists" / "spk2int")) == len(set(sp.values()))

    base, ft = root / "exp" / "mini_toy_sp_aug", root / "exp" / "mini_toy_sp_aug_lmft"
    assert (base / "best.pt").is_file()
    cfg = yaml.safe_load((ft / "config.yaml").read_text())
    assert cfg["train"]["init_from"] == "exp/mini_toy_sp_aug/best.pt" and cfg["loss"]["margin"] == 0.5
    for name in ("best.pt", "threshold.yaml", "results", "scores/mini_test.score", "scores/real_test.score"):
        assert (ft / name).is_file(), name
    assert not (base / "results").exists()  # stages 4-5 used the fine-tuned model

    # Re-running the augmentation stage finds everything complete and changes nothing.
    before = (data / "mini_train_sp_aug_copies" / "feats.scp").stat().st_mtime_ns
    again = subprocess.run([*cmd, "--stage", "1", "--stop-stage", "1"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "up to date" in again.stdout
    assert (data / "mini_train_sp_aug_copies" / "feats.scp").stat().st_mtime_ns == before
