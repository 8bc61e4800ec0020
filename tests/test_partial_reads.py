"""Partial reads: crops read from only their rows + a stored CMN mean equal today's whole-utterance crops
bit for bit (float32, CM2, CM3 arks; padded short utterances; CMN and no norm), training with them gives
the same weights, and every mismatch between side table, archive and lists is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from dmha.common.errors import UserError
from dmha.features.cmn_table import load_tables, missing_tables, table_path, write_table
from dmha.features.fbank import normalize_features, utterance_mean
from dmha.training.checkpoint import load_checkpoint
from dmha.training.dataset import CropDataset, TrainList, epoch_plan

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import prepare_lists, subprocess_env  # noqa: E402

CROP = 50
# kaldiio compression_method: 3 = CM2 (two bytes per value), 5 = CM3 (one byte per value)
FORMATS = {"float32": None, "cm2": 3, "cm3": 5}


def _write_ark(tmp: Path, fmt: str, n: int = 40, seed: int = 0) -> tuple[TrainList, Path]:
    """``n`` utterances of 20..150 frames (some shorter than the crop, one exactly the crop) in one ark."""
    rng = np.random.default_rng(seed)
    ark, scp = tmp / f"feats_{fmt}.ark", tmp / f"feats_{fmt}.scp"
    lengths = [int(x) for x in rng.integers(20, 151, size=n)]
    lengths[0] = CROP
    utts = [f"utt{i:03d}" for i in range(n)]
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}", compression_method=FORMATS[fmt]) as w:
        for utt, t in zip(utts, lengths):
            w(utt, (rng.normal(8.0, 3.0, size=(t, 24)) + rng.normal(0, 2, size=24)).astype(np.float32))
    entries = dict(line.split(" ", 1) for line in scp.read_text().splitlines())
    feats = [entries[u] for u in utts]
    write_table(ark, [(u, int(e.rsplit(":", 1)[1])) for u, e in zip(utts, feats)])
    return TrainList(utts, np.arange(n, dtype=np.int64) % 5, np.asarray(lengths, dtype=np.int64), feats), ark


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("norm", ["cmn", "none"])
def test_partial_crops_equal_whole_utterance_crops(tmp_path, fmt, norm):
    tl, _ = _write_ark(tmp_path, fmt)
    table = load_tables(tl.utts, tl.feats, tl.num_frames)
    whole = CropDataset(tl, CROP, norm=norm)
    partial = CropDataset(tl, CROP, norm=norm, table=table)
    n_checked = n_padded = 0
    for epoch in range(8):
        order, offsets = epoch_plan(tl.num_frames, CROP, seed=1, epoch=epoch)
        for i in order:
            a, la = whole[(int(i), int(offsets[i]))]
            b, lb = partial[(int(i), int(offsets[i]))]
            assert a.shape == b.shape == (CROP, 24) and la == lb
            assert torch.equal(a, b), (fmt, tl.utts[i], int(offsets[i]))
            n_checked += 1
            n_padded += int(tl.num_frames[i] < CROP)
    assert n_padded > 0 and n_checked - n_padded > 100
    # The last possible crop (ends on the utterance's last frame) too.
    for i in range(len(tl)):
        t = int(tl.num_frames[i])
        if t >= CROP:
            assert torch.equal(whole[(i, t - CROP)][0], partial[(i, t - CROP)][0])


def test_stored_mean_is_the_mean_normalize_features_subtracts():
    x = torch.from_numpy(np.random.default_rng(3).normal(5, 2, size=(777, 80)).astype(np.float32))
    assert torch.equal(normalize_features(x, "cmn"), x - torch.from_numpy(utterance_mean(x)))


def test_crop_beyond_the_utterance_is_one_clear_error_on_both_paths(tmp_path):
    tl, _ = _write_ark(tmp_path, "float32")
    i = next(k for k in range(len(tl)) if tl.num_frames[k] > CROP)
    t = int(tl.num_frames[i])
    table = load_tables(tl.utts, tl.feats, tl.num_frames)
    for ds in (CropDataset(tl, CROP), CropDataset(tl, CROP, table=table)):
        with pytest.raises(UserError, match=f"beyond utterance '{tl.utts[i]}' \\({t} frames"):
            ds[(i, t - CROP + 1)]


def test_archive_truncated_after_the_check_names_the_utterance(tmp_path):
    tl, ark = _write_ark(tmp_path, "float32")
    ds = CropDataset(tl, CROP, table=load_tables(tl.utts, tl.feats, tl.num_frames))
    last = len(tl) - 1
    t = int(tl.num_frames[last])
    os.truncate(ark, os.path.getsize(ark) - 100)
    with pytest.raises(UserError, match=f"utterance '{tl.utts[last]}'.*truncated"):
        ds[(last, max(t - CROP, 0))]


def test_truncated_or_recomputed_archive_is_found_before_training(tmp_path):
    tl, ark = _write_ark(tmp_path, "float32")
    data = ark.read_bytes()
    os.truncate(ark, len(data) - 100)
    with pytest.raises(UserError, match=f"{table_path(ark)} does not match {ark}: the archive is shorter"):
        load_tables(tl.utts, tl.feats, tl.num_frames)
    # Features recomputed: same layout and size, other values.
    rng = np.random.default_rng(9)
    with kaldiio.WriteHelper(f"ark:{ark}") as w:
        for utt, t in zip(tl.utts, tl.num_frames):
            w(utt, rng.normal(0, 1, size=(int(t), 24)).astype(np.float32))
    assert ark.stat().st_size == len(data)
    with pytest.raises(UserError, match="the archive was rewritten since the table was written"):
        load_tables(tl.utts, tl.feats, tl.num_frames)


def test_table_rows_must_match_the_training_list(tmp_path):
    tl, ark = _write_ark(tmp_path, "float32")
    frames = tl.num_frames.copy()
    frames[7] += 1
    with pytest.raises(UserError, match=f"'{tl.utts[7]}' has {tl.num_frames[7]} frames there but "
                                        f"{frames[7]} in the training list"):
        load_tables(tl.utts, tl.feats, frames)
    moved = [*tl.feats[:-1], tl.feats[-1].rsplit(":", 1)[0] + ":3"]
    with pytest.raises(UserError, match=f"no row for utterance '{tl.utts[-1]}'"):
        load_tables(tl.utts, moved, tl.num_frames)
    table_path(ark).unlink()
    assert missing_tables(tl.feats) == [table_path(ark)]
    with pytest.raises(UserError, match="no CMN side table.*dmha.bin.cmn_stats"):
        load_tables(tl.utts, tl.feats, tl.num_frames)


def test_kaldi_default_compression_is_refused_with_advice(tmp_path):
    ark = tmp_path / "cm.ark"
    kaldiio.save_ark(str(ark), {"u": np.ones((30, 8), np.float32)}, compression_method=2)  # CM
    with pytest.raises(UserError, match="'CM' cannot be read partially"):
        write_table(ark, [("u", 2)])


def _train(conf: Path, lists: Path, exp: Path, partial: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dmha.bin.train", "--device", "cpu", "--config", str(conf), "--override",
           f"train.partial_reads={partial}", str(lists), str(exp)]
    return subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True)


def test_training_with_partial_reads_gives_the_same_weights(tmp_path):
    conf, lists = prepare_lists(tmp_path, cmn_tables=True, max_epochs=2, num_workers=1)
    runs = {}
    for partial in ("true", "false"):
        proc = _train(conf, lists, tmp_path / partial, partial)
        assert proc.returncode == 0, proc.stderr
        runs[partial] = load_checkpoint(tmp_path / partial / "ckpt.pt")["net"]
    log = (tmp_path / "true" / "train.log").read_text()
    assert "data: partial reads" in log
    assert "data: partial reads" not in (tmp_path / "false" / "train.log").read_text()
    assert runs["true"].keys() == runs["false"].keys()
    for k in runs["true"]:
        assert torch.equal(runs["true"][k], runs["false"][k]), k


def test_partial_reads_true_without_tables_refuses_before_training(tmp_path):
    conf, lists = prepare_lists(tmp_path, max_epochs=1)
    proc = _train(conf, lists, tmp_path / "exp", "true")
    assert proc.returncode == 1
    assert "no CMN side table" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "exp" / "ckpt.pt").exists()
    auto = _train(conf, lists, tmp_path / "auto", "auto")
    assert auto.returncode == 0, auto.stderr
    assert "data: whole-utterance reads (no CMN side table" in (tmp_path / "auto" / "train.log").read_text()
