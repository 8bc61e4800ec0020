"""The mini corpus builder: pure parts (noise mixer, RIR, texts, split, trials, Asterisk conversion)
without any download, and a toy build (6 voices, a few utterances) through local/make_mini_corpus.sh
that needs espeak-ng + MBROLA voices (fetched with local/fetch_debs.sh; skipped if that is impossible).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_script

from dmha.augment import effects as aug
from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import asterisk
from dmha.corpus.mini import SynthConfig, augment_utterance
from dmha.corpus.text import make_text, text_family, word_list
from dmha.corpus.voices import all_voices, select_voices, split_speakers
from dmha.data.trials import make_trials, read_trials, write_trials

SR = 16000


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of ``noisy`` w.r.t. the component along ``clean`` (scale estimated by projection)."""
    g = float(np.dot(noisy, clean) / np.dot(clean, clean))
    resid = noisy - g * clean
    return 10 * np.log10(np.sum((g * clean) ** 2) / np.sum(resid ** 2))


def _voice_like(rng: np.random.Generator, n: int = SR * 2) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 8))
    return (0.3 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


# --- augmentation --------------------------------------------------------------------------------

@pytest.mark.parametrize("snr", [5.0, 12.5, 20.0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_mix_at_snr_hits_the_requested_snr(snr, kind):
    rng = np.random.default_rng(1)
    x = _voice_like(rng)
    noise = aug.coloured_noise(len(x), kind, rng)
    y = aug.mix_at_snr(x, noise, snr)
    measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.01


def test_coloured_noise_spectra_tilt_as_named():
    rng = np.random.default_rng(0)
    low_share = {}
    for kind in ("white", "pink", "brown"):
        n = aug.coloured_noise(SR * 4, kind, rng)
        assert abs(aug.rms(n) - 1.0) < 1e-3
        p = np.abs(np.fft.rfft(n)) ** 2
        f = np.fft.rfftfreq(len(n), 1 / SR)
        low_share[kind] = p[f < 500].sum() / p.sum()
    assert 0.04 < low_share["white"] < 0.08          # 500/8000 of a flat spectrum
    assert low_share["white"] < low_share["pink"] < low_share["brown"]
    assert low_share["brown"] > 0.9


def test_babble_is_unit_rms_and_made_of_the_sources():
    rng = np.random.default_rng(0)
    src = [_voice_like(rng, SR) * (k + 1) for k in range(3)]
    b = aug.babble(SR * 3, src, rng)  # longer than the sources: they are tiled
    assert len(b) == SR * 3 and abs(aug.rms(b) - 1.0) < 1e-3
    with pytest.raises(ValueError):
        aug.babble(100, [], rng)


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_rir_decays_at_the_requested_rt60(rt60):
    rng = np.random.default_rng(3)
    rir = aug.make_rir(SR, rt60, rng, drr_db=3.0, n_early=0)
    assert rir[0] == 1.0 and np.all(np.isfinite(rir))
    tail = rir[1:].astype(np.float64)
    assert abs(10 * np.log10(1.0 / np.sum(tail ** 2)) - 3.0) < 1e-6   # direct-to-reverberant ratio
    # Schroeder energy decay curve: slope between -5 and -25 dB extrapolated to -60 dB.
    edc = np.cumsum(tail[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(edc_db < -5), np.argmax(edc_db < -25)
    est = 3.0 * (i25 - i5) / SR
    assert abs(est - rt60) / rt60 < 0.15


def test_reverberate_keeps_length_and_level_and_smears_energy():
    rng = np.random.default_rng(4)
    x = np.zeros(SR, dtype=np.float32)
    x[1000] = 1.0
    y = aug.reverberate(x, aug.make_rir(SR, 0.5, rng))
    assert len(y) == len(x) and abs(aug.rms(y) - aug.rms(x)) < 1e-4
    assert np.argmax(np.abs(y)) == 1000                       # direct path stays aligned
    assert np.sum(y[2000:] ** 2) > 0.05 * np.sum(y ** 2)      # energy well after the impulse


def test_augment_utterance_snr_and_level_in_range():
    cfg = SynthConfig(p_noise=1.0, p_reverb=0.0, p_telephone=0.0)
    x = _voice_like(np.random.default_rng(5))
    snrs = []
    for i in range(12):
        y, desc = augment_utterance(x, np.random.default_rng(i), cfg, babble_pool=[])
        assert desc.startswith("noise:") and "babble" not in desc     # no pool: no babble
        stated = float(desc.split("snr=")[1])
        assert 5.0 <= stated <= 20.0
        assert abs(_snr_db(x, y) - stated) < 0.5
        level = 20 * np.log10(aug.rms(y))
        assert -32.5 <= level <= -17.5 and np.max(np.abs(y)) <= 0.95 + 1e-6
        snrs.append(stated)
    assert np.ptp(snrs) > 5     # the SNR really varies
    clean_cfg = SynthConfig(p_noise=0.0, p_reverb=0.0, p_telephone=0.0)
    y, desc = augment_utterance(x, np.random.default_rng(0), clean_cfg, babble_pool=[])
    assert desc == "clean" and _snr_db(x, y) > 60


# --- text and voices -----------------------------------------------------------------------------

def test_make_text_deterministic_and_in_the_voice_script():
    a = make_text("de", 10, np.random.default_rng(7))
    assert a == make_text("de", 10, np.random.default_rng(7))
    assert a != make_text("de", 10, np.random.default_rng(8))
    assert len(a.split()) == 10 and a[-1] in ".?!"
    digits = make_text("ja", 8, np.random.default_rng(1))
    assert text_family("ja") == "digits" and all(c.isdigit() or c in " ,.?!" for c in digits)
    he = make_text("he", 6, np.random.default_rng(1))
    assert any("\u0590" <= c <= "\u05ff" for c in he)            # Hebrew letters, not digits
    assert text_family("pt-br") == "pt" and text_family("hr") == "pseudo"
    assert {v.db for v in all_voices() if v.has_english} >= {"de1", "fr1", "sw2"}
    assert not select_voices(["us1"])[0].has_english   # English already
    texts = {make_text("en-us", 8, np.random.default_rng(s)) for s in range(20)}
    assert len(texts) == 20


def test_voice_table_and_split():
    voices = all_voices()
    assert len(voices) == 70 and len({v.db for v in voices}) == 70
    assert not {"ar1", "ar2"} & {v.db for v in voices}  # espeak-ng's Arabic phonemes are not repeatable
    assert sum(v.sex == "f" for v in voices) == 24
    s = split_speakers(voices, seed=0)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (52, 4, 14)
    assert not (set(s["train"]) & set(s["test"])) and not (set(s["val"]) & set(s["test"]))
    assert not (set(s["train"]) & set(s["val"]))
    assert set(s["train"]) | set(s["val"]) | set(s["test"]) == {v.db for v in voices}
    sex = {v.db: v.sex for v in voices}
    assert sorted(sex[d] for d in s["test"]).count("f") == 5   # 14 * 24/70 = 4.8 -> 5
    assert split_speakers(voices, seed=0) == s
    assert split_speakers(voices, seed=1)["test"] != s["test"]
    with pytest.raises(UserError, match="unknown MBROLA voice"):
        select_voices(["us1", "xx9"])
    with pytest.raises(UserError):
        split_speakers(select_voices(["us1", "us2"]), 0, n_test=2, n_val=0)


# --- trials --------------------------------------------------------------------------------------

def _utt2spk(n_spk: int, n_utt: int) -> dict[str, str]:
    return {f"s{s:02d}-{u:04d}": f"s{s:02d}" for s in range(n_spk) for u in range(n_utt)}


def test_make_trials_all_targets_ratio_and_labels(tmp_path):
    u2s = _utt2spk(5, 8)
    tr = make_trials(u2s, nontarget_ratio=3, seed=0)
    n_tgt = 5 * 8 * 7 // 2
    assert int(tr.labels.sum()) == n_tgt and int((~tr.labels).sum()) == 3 * n_tgt
    pairs = list(zip(tr.enroll, tr.test))
    assert len(set(pairs)) == len(pairs)                                  # no duplicates
    assert all(e.encode() < t.encode() for e, t in pairs)                 # no self pairs, one order
    assert all(lab == (u2s[e] == u2s[t]) for (e, t), lab in zip(pairs, tr.labels))
    assert pairs == sorted(pairs, key=lambda p: (p[0].encode(), p[1].encode()))
    tgt = {p for p, lab in zip(pairs, tr.labels) if lab}
    assert tgt == {(a, b) for a, b in itertools.combinations(sorted(u2s), 2) if u2s[a] == u2s[b]}
    again = make_trials(u2s, nontarget_ratio=3, seed=0)
    assert again.enroll == tr.enroll and again.test == tr.test
    other = make_trials(u2s, nontarget_ratio=3, seed=1)
    assert list(zip(other.enroll, other.test)) != pairs
    write_trials(tmp_path / "trials", tr)
    back = read_trials(tmp_path / "trials")
    assert back.enroll == tr.enroll and np.array_equal(back.labels, tr.labels)


def test_make_trials_min_max_and_sparse_sampling():
    u2s = _utt2spk(4, 3)                 # 12 targets, 54 impostor pairs in all
    tr = make_trials(u2s, nontarget_ratio=10, min_trials=1000, seed=0)
    assert int(tr.labels.sum()) == 12 and int((~tr.labels).sum()) == 54   # capped by what exists
    big = _utt2spk(60, 20)               # sparse path: 1200 utts, few impostors wanted
    tr = make_trials(big, nontarget_ratio=0.5, seed=0)
    n_tgt = 60 * 20 * 19 // 2
    assert int((~tr.labels).sum()) == n_tgt // 2
    non = [(e, t) for e, t, lab in zip(tr.enroll, tr.test, tr.labels) if not lab]
    assert len(set(non)) == len(non) and all(big[e] != big[t] for e, t in non)
    capped = make_trials(big, nontarget_ratio=9, max_trials=1000, seed=0)
    assert len(capped) == 1000 and int(capped.labels.sum()) == 100
    with pytest.raises(UserError, match="at least 2 speakers"):
        make_trials({"a-1": "a", "a-2": "a"})


# --- Asterisk prompts (fake tree, no download) ---------------------------------------------------

def test_asterisk_collect_and_convert(tmp_path):
    root = tmp_path / "sounds"
    rng = np.random.default_rng(0)
    for _spk, _, folders, suffix in asterisk.SPEAKERS:
        for k, folder in enumerate(folders):
            d = root / folder / ("sub" if suffix == ".gsm" else "")
            d.mkdir(parents=True, exist_ok=True)
            for i, dur in enumerate([0.5, 1.0, 1.6, 2.0, 3.0, 16.0]):
                x = (0.1 * rng.standard_normal(int(8000 * dur))).astype(np.float32)
                if suffix == ".gsm":
                    sf.write(d / f"p{k}{i}.gsm", x, 8000, format="RAW", subtype="GSM610")
                else:
                    sf.write(d / f"p{k}{i}.wav", x, 8000, subtype="PCM_16")
    files = asterisk.collect(root, seed=0, max_utts=4, min_dur=1.5)
    assert len(files) == 7
    assert len(files["allison"]) == 4          # 2 folders x 3 long prompts, capped at 4
    assert {p.parent.name for p in files["allison"]} == {"en_US_f_Allison", "es_MX_f_Allison"}
    assert all(len(v) == 3 for k, v in files.items() if k != "allison")
    assert files == asterisk.collect(root, seed=0, max_utts=4, min_dur=1.5)

    def write(path, y):
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, SR, subtype="PCM_16")

    utt2wav, utt2spk, utt2dur, _ = asterisk.convert(files, tmp_path / "wav", write)
    assert len(utt2wav) == 4 + 6 * 3 and all(u.startswith(s + "-") for u, s in utt2spk.items())
    for u, p in utt2wav.items():
        info = sf.info(p)
        assert info.samplerate == SR and abs(info.frames / SR - utt2dur[u]) < 1e-6
        assert utt2dur[u] >= 1.5 - 0.03


# --- fetch helper ---------------------------------------------------------------------------------

def test_fetch_debs_cached_is_offline_and_no_apt_is_clear(tmp_path):
    stamps = tmp_path / "x" / ".fetched"
    stamps.mkdir(parents=True)
    (stamps / "mbrola-us1").write_text("cached")
    # Everything stamped: returns at once, no apt (PATH without apt-get).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "cat"):
        os.symlink(shutil.which(tool), bindir / tool)
    env = {"PATH": str(bindir)}
    t = time.time()
    proc = run_script(["bash", "local/fetch_debs.sh", str(tmp_path / "x"), "mbrola-us1"], env=env)
    assert proc.returncode == 0 and time.time() - t < 5
    proc = run_script(["bash", "local/fetch_debs.sh", str(tmp_path / "x"), "mbrola-us2"], env=env,
                      check=False)
    assert proc.returncode == 1 and "needs Debian's apt" in proc.stderr and "mbrola-us2" in proc.stderr
    proc = run_script(["bash", "local/fetch_debs.sh", str(tmp_path / "x")], check=False)
    assert proc.returncode == 1 and "Usage" in proc.stderr


# --- toy build through the real script ------------------------------------------------------------

TOY_VOICES = "us1,us2,de1,de2,fr1,fr2"   # 3 female, 3 male
_EN_WORDS = set(word_list("en")) - set(word_list("de")) - set(word_list("fr"))


@pytest.fixture(scope="module")
def toy_fetched() -> Path:
    """The toy voices (and espeak-ng/mbrola if absent) in the repo's download cache, or skip."""
    dl = REPO / "downloads"
    cmds = []
    tools = [t for t in ("espeak-ng", "mbrola") if shutil.which(t) is None]
    if tools:
        cmds.append(["bash", "local/fetch_debs.sh", "--with-deps", "true", str(dl / "tools"), *tools])
    cmds.append(["bash", "local/fetch_debs.sh", str(dl / "mbrola"),
                 *[f"mbrola-{v}" for v in TOY_VOICES.split(",")]])
    for cmd in cmds:
        proc = run_script(cmd, check=False, timeout=300)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            pytest.skip(f"cannot fetch espeak-ng/MBROLA voices with Debian's apt: {last}")
    return dl


def _build(data: Path, dl: Path, seed: int, nj: int) -> subprocess.CompletedProcess:
    return run_script(["bash", "local/make_mini_corpus.sh", "--voices", TOY_VOICES, "--utts-per-spk", "3:5",
                       "--n-test", "2", "--n-val", "2", "--real-test", "false", "--seed", str(seed),
                       "--nj", str(nj), "--download-dir", str(dl), str(data)], timeout=300)


def _digest(data: Path) -> dict[str, str]:
    """utt -> md5 of its audio, over all sets."""
    out = {}
    for s in ("mini_train", "mini_val", "mini_test"):
        for u, p in read_kv(data / s / "wav.scp").items():
            out[u] = hashlib.md5(Path(p).read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_toy_corpus_build(tmp_path, toy_fetched):
    data = tmp_path / "a" / "data"
    proc = _build(data, toy_fetched, seed=3, nj=2)
    assert "mini_test" in proc.stdout and "nontarget" in proc.stdout
    all_spk = set()
    for s in ("mini_train", "mini_val", "mini_test"):
        d = data / s
        utt2spk = read_kv(d / "utt2spk")
        wav = read_kv(d / "wav.scp")
        dur = read_kv(d / "utt2dur")
        spks = set(utt2spk.values())
        assert len(spks) == 2 and not (spks & all_spk)
        all_spk |= spks
        for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur"):
            keys = list(read_kv(d / name))
            assert keys == sorted(keys, key=str.encode), f"{s}/{name} not C-sorted"
        assert list(wav) == list(utt2spk)
        per_spk = {sp: sum(1 for v in utt2spk.values() if v == sp) for sp in spks}
        assert all(3 <= n <= 5 for n in per_spk.values())
        for u, p in wav.items():
            assert u.startswith(utt2spk[u] + "-") and os.path.isabs(p)
            info = sf.info(p)
            assert info.samplerate == SR and info.subtype == "PCM_16" and info.channels == 1
            assert 2.0 <= info.frames / SR <= 8.0
            assert abs(float(dur[u]) - info.frames / SR) < 2e-3
        if s != "mini_train":
            tr = read_trials(d / "trials")
            assert all(lab == (utt2spk[e] == utt2spk[t]) for e, t, lab in zip(tr.enroll, tr.test, tr.labels))
            n_tgt = sum(n * (n - 1) // 2 for n in per_spk.values())
            n1, n2 = per_spk.values()
            # 10 impostors per target would be more than exist: all n1 * n2 impostor pairs are used.
            assert int(tr.labels.sum()) == n_tgt and int((~tr.labels).sum()) == n1 * n2
    gender = read_kv(data / "mini_test" / "spk2gender")
    assert {gender[s] for s in read_kv(data / "mini_test" / "spk2utt")} == {"f", "m"}
    aug_desc = read_kv(data / "mini_audio" / "utt2aug")
    assert any(d != "clean" for d in aug_desc.values())
    # Voices with an English variant (de1, de2, fr1, fr2) speak some English; us1/us2 only English.
    texts = read_kv(data / "mini_audio" / "utt2text")
    english = {u.split("-")[0] for u, t in texts.items() if set(t.lower().strip(".?!").split()) & _EN_WORDS}
    assert english & {"de1", "de2", "fr1", "fr2"} and {"us1", "us2"} <= english

    # Rerun: complete, skipped in seconds.
    t = time.time()
    proc = _build(data, toy_fetched, seed=3, nj=2)
    assert "skipping" in proc.stdout and time.time() - t < 10

    # Same seed elsewhere, one process: identical audio. Another seed: different corpus.
    same = _build(tmp_path / "b" / "data", toy_fetched, seed=3, nj=1)
    assert same.returncode == 0
    assert _digest(tmp_path / "b" / "data") == _digest(data)
    _build(tmp_path / "c" / "data", toy_fetched, seed=4, nj=1)
    assert _digest(tmp_path / "c" / "data") != _digest(data)


_FAKE_APT_CONFIG = """#!/usr/bin/env bash
echo "sys_list='$FAKE_ETC/sources.list'"
echo "sys_parts='$FAKE_ETC/sources.list.d/'"
"""
_FAKE_APT_GET = """#!/usr/bin/env bash
echo "apt-get $*" >> "$FAKE_LOG"
for a in "$@"; do
  case "$a" in update|install) exit 0 ;; download) dl=1 ;; esac
done
[ -n "${dl:-}" ] || exit 0
for p in "$@"; do
  case "$p" in -*|*=*|download) continue ;; esac
  d=$(mktemp -d); mkdir -p "$d/DEBIAN" "$d/usr/share/fake"
  printf 'Package: %s\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@t>\\nDescription: t\\n' "$p" \\
    > "$d/DEBIAN/control"
  echo "$p" > "$d/usr/share/fake/$p"
  dpkg-deb -b "$d" "${p}_1.0_all.deb" >/dev/null; rm -rf "$d"
done
"""


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build fake packages")
def test_fetch_debs_private_sources_and_unpack(tmp_path):
    """With a fake apt: sources derived from the machine's (components extended, hosts kept), apt told to
    use only the private dirs, packages unpacked with dpkg -x and stamped; a second call runs no apt."""
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text("deb [arch=amd64] http://mirror.example/debian bookworm main\n")
    (etc / "sources.list.d" / "a.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main non-free\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("apt-config", _FAKE_APT_CONFIG), ("apt-get", _FAKE_APT_GET),
                       ("apt-cache", "#!/usr/bin/env bash\nexit 0\n")):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    log = tmp_path / "apt.log"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_ETC": str(etc), "FAKE_LOG": str(log)}
    apt_dir, out = tmp_path / "apt", tmp_path / "x"
    cmd = ["bash", "local/fetch_debs.sh", "--apt-dir", str(apt_dir), "--deb-dir", str(tmp_path / "debs"),
           str(out), "pkg-one", "pkg-two"]
    run_script(cmd, env=env)
    assert (out / "usr/share/fake/pkg-one").read_text().strip() == "pkg-one"
    assert (out / ".fetched" / "pkg-two").is_file() and not list((tmp_path / "debs").glob("*.deb"))
    os_release = Path("/etc/os-release")
    ubuntu = os_release.is_file() and "ubuntu" in os_release.read_text(errors="replace").lower()
    extra = ["multiverse", "universe"] if ubuntu else ["contrib", "non-free"]
    one_line = (apt_dir / "sources.list").read_text()
    assert "http://mirror.example/debian bookworm main" in one_line
    assert all(c in one_line.split() for c in extra)
    deb822 = (apt_dir / "sources.list.d" / "a.sources").read_text()
    comps = next(line for line in deb822.splitlines() if line.startswith("Components:")).split()[1:]
    assert set(comps) == {"main", "non-free", *extra} and "URIs: http://mirror.example/debian" in deb822
    calls = log.read_text()
    assert f"Dir::Etc::sourceparts={apt_dir}/sources.list.d" in calls
    assert f"Dir::State::Lists={apt_dir}/lists" in calls and f"Dir::Cache={apt_dir}/cache" in calls
    assert "update" in calls and "download pkg-one pkg-two" in calls
    n_calls = len(calls.splitlines())
    run_script(cmd, env=env)                          # cached: no apt call at all
    assert len(log.read_text().splitlines()) == n_calls


def test_mbrola_synthesis_is_repeatable(toy_fetched, tmp_path):
    """nz1 reading English gave a different waveform at almost every call through espeak-ng's pipe to
    mbrola; the two-step synthesis (phoneme file, then mbrola) must give the same samples every time."""
    from dmha.corpus.synth import setup_espeak

    proc = run_script(["bash", "local/fetch_debs.sh", str(toy_fetched / "mbrola"), "mbrola-nz1"],
                      check=False, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot fetch mbrola-nz1: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    espeak = setup_espeak(toy_fetched / "tools", toy_fetched / "mbrola", tmp_path / "home", ["nz1", "us1"])
    assert espeak.mbrola
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    for voice in ("mb-nz1", "mb-us1"):
        runs = [espeak.synthesize(text, voice, 150, 50, amplitude=60, tmpdir=str(tmp_path))
                for _ in range(4)]
        first, sr = runs[0]
        assert sr in (16000, 22050) and len(first) > sr  # over a second of speech
        assert 0.01 < float(np.sqrt(np.mean(first ** 2))) < 0.5  # a speech level, not silence/clipping
        for wave, _ in runs[1:]:
            np.testing.assert_array_equal(wave, first)
