"""RHVoice voices in the mini corpus (``--rhvoice true``).

Most tests run a fabricated RHVoice tree whose ``RHVoice-test`` mimics the real one's traps (an unknown
profile silently gives the first voice, exit status 0 even without output, 24 kHz), so they need no
download: voice table, private data folder per voice, probe errors naming the voice, the build being
the same for nj=1 and nj=2 and leaving mini_test untouched. Two tests use the real packages when
``downloads/rhvoice`` holds them (skipped otherwise), the toy shell build also the MBROLA toy voices.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_script

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import rhvoice
from dmha.corpus.mini import SynthConfig, write_set, write_wav
from dmha.corpus.real_sources import LABEL_MAP
from dmha.corpus.text import make_text, text_family
from dmha.corpus.voices import all_voices
from dmha.data.trials import read_trials

SR = 16000

# A stand-in for RHVoice-test: the output's pitch encodes the voice that spoke, its length the words.
_FAKE = r'''#!{python}
import math, os, struct, sys, wave, zlib
args = sys.argv[1:]
opt = {{args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}}
text = sys.stdin.read()
root = os.environ["RHVOICE_DATA_PATH"]
names, by_language = {{}}, []
for d in sorted(os.listdir(os.path.join(root, "voices"))):
    info = dict(line.strip().split("=", 1) for line in open(os.path.join(root, "voices", d, "voice.info"),
                                                             encoding="utf-8") if "=" in line)
    names[info["name"].lower()] = d
    by_language.append((info["language"], d))
# The real one's silent fallback: the voice of the first language (Albanian: Hana).
voice = names.get(opt["-p"].lower()) or min(by_language)[1]
if voice in os.environ.get("FAKE_RHV_FAIL", "").split(","):
    sys.exit(0)                                                      # no output, status 0 (as RHVoice)
rate = max(50, int(opt.get("-r", 100))) / 100.0
f0 = 90 + zlib.crc32(voice.encode()) % 160
n = int(24000 * 0.42 * len(text.split()) / rate)
frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * f0 * k / 24000)
                                          * (1 + 0.3 * math.sin(zlib.crc32(text.encode()) + k / 999))))
                  for k in range(n))
with wave.open(opt["-o"], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(24000); w.writeframes(frames)
'''

TOY = ["rhv-slt", "rhv-bdl", "rhv-anna", "rhv-evgeniy", "rhv-leticia", "rhv-hana"]


def fake_tree(root: Path, voices: list[rhvoice.RHVoiceVoice]) -> Path:
    """usr/bin/RHVoice-test (the stand-in) and usr/share/RHVoice/{voices,languages} for ``voices``."""
    exe = root / "usr/bin/RHVoice-test"
    exe.parent.mkdir(parents=True)
    exe.write_text(_FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    share = root / "usr/share/RHVoice"
    for v in voices:
        for d in v.voice_dirs:
            language = "English" if d == v.english_dir else v.language
            name = "Letícia-F123" if d == "Leticia-F123" else d.capitalize()
            (share / "voices" / d).mkdir(parents=True)
            (share / "voices" / d / "voice.info").write_text(f"name={name}\nlanguage={language}\n")
            (share / "languages" / language).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def toy_voices() -> list[rhvoice.RHVoiceVoice]:
    return rhvoice.select_rhvoice_voices(TOY)


@pytest.fixture
def tree(tmp_path, toy_voices) -> Path:
    return fake_tree(tmp_path / "rhvoice", toy_voices)


def _f0(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave[:sr]))
    return float(np.argmax(spec) * sr / min(len(wave), sr))


# --- the voice table --------------------------------------------------------------------------------

def test_table_one_id_per_person_and_none_shared_with_the_corpus():
    voices = rhvoice.all_rhvoice_voices()
    assert len(voices) == 32 and len({v.db for v in voices}) == 32
    dirs = [d for v in voices for d in v.voice_dirs]
    assert len(dirs) == len(set(dirs)) == 33                       # evgeniy: two folders, one id
    assert "aleksandr" not in dirs and "aleksandr-hq" in dirs      # one build of Karlov's voice
    ev = rhvoice.select_rhvoice_voices(["evgeniy"])[0]
    assert ev.voice_dir == "evgeniy-rus" and ev.engine_voice(True) == "evgeniy-eng" and ev.has_english
    assert sum(v.sex == "f" for v in voices) == 17 and sum(v.sex == "m" for v in voices) == 15
    taken = {v.db for v in all_voices()} | {s for s in LABEL_MAP.values() if s}
    assert not taken & {v.db for v in voices}
    assert all(v.lang for v in voices) and all(v.licence and v.person for v in voices)


def test_select_and_packages():
    assert [v.db for v in rhvoice.select_rhvoice_voices(["slt", "rhv-magda"])] == ["rhv-magda", "rhv-slt"]
    with pytest.raises(UserError, match="unknown RHVoice voice.*nosuch"):
        rhvoice.select_rhvoice_voices(["nosuch"])
    pk = rhvoice.packages(rhvoice.select_rhvoice_voices(["slt", "anna", "evgeniy"]))
    assert pk == [*rhvoice.BASE_PACKAGES, "rhvoice-english", "rhvoice-russian"]
    assert len(rhvoice.packages(rhvoice.all_rhvoice_voices())) == len(rhvoice.BASE_PACKAGES) + 10


def test_print_rhvoice_packages_cli(capsys):
    from dmha.bin import make_mini_corpus as cli

    cli.main(["--print-rhvoice-packages", "--rhv-voices", "magda", "data"])
    assert capsys.readouterr().out.split() == [*rhvoice.BASE_PACKAGES, "rhvoice-polish"]


def test_cyrillic_texts_for_cyrillic_voices_and_no_mbrola_language_changes():
    for lang in ("ru", "uk", "ky", "tt", "mk"):
        assert text_family(lang) == "cyrillic"
        t = make_text(lang, 12, np.random.default_rng(3))
        assert t == make_text(lang, 12, np.random.default_rng(3))
        letters = [c for c in t if c.isalpha()]
        assert letters and all("\u0400" <= c <= "\u04ff" for c in letters)
    # The same draws as the Latin pseudo-words: only the script differs.
    assert len(make_text("ru", 9, np.random.default_rng(5)).split()) == 9
    ru, hr = (make_text(lang, 9, np.random.default_rng(5)) for lang in ("ru", "hr"))
    assert len(ru) == len(hr) and ru != hr
    assert not {text_family(v.lang) for v in all_voices()} & {"cyrillic"}


def test_split_is_seeded_stratified_and_has_no_test_part(toy_voices):
    a = rhvoice.split_rhvoice(toy_voices, 0, 2)
    assert a == rhvoice.split_rhvoice(toy_voices, 0, 2) and set(a) == {"train", "val"}
    assert sorted(a["train"] + a["val"]) == sorted(v.db for v in toy_voices) and len(a["val"]) == 2
    sex = {v.db: v.sex for v in toy_voices}
    assert {sex[s] for s in a["val"]} == {"f", "m"}
    assert any(rhvoice.split_rhvoice(toy_voices, s, 2) != a for s in range(1, 6))
    with pytest.raises(UserError, match="n-rhv-val"):
        rhvoice.split_rhvoice(toy_voices, 0, 1)


# --- private data folders, probe, errors ------------------------------------------------------------

def test_setup_gives_every_voice_a_folder_with_only_itself(tree, toy_voices, tmp_path):
    eng = rhvoice.setup_rhvoice(tree, tmp_path / "home", toy_voices)
    assert set(eng.homes) == {d for v in toy_voices for d in v.voice_dirs}
    data_path, profile = eng.homes["Leticia-F123"]
    assert profile == "Letícia-F123"                                # voice.info's name, not the folder
    assert os.listdir(Path(data_path) / "voices") == ["Leticia-F123"]
    assert os.listdir(Path(data_path) / "languages") == ["Brazilian-Portuguese"]
    assert eng.homes["evgeniy-eng"][0] != eng.homes["evgeniy-rus"][0]
    # By folder name in the full tree the stand-in (like RHVoice) falls back to another voice;
    # through the private folder the output is Leticia's whatever the profile.
    wave, sr = eng.synthesize("um dois tres quatro", "Leticia-F123", 100, 100)
    full = dict(eng.env, RHVOICE_DATA_PATH=str(tree / "usr/share/RHVoice"))
    by_folder = {"Leticia-F123": (full["RHVOICE_DATA_PATH"], "Leticia-F123")}
    fallback = rhvoice.RHVoice(eng.binary, full, by_folder)
    wrong, _ = fallback.synthesize("um dois tres quatro", "Leticia-F123", 100, 100)
    assert sr == 24000 and abs(_f0(wave, sr) - _f0(wrong, sr)) > 2.0


def test_missing_voice_wrong_language_failing_voice_and_missing_binary_are_named(tree, toy_voices, tmp_path):
    shutil.rmtree(tree / "usr/share/RHVoice/voices/hana")
    with pytest.raises(UserError, match="voices/hana not found"):
        rhvoice.setup_rhvoice(tree, tmp_path / "h1", toy_voices)
    ok = [v for v in toy_voices if v.db != "rhv-hana"]
    (tree / "usr/share/RHVoice/voices/anna/voice.info").write_text("name=Anna\nlanguage=Ukrainian\n")
    with pytest.raises(UserError, match="anna/voice.info: language 'Ukrainian'"):
        rhvoice.setup_rhvoice(tree, tmp_path / "h2", ok)
    ok = [v for v in ok if v.db != "rhv-anna"]
    os.environ["FAKE_RHV_FAIL"] = "bdl"
    try:
        with pytest.raises(UserError, match=r"RHVoice voice bdl \(rhv-bdl\) cannot synthesize"):
            rhvoice.setup_rhvoice(tree, tmp_path / "h3", ok)
    finally:
        del os.environ["FAKE_RHV_FAIL"]
    (tree / "usr/bin/RHVoice-test").unlink()
    if shutil.which("RHVoice-test") is None:
        with pytest.raises(UserError, match="RHVoice-test not found.*fetch_debs.sh --with-deps true"):
            rhvoice.setup_rhvoice(tree, tmp_path / "h4", ok)


# --- the build: nj, test sets untouched, audio format -----------------------------------------------

def _fake_mbrola_sets(data: Path) -> dict[str, list[str]]:
    """mini_train/val/test of 2 'MBROLA' speakers each, with clean audio for babble noise."""
    split = {"train": ["de1", "us1"], "val": ["fr1", "fr2"], "test": ["de2", "us2"]}
    rng = np.random.default_rng(0)
    for part, spks in split.items():
        utt2spk = {f"{s}-{i:04d}": s for s in spks for i in range(1, 4)}
        paths = {}
        for u, s in utt2spk.items():
            for kind in ("clean", "wav"):
                p = data / "mini_audio" / kind / s / f"{u}.wav"
                write_wav(p, 0.1 * rng.standard_normal(SR * 2).astype(np.float32))
            paths[u] = str(p)
        write_set(data / f"mini_{part}", paths, utt2spk, {u: 2.0 for u in utt2spk}, {s: "m" for s in spks},
                  None)
    return split


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "home" not in p.relative_to(root).parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes().replace(str(root.parent.parent).encode(), b"ROOT"))
    return h.hexdigest()


def test_add_rhvoice_same_for_any_nj_and_leaves_mini_test_alone(tree, toy_voices, tmp_path):
    from dmha.bin import make_mini_corpus as cli

    out = {}
    for nj in (1, 2):
        data = tmp_path / f"nj{nj}" / "data"
        mbrola_split = _fake_mbrola_sets(data)
        test_before = _digest(data / "mini_test")
        args = argparse.Namespace(rhv_voices=",".join(TOY), n_rhv_val=2, seed=4, nj=nj, nontarget_ratio=3.0,
                                  min_trials=10)
        stats: dict = {}
        cli.add_rhvoice(args, data, data / "mini_audio", tree.parent, SynthConfig(min_utts=3, max_utts=4),
                        mbrola_split, stats)
        assert _digest(data / "mini_test") == test_before
        out[nj] = {k: _digest(data / k) for k in ("mini_train", "mini_val", "mini_audio/rhvoice")}
        sets = {n: read_kv(data / n / "utt2spk") for n in ("mini_train", "mini_val")}
        spk = {n: set(u.values()) for n, u in sets.items()}
        rhv = {v.db for v in toy_voices}
        assert {"de1", "us1"} < spk["mini_train"] and {"fr1", "fr2"} < spk["mini_val"]
        assert len(spk["mini_val"] & rhv) == 2 and len(spk["mini_train"] & rhv) == 4
        assert not spk["mini_train"] & spk["mini_val"]
        assert stats["mini_val"]["speakers"] == 4 and "target" in stats["mini_val"]
        tr = read_trials(data / "mini_val/trials")
        assert set(tr.enroll) & {u for u, s in sets["mini_val"].items() if s in rhv}
        assert not (data / "mini_train/trials").exists()
        wavs = read_kv(data / "mini_train/wav.scp")
        dur = read_kv(data / "mini_train/utt2dur")
        for u, s in sets["mini_train"].items():
            if s in rhv:
                info = sf.info(wavs[u])
                assert u.startswith(s + "-") and "/mini_audio/rhvoice/wav/" in wavs[u]
                assert info.samplerate == SR and info.subtype == "PCM_16"
                assert 2.0 <= info.frames / SR <= 8.0 and abs(float(dur[u]) - info.frames / SR) < 2e-3
        n_utts = {s: sum(1 for x in sets["mini_train"].values() if x == s) for s in spk["mini_train"] & rhv}
        assert all(3 <= n <= 4 for n in n_utts.values())
        texts = read_kv(data / "mini_audio/rhvoice/utt2text")
        assert any("\u0400" <= c <= "\u04ff" for u, t in texts.items() if u.startswith("rhv-anna") for c in t)
    assert out[1] == out[2]


# --- the real packages (skipped without downloads/rhvoice) ------------------------------------------

RHV_DL = REPO / "downloads" / "rhvoice"


@pytest.fixture(scope="module")
def real_tree() -> Path:
    if not os.access(RHV_DL / "usr/bin/RHVoice-test", os.X_OK):
        pytest.skip("no RHVoice in downloads/rhvoice (local/make_mini_corpus.sh --rhvoice true fetches it)")
    return RHV_DL


def test_real_rhvoice_is_repeatable_and_leticia_is_not_hana(real_tree, tmp_path):
    voices = rhvoice.select_rhvoice_voices(["leticia", "hana"])
    eng = rhvoice.setup_rhvoice(real_tree, tmp_path / "home", voices)
    text = "Bapo dekim sulavo, tirek monu fela."
    runs = {d: [eng.synthesize(text, d, 90, 110, tmpdir=str(tmp_path))[0] for _ in range(2)]
            for d in ("Leticia-F123", "hana")}
    for a, b in runs.values():
        np.testing.assert_array_equal(a, b)
        assert len(a) > 24000 and 0.005 < float(np.sqrt(np.mean(a ** 2))) < 0.7
    a, b = runs["Leticia-F123"][0], runs["hana"][0]
    assert len(a) != len(b) or not np.array_equal(a, b)


TOY_MBROLA = "us1,us2,de1,de2,fr1,fr2"


def _shell_build(data: Path, nj: int, *extra: str) -> object:
    return run_script(["bash", "local/make_mini_corpus.sh", "--voices", TOY_MBROLA, "--utts-per-spk", "3:4",
                       "--n-test", "2", "--n-val", "2", "--real-test", "false", "--seed", "5",
                       "--nj", str(nj), "--download-dir", str(REPO / "downloads"), *extra, str(data)],
                      check=False, timeout=600)


def shell_builds_agree(tmp_path: Path, *opts: str) -> None:
    """Three toy builds through local/make_mini_corpus.sh: ``plain`` (without ``opts``, nj 2), ``one`` and
    ``two`` (with them, nj 1 and 2). Asserts that mini_test of ``two`` is byte-identical to ``plain``'s
    (the option leaves the test set alone) and that mini_train/mini_val of ``one`` and ``two`` are equal
    (``--nj`` changes nothing). Skips when the toy MBROLA build cannot run here."""
    plain = _shell_build(tmp_path / "plain", 2)
    if plain.returncode != 0:
        pytest.skip(f"toy MBROLA build impossible here: {(plain.stderr.strip().splitlines() or ['?'])[-1]}")
    one, two = _shell_build(tmp_path / "one", 1, *opts), _shell_build(tmp_path / "two", 2, *opts)
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]

    def wavs(data: Path, name: str) -> dict[str, bytes]:
        return {u: Path(p).read_bytes() for u, p in read_kv(data / name / "wav.scp").items()}

    for f in ("utt2spk", "utt2dur", "trials", "spk2gender"):
        plain_f, two_f = (tmp_path / d / "mini_test" / f for d in ("plain", "two"))
        assert plain_f.read_bytes() == two_f.read_bytes(), f
    assert wavs(tmp_path / "plain", "mini_test") == wavs(tmp_path / "two", "mini_test")
    for name in ("mini_train", "mini_val"):
        assert wavs(tmp_path / "one", name) == wavs(tmp_path / "two", name)


@pytest.mark.slow
def test_toy_shell_build_with_rhvoice(real_tree, tmp_path):
    """Through local/make_mini_corpus.sh: mini_test byte-identical to a build without --rhvoice; the
    RHVoice part the same for nj 1 and 2; a broken voice stops the build naming it, with no stamp."""
    if shutil.which("espeak-ng") is None and not (REPO / "downloads/tools/usr/bin/espeak-ng").exists():
        pytest.skip("no espeak-ng")
    rhv = ("--rhvoice", "true", "--rhv-voices", "slt,bdl,anna,magda", "--n-rhv-val", "2")
    shell_builds_agree(tmp_path, *rhv)
    for name in ("mini_train", "mini_val"):
        assert {s for s in read_kv(tmp_path / "two" / name / "utt2spk").values() if s.startswith("rhv-")}
    assert (tmp_path / "two/mini_val/trials").read_bytes() == (tmp_path / "one/mini_val/trials").read_bytes()
    assert "rhvoice=true" in (tmp_path / "two/.mini_corpus.done").read_text()

    # A voice whose folder is gone (a damaged download): named, and nothing looks complete.
    broken = tmp_path / "dl"
    broken.mkdir()
    for sub in ("apt", "tools", "mbrola"):
        if (REPO / "downloads" / sub).exists():
            (broken / sub).symlink_to((REPO / "downloads" / sub).resolve())
    rt = broken / "rhvoice"
    (rt / "usr/share/RHVoice/voices").mkdir(parents=True)
    for sub in (".fetched", "usr/bin", "usr/lib", "usr/share/RHVoice/languages"):
        (rt / sub).symlink_to(real_tree.resolve() / sub)
    for v in (real_tree / "usr/share/RHVoice/voices").iterdir():
        if v.name != "magda":
            (rt / "usr/share/RHVoice/voices" / v.name).symlink_to(v.resolve())
    proc = run_script(["bash", "local/make_mini_corpus.sh", "--voices", TOY_MBROLA, "--utts-per-spk", "3:4",
                       "--n-test", "2", "--n-val", "2", "--real-test", "false", "--download-dir", str(broken),
                       *rhv, str(tmp_path / "bad")], check=False, timeout=600)
    assert proc.returncode != 0 and "voices/magda not found" in proc.stderr
    assert not (tmp_path / "bad/.mini_corpus.done").exists()
