"""Augmented and speed-perturbed copies of a data dir: deterministic pipes, the SNR and RT60 asked for,
speed-changed durations and speaker labels, stage 1 reading the pipes, and one clear line for bad input."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dmha.augment import effects
from dmha.augment.sources import Sources
from dmha.augment.spec import AugSpec, apply, parse_argv
from dmha.common.fileio import read_kv
from dmha.corpus.augmented import plan_augmentation, plan_speed_perturbation
from dmha.data.datadir import load_data_dir, validate_data_dir
from dmha.features.audio import augmented_wav_bytes, load_audio

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import REPO, subprocess_env  # noqa: E402

SR = 16000


def _voice(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A harmonic 'voice' with vibrato at a low level (no clipping after mixing)."""
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * f0 * (t + 0.02 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    x = sum(np.sin(k * phase + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    return (0.05 * x).astype(np.float32)


def make_data_dir(root: Path, n_spk: int = 4, n_utt: int = 3) -> Path:
    """A data dir of tone 'voices' (wav files), with utt2dur."""
    d, wavs = root / "src", root / "wav"
    d.mkdir(parents=True)
    wavs.mkdir()
    wav, u2s, dur = {}, {}, {}
    for s in range(n_spk):
        for i in range(n_utt):
            utt = f"spk{s}-u{i}"
            x = _voice(100 + 37 * s, 1.0 + 0.5 * i, 10 * s + i)
            sf.write(wavs / f"{utt}.wav", x, SR, subtype="PCM_16")
            wav[utt], u2s[utt], dur[utt] = str(wavs / f"{utt}.wav"), f"spk{s}", f"{len(x) / SR:.3f}"
    for name, m in (("wav.scp", wav), ("utt2spk", u2s), ("utt2dur", dur)):
        (d / name).write_text("".join(f"{k} {v}\n" for k, v in sorted(m.items())))
    spk2utt: dict[str, list[str]] = {}
    for u, s in sorted(u2s.items()):
        spk2utt.setdefault(s, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return d


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], env=subprocess_env(), capture_output=True,
                          text=True, cwd=REPO)


def _pipe_args(entry: str) -> list[str]:
    argv = shlex.split(entry.rstrip()[:-1])
    assert argv[:3] == ["python", "-m", "dmha.bin.augment_wav"]
    return argv[3:]


def _decode(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float32")[0]


def _measured_snr(out: np.ndarray, clean: np.ndarray) -> float:
    """SNR of ``out`` = k * clean + noise, with k fitted by least squares (the output may be rescaled)."""
    k = float(np.dot(out, clean) / np.dot(clean, clean))
    resid = out - k * clean
    return 10 * np.log10(np.sum((k * clean) ** 2) / np.sum(resid ** 2))


# --- determinism -------------------------------------------------------------------------------------

def test_same_line_same_samples_and_seed_changes_them(tmp_path):
    src = make_data_dir(tmp_path)
    out = tmp_path / "aug"
    r = _run("dmha.bin.augment_data_dir", "--seed", "3", str(src), str(out))
    assert r.returncode == 0, r.stderr
    wav = read_kv(out / "wav.scp")
    assert len(wav) == 12 * 4 and validate_data_dir(out) == []
    line = wav["spk1-u2-noise"]
    a = augmented_wav_bytes(_pipe_args(line))
    assert augmented_wav_bytes(_pipe_args(line)) == a
    # The real pipe (a new Python process, through bash) prints the same bytes as stage 1's in-process run.
    shell = subprocess.run(["bash", "-c", line.rstrip()[:-1]], capture_output=True, env=subprocess_env(),
                           cwd=REPO)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == a
    # A plan is a pure function of (seed, copy id): rebuilding gives the same lines, another seed others.
    out2, out3 = tmp_path / "aug2", tmp_path / "aug3"
    assert _run("dmha.bin.augment_data_dir", "--seed", "3", str(src), str(out2)).returncode == 0
    assert _run("dmha.bin.augment_data_dir", "--seed", "4", str(src), str(out3)).returncode == 0
    assert read_kv(out2 / "wav.scp") == wav
    other = read_kv(out3 / "wav.scp")["spk1-u2-noise"]
    assert not np.array_equal(_decode(augmented_wav_bytes(_pipe_args(other))), _decode(a))


def test_plan_of_a_copy_does_not_depend_on_the_other_utterances(tmp_path):
    src = make_data_dir(tmp_path)
    dd = load_data_dir(src)
    full = plan_augmentation(dd, ["reverb", "noise"], 5, Sources())
    part = plan_augmentation(dd, ["reverb", "noise"], 5, Sources(), subset=5)
    assert len(part) == 5
    for u, (spk, spec, s) in part.items():
        assert full[u][1] == spec and full[u][0] == spk and full[u][2] == s
    assert plan_augmentation(dd, ["reverb", "noise"], 5, Sources(), subset=5).keys() == part.keys()


# --- what the copies contain --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,source,snr", [("noise", "synth:pink", 0.0), ("noise", "synth:white", 12.5),
                                             ("noise", "FILE", 5.0), ("music", "synth:music", 8.0),
                                             ("babble", "BABBLE", 15.0)])
def test_requested_snr_is_measured_on_the_output(tmp_path, kind, source, snr):
    clean = _voice(140, 3.0, 1)
    sf.write(tmp_path / "clean.wav", clean, SR, subtype="PCM_16")
    clean = load_audio(str(tmp_path / "clean.wav"))[0]
    sf.write(tmp_path / "noise.wav", 0.3 * np.random.default_rng(0).standard_normal(SR).astype(np.float32),
             SR)  # shorter than the utterance: looped
    babble = []
    for k in range(4):
        sf.write(tmp_path / f"b{k}.wav", _voice(180 + 50 * k, 2.0, 20 + k), SR)
        babble.append(str(tmp_path / f"b{k}.wav"))
    sources = {"FILE": [str(tmp_path / "noise.wav")], "BABBLE": babble}.get(source, [source])
    spec = AugSpec(kind, f"u-{kind}", seed=1, snr=snr, sources=sources)
    out = _decode(augmented_wav_bytes([*spec.to_argv(), str(tmp_path / "clean.wav")]))
    assert len(out) == len(clean)
    assert abs(_measured_snr(out, clean) - snr) < 0.5


@pytest.mark.parametrize("rt60", [0.3, 0.6, 0.9])
def test_simulated_room_has_the_requested_rt60(rt60):
    for seed in range(3):
        rir = effects.make_rir(SR, rt60, np.random.default_rng(seed), drr_db=3.0)
        assert effects.rt60_schroeder(rir, SR) == pytest.approx(rt60, rel=0.15)


def test_reverb_copy_uses_an_impulse_response_file_aligned_on_its_peak(tmp_path):
    room = tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001"
    room.mkdir(parents=True)
    rir = np.zeros(4000, dtype=np.float32)
    rir[100], rir[900] = 0.8, 0.4  # the direct path 100 samples in, one echo 800 samples later
    sf.write(room / "Room001-00001.wav", rir, SR, subtype="FLOAT")
    from dmha.augment.sources import collect_sources

    src = collect_sources(rirs=str(tmp_path / "RIRS_NOISES"))
    assert src.rirs == [str(room / "Room001-00001.wav")]
    x = np.zeros(SR, dtype=np.float32)
    x[1000] = 0.5
    y = apply(x, AugSpec("reverb", "u-reverb", rir=src.rirs[0]), SR, lambda p, r: load_audio(p, r)[0])
    peaks = np.flatnonzero(np.abs(y) > 1e-3)
    assert peaks.tolist() == [1000, 1800]  # aligned: the direct sound stays where it was
    assert y[1800] / y[1000] == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("codec", effects.CODECS)
def test_telephone_copy_is_band_limited_to_4khz_and_keeps_length(tmp_path, codec):
    rng = np.random.default_rng(0)
    x = (_voice(150, 2.0, 3) + 0.02 * rng.standard_normal(2 * SR)).astype(np.float32)  # energy up to 8 kHz
    sf.write(tmp_path / "clean.wav", x, SR, subtype="PCM_16")
    clean = load_audio(str(tmp_path / "clean.wav"))[0]
    spec = AugSpec("telephone", "u-telephone", seed=0, codec=codec)
    out = _decode(augmented_wav_bytes([*spec.to_argv(), str(tmp_path / "clean.wav")]))
    assert len(out) == len(clean)

    def band_power(y, lo, hi):
        f = np.fft.rfftfreq(len(y), 1 / SR)
        p = np.abs(np.fft.rfft(y)) ** 2
        return float(p[(f >= lo) & (f < hi)].sum())

    assert band_power(clean, 4300, 8000) > 0.05 * band_power(clean, 0, 8000)  # the input is wideband
    assert band_power(out, 4300, 8000) < 1e-4 * band_power(out, 0, 8000)
    # Below 3 kHz the copy is the input (pcm, G.711) or a lossy coding of it (GSM keeps its spectrum).
    from scipy.signal import butter, sosfiltfilt

    low = sosfiltfilt(butter(8, 3000, fs=SR, output="sos"), clean)
    corr = float(np.corrcoef(sosfiltfilt(butter(8, 3000, fs=SR, output="sos"), out), low)[0, 1])
    assert corr > {"pcm": 0.999, "ulaw": 0.99, "alaw": 0.99, "gsm": 0.3}[codec], corr
    if codec == "gsm":
        assert corr < 0.99  # the codec is applied, not only the band limit


def test_telephone_plan_draws_codecs_per_copy_and_needs_one(tmp_path):
    dd = load_data_dir(make_data_dir(tmp_path, n_spk=4, n_utt=3))
    plan = plan_augmentation(dd, ["telephone"], 0, Sources())
    codecs = {spec.codec for _, spec, _ in plan.values()}
    assert len(plan) == 12 and codecs <= set(effects.CODECS) and len(codecs) >= 2
    spec = plan["spk1-u2-telephone"][1]
    assert parse_argv([*spec.to_argv(), "a.wav"])[0] == spec  # the line says the codec
    from dmha.common.errors import UserError

    with pytest.raises(UserError, match="u-telephone: --kind telephone needs --codec"):
        apply(np.zeros(SR, dtype=np.float32), AugSpec("telephone", "u-telephone"), SR, load_audio)


# --- speed perturbation ---------------------------------------------------------------------------------

def test_speed_perturbation_scales_duration_and_relabels_speakers(tmp_path):
    src = make_data_dir(tmp_path)
    new, same = tmp_path / "sp", tmp_path / "sp_same"
    assert _run("dmha.bin.perturb_data_dir_speed", str(src), str(new)).returncode == 0
    r = _run("dmha.bin.perturb_data_dir_speed", "--same-speakers", "--factors", "0.9", str(src), str(same))
    assert r.returncode == 0, r.stderr
    assert validate_data_dir(new) == [] and validate_data_dir(same) == []
    u2s = read_kv(new / "utt2spk")
    assert u2s["sp0.9-spk1-u2"] == "sp0.9-spk1" and u2s["sp1.1-spk1-u2"] == "sp1.1-spk1"
    assert len(u2s) == 24 and len(set(u2s.values())) == 8  # 4 speakers x 2 factors: new classes
    assert read_kv(same / "utt2spk") == {f"{u}-sp0.9": s for u, s in read_kv(src / "utt2spk").items()}
    n_clean = len(load_audio(str(src.parent / "wav" / "spk1-u2.wav"))[0])
    wav = read_kv(new / "wav.scp")
    for factor in (0.9, 1.1):
        n = len(_decode(augmented_wav_bytes(_pipe_args(wav[f"sp{factor:g}-spk1-u2"]))))
        assert abs(n - n_clean / factor) <= 1, (factor, n, n_clean)
        assert float(read_kv(new / "utt2dur")[f"sp{factor:g}-spk1-u2"]) == pytest.approx(
            n_clean / SR / factor, abs=2e-3)


@pytest.mark.parametrize("factors", ["0", "-0.9", "0.9 0"])
def test_speed_factor_not_above_zero_fails_with_one_line(tmp_path, factors):
    src = make_data_dir(tmp_path)
    r = _run("dmha.bin.perturb_data_dir_speed", "--factors", factors, str(src), str(tmp_path / "sp"))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "speed factor" in lines[0] and "> 0" in lines[0], r.stderr
    assert not (tmp_path / "sp").exists()


def test_speed_spec_rejects_bad_factor():
    with pytest.raises(ValueError):
        effects.speed_perturb(np.zeros(10, dtype=np.float32), 0.0)
    spec, entry, sr = parse_argv(["--kind", "speed", "--utt", "x", "--speed", "1.1", "a.wav"])
    assert spec.speed == 1.1 and entry == "a.wav" and sr == SR
    assert plan_speed_perturbation  # imported API


# --- stage 1 reads the pipes ----------------------------------------------------------------------------

def test_pipes_decode_through_the_feature_stage(tmp_path):
    src = make_data_dir(tmp_path, n_spk=4, n_utt=2)
    sp, aug = tmp_path / "sp", tmp_path / "sp_aug"
    assert _run("dmha.bin.perturb_data_dir_speed", "--factors", "0.9", str(src), str(sp)).returncode == 0
    # Augment the speed-perturbed copies: pipes whose sources are pipes (babble sources too).
    r = _run("dmha.bin.augment_data_dir", "--subset", "12", str(sp), str(aug))
    assert r.returncode == 0, r.stderr
    fb = subprocess.run(["bash", str(REPO / "steps/make_fbank.sh"), "--nj", "2", str(aug)],
                        env=subprocess_env(), capture_output=True, text=True, cwd=REPO)
    assert fb.returncode == 0, fb.stderr[-2000:]
    feats = read_kv(aug / "feats.scp")
    assert set(feats) == set(read_kv(aug / "wav.scp")) and len(feats) == 12
    assert not (aug / "bad_utts").exists()
    import kaldiio

    frames = read_kv(aug / "utt2num_frames")
    for utt, value in feats.items():
        assert kaldiio.load_mat(value).shape == (int(frames[utt]), 80)
    # A rerun with the same plan keeps the features; another plan removes them (they are of other audio).
    assert "up to date" in _run("dmha.bin.augment_data_dir", "--subset", "12", str(sp), str(aug)).stdout
    assert (aug / "feats.scp").is_file()
    assert _run("dmha.bin.augment_data_dir", "--subset", "10", str(sp), str(aug)).returncode == 0
    assert not (aug / "feats.scp").exists() and not (aug / "data").exists()
    assert validate_data_dir(aug) == []


def test_files_mode_writes_what_the_pipes_print(tmp_path):
    src = make_data_dir(tmp_path, n_spk=4, n_utt=2)
    pipes, files = tmp_path / "pipes", tmp_path / "files"
    assert _run("dmha.bin.augment_data_dir", "--kinds", "reverb,babble", str(src), str(pipes)).returncode == 0
    r = _run("dmha.bin.augment_data_dir", "--kinds", "reverb,babble", "--write-wav", str(tmp_path / "w"),
             "--nj", "2", str(src), str(files))
    assert r.returncode == 0, r.stderr
    pw, fw = read_kv(pipes / "wav.scp"), read_kv(files / "wav.scp")
    assert pw.keys() == fw.keys()
    for utt in pw:
        assert Path(fw[utt]).read_bytes() == augmented_wav_bytes(_pipe_args(pw[utt]))


# --- bad input ------------------------------------------------------------------------------------------

def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_bad_musan_rir_and_noise_files_fail_with_one_line_and_write_nothing(tmp_path):
    src = make_data_dir(tmp_path)
    dest = tmp_path / "aug"
    _one_line_error(_run("dmha.bin.augment_data_dir", "--musan", str(tmp_path / "nope"), str(src), str(dest)),
                    "MUSAN", "nope", "not found")
    musan = tmp_path / "musan"
    for part in ("noise", "music", "speech"):
        (musan / part).mkdir(parents=True)
    _one_line_error(_run("dmha.bin.augment_data_dir", "--musan", str(musan), str(src), str(dest)),
                    "MUSAN noise", "no audio files")
    for part in ("noise", "music", "speech"):
        sf.write(musan / part / "a.wav", 0.1 * np.ones(SR, dtype=np.float32), SR)
    (musan / "noise" / "broken.wav").write_bytes(b"RIFF\x00\x00not a wav file at all")
    _one_line_error(_run("dmha.bin.augment_data_dir", "--musan", str(musan), str(src), str(dest)),
                    "cannot read", "broken.wav")
    empty_rirs = tmp_path / "rirs"
    empty_rirs.mkdir()
    _one_line_error(_run("dmha.bin.augment_data_dir", "--rirs", str(empty_rirs), str(src), str(dest)),
                    "RIR", "no audio files")
    assert not dest.exists()
    # With the broken file gone, MUSAN supplies noise, music and babble.
    (musan / "noise" / "broken.wav").unlink()
    r = _run("dmha.bin.augment_data_dir", "--musan", str(musan), "--kinds", "noise,music,babble", str(src),
             str(dest))
    assert r.returncode == 0, r.stderr
    for line in read_kv(dest / "wav.scp").values():
        assert str(musan) in line and "synth:" not in line


def test_unreadable_noise_at_stage_1_is_a_bad_utterance_with_its_name(tmp_path):
    src = make_data_dir(tmp_path)
    spec = AugSpec("noise", "spk0-u0-noise", snr=5.0, sources=[str(tmp_path / "gone.wav")])
    from dmha.features.audio import AudioError

    with pytest.raises(AudioError, match="gone.wav"):
        load_audio(spec.pipe(str(src.parent / "wav" / "spk0-u0.wav")))
