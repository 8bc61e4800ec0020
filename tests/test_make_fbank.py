"""steps/make_fbank.sh end to end: kaldiio-readable features equal to the in-memory computation, the
eight kinds of bad audio (reported, dropped, trials kept), --max-bad-frac, skip and --force."""

from __future__ import annotations

import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_script

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.features.audio import load_audio
from dmha.features.config import FbankConfig
from dmha.features.fbank import compute_fbank
from dmha.features.stage import check_complete, prepare

SR = 16000


def speechish(n: int, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 220)
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12)) * 0.1 + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_data_dir(d: Path, entries: dict[str, str], trials: list[str] | None = None) -> None:
    """wav.scp/utt2spk/spk2utt for utterance ids `<spk>-<rest>`."""
    d.mkdir(parents=True, exist_ok=True)
    utts = sorted(entries, key=lambda u: u.encode())
    (d / "wav.scp").write_text("".join(f"{u} {entries[u]}\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.split("-")[0], []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    if trials:
        (d / "trials").write_text("".join(t + "\n" for t in trials))


def make_fbank(*args: str, check: bool = True):
    return run_script(["steps/make_fbank.sh", *args], check=check, timeout=120)


def assert_feats_equal_in_memory(d: Path) -> dict[str, np.ndarray]:
    """Plain kaldiio.load_scp reads every utterance, equal to compute_fbank(load_audio(entry))."""
    torch.set_num_threads(1)
    feats = dict(kaldiio.load_scp(str(d / "feats.scp")))
    wavs = read_kv(d / "wav.scp")
    frames = read_kv(d / "utt2num_frames")
    assert set(feats) == set(wavs) == set(read_kv(d / "utt2spk")) == set(frames)
    for utt, entry in wavs.items():
        ref = compute_fbank(load_audio(entry, SR)[0]).numpy()
        assert feats[utt].dtype == np.float32 and feats[utt].shape == ref.shape
        assert int(frames[utt]) == ref.shape[0]
        np.testing.assert_allclose(feats[utt], ref, rtol=1e-6, atol=1e-5)
    return feats


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    """A data dir with 10 good utterances and one of each kind of bad (or fixable) audio."""
    root = tmp_path_factory.mktemp("fbank")
    w = root / "wav"
    w.mkdir()
    entries = {}
    for i in range(10):
        p = w / f"good{i}.wav"
        sf.write(p, speechish(SR + 613 * i, i), SR, subtype="PCM_16")
        entries[f"g{i % 3}-good{i}"] = str(p) if i % 2 else f"cat {p} |"
    # fixable: stereo (mixed down) and 8 kHz (resampled)
    sf.write(w / "stereo.wav", np.stack([speechish(SR, 20), speechish(SR, 21)], 1), SR, subtype="PCM_16")
    entries["x-stereo"] = str(w / "stereo.wav")
    sf.write(w / "rate8k.wav", speechish(8000, 22, sr=8000), 8000, subtype="PCM_16")
    entries["x-rate8k"] = str(w / "rate8k.wav")
    # bad
    (w / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmX" + bytes(range(200)))
    entries["b-corrupt"] = str(w / "corrupt.wav")
    (w / "empty.wav").write_bytes(b"")
    entries["b-empty"] = str(w / "empty.wav")
    sf.write(w / "short.wav", speechish(511, 23), SR, subtype="PCM_16")
    entries["b-short"] = str(w / "short.wav")
    nan = speechish(SR, 24)
    nan[1000] = np.nan
    sf.write(w / "nan.wav", nan, SR, subtype="FLOAT")
    entries["b-nan"] = str(w / "nan.wav")
    entries["b-missing"] = str(w / "missing.wav")
    entries["b-pipe"] = f"cat {w}/good0.wav && exit 7 |"
    d = root / "set1"
    trials = ["g0-good0 g1-good1 nontarget", "g0-good0 b-nan nontarget", "b-short g0-good3 target",
              "g2-good2 x-stereo nontarget"]
    write_data_dir(d, entries, trials)
    return d


BAD_REASONS = {
    "b-corrupt": "cannot decode audio",
    "b-empty": "empty file",
    "b-short": "shorter than one frame",
    "b-nan": "NaN/Inf",
    "b-missing": "file not found",
    "b-pipe": "pipe command failed (exit 7)",
}


def test_too_many_bad_fails_and_drops_nothing(bad_dir):
    orig = {f: (bad_dir / f).read_text() for f in ("wav.scp", "utt2spk", "spk2utt", "trials")}
    proc = make_fbank("--nj", "2", str(bad_dir), check=False)
    assert proc.returncode != 0
    assert "6 of 18 utterances" in proc.stderr and "max-bad-frac" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (bad_dir / "feats.scp").exists()
    for f, text in orig.items():
        assert (bad_dir / f).read_text() == text, f"{f} changed although nothing may be dropped"
    assert set(read_kv(bad_dir / "bad_utts")) == set(BAD_REASONS)


def test_bad_audio_reported_dropped_rest_finished(bad_dir):
    """Rerun with a higher threshold: the finished jobs are reused, the bad utterances dropped."""
    orig_wav = (bad_dir / "wav.scp").read_text()
    proc = make_fbank("--nj", "2", "--max-bad-frac", "0.5", str(bad_dir))
    out = proc.stdout + proc.stderr
    bad = read_kv(bad_dir / "bad_utts")
    assert set(bad) == set(BAD_REASONS)
    for utt, reason in BAD_REASONS.items():
        assert reason in bad[utt], (utt, bad[utt])
    assert "dropped 6 utterances" in out
    assert "2 of 4 trials reference dropped utterances" in out
    assert "1 utterances mixed down to mono" in out and "1 utterances resampled" in out
    # dropped from the lists, originals kept, trials unchanged, dir valid
    kept = set(read_kv(bad_dir / "utt2spk"))
    assert kept == set(read_kv(bad_dir / "wav.scp")) and not kept & set(BAD_REASONS) and len(kept) == 12
    assert all(u not in v for u in BAD_REASONS for v in read_kv(bad_dir / "spk2utt").values())
    assert (bad_dir / ".backup" / "wav.scp").read_text() == orig_wav
    assert len((bad_dir / "trials").read_text().splitlines()) == 4
    run_script(["utils/validate_data_dir.sh", "--no-trials", str(bad_dir)])
    feats = assert_feats_equal_in_memory(bad_dir)
    # stereo = features of the channel mean; 8 kHz = features of the 16 kHz resampled signal
    assert feats["x-rate8k"].shape == (1 + (16000 - 512) // 160, 80)


def test_rerun_skips_and_force_recomputes(bad_dir):
    feats_scp = bad_dir / "feats.scp"
    before = feats_scp.read_text()
    mtime = feats_scp.stat().st_mtime_ns
    proc = make_fbank("--nj", "2", str(bad_dir))
    assert "skipping" in proc.stdout
    assert feats_scp.stat().st_mtime_ns == mtime
    # a newer wav.scp makes the features stale
    (bad_dir / "wav.scp").touch()
    proc = make_fbank("--nj", "3", str(bad_dir))
    assert "skipping" not in proc.stdout and feats_scp.stat().st_mtime_ns != mtime
    assert len(read_kv(feats_scp)) == 12
    assert not list((bad_dir / "data").glob("*.tmp"))
    assert_feats_equal_in_memory(bad_dir)
    three = feats_scp.read_text()
    assert three != before  # 3 arks now, not 2
    proc = make_fbank("--nj", "2", "--force", "true", str(bad_dir))
    assert "skipping" not in proc.stdout
    assert len(read_kv(feats_scp)) == 12 and feats_scp.read_text() not in (three, "")
    # the third job's files of the earlier --nj 3 run are gone, not left to look like current output
    left = [p.name for p in (bad_dir / "data").glob(f"raw_fbank_{bad_dir.name}.3.*") if p.suffix != ".lock"]
    assert not left
    assert_feats_equal_in_memory(bad_dir)


def test_usage_and_missing_data_dir(tmp_path):
    proc = make_fbank(check=False)
    assert proc.returncode != 0 and "Usage" in proc.stderr
    proc = make_fbank(str(tmp_path / "nope"), check=False)
    assert proc.returncode != 0 and "wav.scp not found" in proc.stderr and "Traceback" not in proc.stderr
    assert "Usage" in make_fbank("--help").stdout


def test_feature_config_is_recorded_and_change_recomputes(tmp_path):
    w = tmp_path / "a.wav"
    sf.write(w, speechish(SR, 1), SR, subtype="PCM_16")
    d = tmp_path / "d"
    write_data_dir(d, {"s-a": str(w), "s-b": f"cat {w} |"})
    make_fbank("--nj", "1", str(d))
    assert kaldiio.load_scp(str(d / "feats.scp"))["s-a"].shape[1] == 80
    cfg = tmp_path / "c.yaml"
    cfg.write_text("features:\n  n_mels: 40\n")
    make_fbank("--nj", "1", "--feat-config", str(cfg), str(d))
    feats = kaldiio.load_scp(str(d / "feats.scp"))
    assert feats["s-a"].shape[1] == 40 and np.array_equal(feats["s-a"], feats["s-b"])
    assert "n_mels: 40" in (d / "fbank.yaml").read_text()
    # norm is applied when features are loaded, so changing it does not make stored features stale
    cfg.write_text("features:\n  n_mels: 40\n  norm: cmvn\n")
    assert "skipping" in make_fbank("--nj", "1", "--feat-config", str(cfg), str(d)).stdout
    # what else makes stored features stale (checked in-process: each stage run costs seconds)
    cfg40 = FbankConfig(n_mels=40)
    assert check_complete(d, cfg40) is None
    assert "differs" in check_complete(d, FbankConfig())
    (d / "utt2spk").touch()
    assert "newer" in check_complete(d, cfg40)
    (d / "feats.scp").touch()
    assert check_complete(d, cfg40) is None
    shutil.rmtree(d / "data")
    assert "missing" in check_complete(d, cfg40)


def test_feature_settings_of_a_model_config_file(tmp_path):
    """run.sh passes its --config to stage 1: a model config without features: keeps the paper's."""
    from dmha.features.stage import load_fbank_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  heads: 4\ntrain:\n  lr: 1.0e-3\n")
    assert load_fbank_config(cfg) == FbankConfig()
    cfg.write_text("features:\n  fmax: 4000\nmodel:\n  heads: 4\n")
    assert load_fbank_config(cfg) == FbankConfig(fmax=4000)
    cfg.write_text("n_mels: 40\n")  # a features-only file
    assert load_fbank_config(cfg) == FbankConfig(n_mels=40)
    cfg.write_text("features: [1, 2]\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_fbank_config(cfg)


def test_segments_file_is_refused_clearly(tmp_path):
    d = tmp_path / "seg"
    write_data_dir(d, {"s-a": "/nonexistent.wav"})
    (d / "segments").write_text("s-a rec 0.0 1.0\n")
    with pytest.raises(UserError, match="segments"):
        prepare(d, d / "data", FbankConfig(), nj=1, force=False)
    assert not (d / "data").exists()


def _wav_data_dir(tmp_path: Path, utts: list[tuple[str, int]]) -> Path:
    """A data dir ``tmp_path/d`` of speech-like 16-bit wavs: (utterance id, samples) each, the i-th
    drawn with seed i."""
    entries = {}
    for i, (utt, n) in enumerate(utts):
        w = tmp_path / f"a{i}.wav"
        sf.write(w, speechish(n, i), SR, subtype="PCM_16")
        entries[utt] = str(w)
    d = tmp_path / "d"
    write_data_dir(d, entries)
    return d


def test_stage_writes_cmn_side_tables_matching_its_features(tmp_path):
    """Every job's ark gets a CMN side table whose means equal the stored features' CMN means."""
    from dmha.features.cmn_table import load_tables, missing_tables
    from dmha.features.fbank import utterance_mean

    d = _wav_data_dir(tmp_path, [(f"s{i % 2}-a{i}", SR + 701 * i) for i in range(4)])
    make_fbank("--nj", "2", str(d))
    scp = read_kv(d / "feats.scp")
    frames = read_kv(d / "utt2num_frames")
    utts = sorted(scp)
    assert missing_tables([scp[u] for u in utts]) == []
    table = load_tables(utts, [scp[u] for u in utts], [int(frames[u]) for u in utts])
    assert len(table.arks) == 2
    for i, utt in enumerate(utts):
        assert np.array_equal(table.mean[i], utterance_mean(kaldiio.load_mat(scp[utt]))), utt


def test_rerun_removes_temporary_files_a_killed_job_left(tmp_path):
    """A job SIGKILLed while writing its side table leaves .<table>.XXXX.tmp; the rerun of the job
    removes it (the kill test saw one survive when the kill landed there)."""
    d = _wav_data_dir(tmp_path, [(f"s{i}-a{i}", SR + 301 * i) for i in range(2)])
    (d / "data").mkdir()
    stale = [d / "data" / ".raw_fbank_d.1.cmn.npy.k1ll3d.tmp", d / "data" / ".raw_fbank_d.2.cmn.npy.x9.tmp"]
    keep = d / "data" / "notes.tmp"  # not a temporary copy of a job's file: left alone
    for p in (*stale, keep):
        p.write_bytes(b"partial")
    make_fbank("--nj", "2", str(d))
    assert not any(p.exists() for p in stale)
    assert keep.exists() and len(read_kv(d / "feats.scp")) == 2


def test_cm2_storage_halves_the_arks_and_crops_partially_like_whole_reads(tmp_path):
    """--storage cm2 writes Kaldi 2-byte compressed matrices (close to float32, half the bytes) with side
    tables; partial crops equal whole-utterance crops; switching back to float32 recomputes."""
    from dmha.features.cmn_table import load_tables
    from dmha.training.dataset import CropDataset, TrainList

    d = _wav_data_dir(tmp_path, [(f"s-a{i}", 3 * SR + 977 * i) for i in range(3)])
    make_fbank("--nj", "1", str(d))
    f32 = dict(kaldiio.load_scp(str(d / "feats.scp")))
    size32 = sum(p.stat().st_size for p in (d / "data").glob("*.ark"))
    assert "skipping" not in make_fbank("--nj", "1", "--storage", "cm2", str(d)).stdout
    scp = read_kv(d / "feats.scp")
    size16 = sum(p.stat().st_size for p in (d / "data").glob("*.ark"))
    assert 0.45 < size16 / size32 < 0.55
    assert "storage: cm2" in (d / "fbank.yaml").read_text()
    for utt, entry in scp.items():
        ark, off = entry.rsplit(":", 1)
        with open(ark, "rb") as f:
            f.seek(int(off))
            assert f.read(6) == b"\0BCM2 "
        np.testing.assert_allclose(kaldiio.load_mat(entry), f32[utt], atol=1e-3)
    utts = sorted(scp)
    frames = np.array([f32[u].shape[0] for u in utts])
    tl = TrainList(utts, np.zeros(3, dtype=np.int64), frames, [scp[u] for u in utts])
    whole, partial = CropDataset(tl, 120), CropDataset(tl, 120, table=load_tables(utts, tl.feats, frames))
    for i in range(3):
        for off in (0, 37, int(frames[i]) - 120):
            assert torch.equal(whole[(i, off)][0], partial[(i, off)][0])
    assert "skipping" in make_fbank("--nj", "1", "--storage", "cm2", str(d)).stdout
    assert "skipping" not in make_fbank("--nj", "1", str(d)).stdout
    assert np.array_equal(kaldiio.load_scp(str(d / "feats.scp"))["s-a1"], f32["s-a1"])
    bad = make_fbank("--nj", "1", "--storage", "float16", str(d), check=False)
    assert bad.returncode != 0 and "--storage float16: expected one of float32, cm2, cm3" in bad.stderr
    assert (d / "feats.scp").is_file()  # an invalid option removes nothing
