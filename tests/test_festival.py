"""Festival and Flite voices in the mini corpus (``--festival true``).

Most tests run a fabricated Festival tree whose ``festival`` and ``flite`` stand-ins read what the real
ones read (the Scheme program: voice, duration stretch, F0 scale, HTS speed, the text in an 8-bit
encoding; Flite's options) and fail where the real ones fail (no ``--libdir``/``--datadir``, an unknown
voice, a Czech voice run outside the library folder), so they need no download: the voice table, the
script, the engine following rate and pitch, errors naming the voice, the build being the same for nj 1
and 2 and leaving mini_test alone. One test uses the real packages when ``downloads/festival`` holds
them (skipped otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_script
from test_rhvoice import SR, _digest, _f0, _fake_mbrola_sets

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import festival, pico, real_sources, rhvoice
from dmha.corpus.mini import SynthConfig
from dmha.corpus.text import text_family
from dmha.corpus.voices import all_voices

# Stand-in for festival: parses the program it is given; output pitch = the voice's own x the F0 scale,
# length = 0.4 s per word x the stretch (diphone voices) or / the speed (HTS voices).
_FAKE_FESTIVAL = r'''#!{python}
import math, os, re, struct, sys, wave, zlib
args = sys.argv[1:]
if "--libdir" not in args or "--datadir" not in args:
    print("Initialization file /usr/share/festival/init.scm not found"); sys.exit(255)
lib = args[args.index("--libdir") + 1]
prog = open(args[-1], "rb").read()
if b"\xc3" in prog:                      # UTF-8 bytes: Festival would read mojibake
    print("SIOD ERROR: not an 8-bit text"); sys.exit(255)
prog = prog.decode("latin-1")
voice = re.search(r"\(voice_(\w+)\)", prog).group(1)
import glob
if not glob.glob(os.path.join(lib, "voices", "*", voice)):
    print(f"SIOD ERROR: unbound variable : voice_{{voice}}"); sys.exit(255)
if voice.startswith("czech_") and not os.path.isfile("czech-lexicon.out"):
    print("warning: Czech lexicon file not found"); sys.exit(255)
if voice in os.environ.get("FAKE_FEST_FAIL", "").split(","):
    sys.exit(255)
text = re.search(r'\(Utterance Text "((?:[^"\\]|\\.)*)"\)', prog).group(1)
m = re.search(r"Duration_Stretch \(\* ([0-9.]+)", prog)
stretch = float(m.group(1)) if m else 1.0
m = re.search(r'"-r" ([0-9.]+)', prog)
stretch /= float(m.group(1)) if m else 1.0
m = re.search(r'"f0" \(\* ([0-9.]+)', prog)
scale = float(m.group(1)) if m else 1.0
out = re.search(r"\(utt.save.wave dmha_u \"([^\"]+)\"", prog).group(1)
sr = 22050 if voice.startswith("suo_") else 16000
f0 = (90 + zlib.crc32(voice.encode()) % 160) * scale
n = int(sr * 0.4 * len(text.split()) * stretch)
frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * f0 * k / sr))) for k in range(n))
with wave.open(out, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr); w.writeframes(frames)
'''

_FAKE_FLITE = r'''#!{python}
import math, struct, sys, wave
a = sys.argv[1:]
if a[a.index("-voice") + 1] != "rms":
    print("unknown voice"); sys.exit(1)
stretch = float(a[a.index("--setf") + 1].split("=")[1])
text = open(a[a.index("-f") + 1], encoding="utf-8").read()
n = int(16000 * 0.4 * len(text.split()) * stretch)
frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 110 * k / 16000))) for k in range(n))
with wave.open(a[a.index("-o") + 1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(frames)
'''

TOY = ["fest-kal", "fest-dita", "fest-lj", "fest-el", "fest-ona", "flite-rms"]


def fake_tree(root: Path, voices: list[festival.FestivalVoice]) -> Path:
    """usr/bin/{festival,flite} (the stand-ins) and usr/share/festival with init.scm, the Czech lexicon
    and a folder per Festival voice."""
    for name, body in (("festival", _FAKE_FESTIVAL), ("flite", _FAKE_FLITE)):
        exe = root / "usr/bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text(body.format(python=sys.executable))
        exe.chmod(0o755)
    lib = root / "usr/share/festival"
    lib.mkdir(parents=True)
    (lib / "init.scm").write_text(";; fake\n")
    (lib / "czech-lexicon.out").write_text("")
    for v in voices:
        if v.program == "festival":
            (lib / "voices" / v.lang / v.voice).mkdir(parents=True)
    return root


@pytest.fixture
def toy_voices() -> list[festival.FestivalVoice]:
    return [v for v in festival.all_festival_voices() if v.db in TOY]


@pytest.fixture
def tree(tmp_path, toy_voices) -> Path:
    return fake_tree(tmp_path / "festival", toy_voices)


# --- the voice table and the program ------------------------------------------------------------------

def test_twelve_persons_with_ids_of_their_own():
    voices = festival.all_festival_voices()
    assert len(voices) == 12 and len({v.db for v in voices}) == 12
    assert len({(v.program, v.voice) for v in voices}) == 12
    assert sorted(v.db for v in voices if v.sex == "f") == ["fest-dita", "fest-lj", "fest-ona"]
    assert {text_family(v.lang) for v in voices} == {"en", "es", "pseudo"}
    # persons the label check found in the MBROLA databases (en1, it3, it4) stay out
    assert not {v.voice for v in voices} & {"rab_diphone", "lp_diphone", "pc_diphone"}
    others = ({v.db for v in all_voices()} | {v.db for v in rhvoice.all_rhvoice_voices()}
              | {v.db for v in pico.all_pico_voices()} | set(real_sources.LABEL_MAP.values()))
    assert not others & {v.db for v in voices}
    pkgs = festival.packages(voices)
    assert pkgs[:2] == ["festival", "flite"] and len(pkgs) == len(set(pkgs)) == 13
    assert all(p.startswith("festvox-") for p in pkgs[2:])


def test_split_is_seeded_stratified_and_has_no_test_part():
    voices = festival.all_festival_voices()
    a = festival.split_festival(voices, 3, 2)
    assert a == festival.split_festival(voices, 3, 2) and sorted(a) == ["train", "val"]
    assert len(a["val"]) == 2 and len(a["train"]) == 10 and not set(a["val"]) & set(a["train"])
    sex = {v.db: v.sex for v in voices}
    assert sorted(sex[s] for s in a["val"]) == ["f", "m"]
    assert any(festival.split_festival(voices, s, 2)["val"] != a["val"] for s in range(4, 12))
    for bad in (1, -1, 12):
        with pytest.raises(UserError, match="--n-festival-val"):
            festival.split_festival(voices, 0, bad)


def test_script_scales_duration_and_f0_and_quotes_the_text(tmp_path):
    lib = tmp_path / "lib"
    s = festival.festival_script("kal_diphone", 'Say "hi" \\ now', 80, 115, tmp_path / "o.wav", lib)
    assert "(voice_kal_diphone)" in s and "(* 1.2500 (or (Parameter.get 'Duration_Stretch) 1.0))" in s
    assert '(* 1.1500 (item.feat dmha_tg "f0"))' in s
    assert '(Utterance Text "Say \\"hi\\" \\\\ now")' in s
    # the F0 targets are scaled after Int_Targets and before the waveform is made
    assert s.index("(Int_Targets dmha_u)") < s.index('"f0"') < s.index("(Wave_Synth dmha_u)")
    czech = festival.festival_script("czech_krb", "x", 100, 100, tmp_path / "o.wav", lib)
    assert czech.startswith(f'(defvar czech-krb-unisyn-index "{lib}/voices/czech/czech_krb/group/krb.group")')
    hts = festival.festival_script("upc_ca_ona_hts", "x", 120, 90, tmp_path / "o.wav", lib)
    assert '(list "-r" 1.2000)' in hts and '"f0"' not in hts and "utt.synth" in hts


# --- the engine on the fabricated tree ----------------------------------------------------------------

def test_engine_follows_rate_and_pitch_and_writes_8_bit_text(tree, toy_voices, tmp_path):
    eng = festival.setup_festival(tree, toy_voices)
    text = "Río jardín mañana café música"          # non-ASCII Spanish: must reach Festival as Latin-1
    normal, sr = eng.synthesize(text, "festival:el_diphone", 100, 100, tmpdir=str(tmp_path))
    slow, _ = eng.synthesize(text, "festival:el_diphone", 80, 100, tmpdir=str(tmp_path))
    high, _ = eng.synthesize(text, "festival:el_diphone", 100, 115, tmpdir=str(tmp_path))
    assert sr == SR and normal.size / sr == pytest.approx(2.0, abs=0.01)
    assert slow.size / normal.size == pytest.approx(1.25, abs=0.01)
    assert _f0(high, sr) / _f0(normal, sr) == pytest.approx(1.15, abs=0.02)
    fast_hts, _ = eng.synthesize(text, "festival:upc_ca_ona_hts", 125, 100, tmpdir=str(tmp_path))
    assert fast_hts.size / sr == pytest.approx(1.6, abs=0.01)
    czech, _ = eng.synthesize("Dobrý den, čtyři", "festival:czech_dita", 100, 100, tmpdir=str(tmp_path))
    assert czech.size > 0
    rms, rms_sr = eng.synthesize("one two three four", "flite:rms", 50, 100, tmpdir=str(tmp_path))
    assert rms_sr == SR and rms.size / rms_sr == pytest.approx(3.2, abs=0.01)


def test_missing_voice_failing_voice_and_missing_program_are_named(tree, toy_voices, tmp_path, monkeypatch):
    gone = [v for v in festival.all_festival_voices() if v.db == "fest-ked"]
    with pytest.raises(UserError, match=r"voice ked_diphone \(fest-ked\) not found.*festvox-kdlpc16k"):
        festival.setup_festival(tree, gone)
    monkeypatch.setenv("FAKE_FEST_FAIL", "suo_fi_lj_diphone")
    with pytest.raises(UserError, match=r"festival voice suo_fi_lj_diphone \(fest-lj\) cannot synthesize"):
        festival.setup_festival(tree, toy_voices)
    monkeypatch.delenv("FAKE_FEST_FAIL")
    (tree / "usr/bin/flite").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="flite not found"):
        festival.setup_festival(tree, toy_voices)


def test_add_festival_same_for_any_nj_and_leaves_mini_test_alone(tree, toy_voices, tmp_path, monkeypatch):
    from dmha.bin import make_mini_corpus as cli

    monkeypatch.setattr(festival, "all_festival_voices", lambda: toy_voices)
    out = {}
    for nj in (1, 2):
        data = tmp_path / f"nj{nj}" / "data"
        mbrola_split = _fake_mbrola_sets(data)
        test_before = _digest(data / "mini_test")
        args = argparse.Namespace(n_festival_val=2, seed=4, nj=nj, nontarget_ratio=3.0, min_trials=10)
        stats: dict = {}
        cli.add_festival(args, data, data / "mini_audio", tree.parent, SynthConfig(min_utts=3, max_utts=4),
                         mbrola_split, stats)
        assert _digest(data / "mini_test") == test_before
        out[nj] = {k: _digest(data / k) for k in ("mini_train", "mini_val", "mini_audio/festival")}
        spk = {n: set(read_kv(data / n / "utt2spk").values()) for n in ("mini_train", "mini_val")}
        ids = set(TOY)
        assert len(spk["mini_train"] & ids) == 4 and len(spk["mini_val"] & ids) == 2
        assert {"de1", "us1"} < spk["mini_train"] and {"fr1", "fr2"} < spk["mini_val"]
        wavs = read_kv(data / "mini_train/wav.scp")
        for u, s in read_kv(data / "mini_train/utt2spk").items():
            if s in ids:
                info = sf.info(wavs[u])
                assert "/mini_audio/festival/wav/" in wavs[u] and info.samplerate == SR
                assert 2.0 <= info.frames / SR <= 8.0
        assert stats["mini_val"]["speakers"] == 4 and "target" in stats["mini_val"]
    assert out[1] == out[2]


# --- the real packages (skipped without downloads/festival) -------------------------------------------

FEST_DL = REPO / "downloads" / "festival"


def test_real_festival_follows_rate_and_pitch_and_repeats(tmp_path):
    if not os.access(FEST_DL / "usr/bin/festival", os.X_OK):
        pytest.skip("no Festival in downloads/festival (make_mini_corpus.sh --festival true fetches it)")
    voices = [v for v in festival.all_festival_voices() if v.db in ("fest-kal", "fest-machac")]
    eng = festival.setup_festival(FEST_DL, voices)
    text = "Seven green windows, and the old teacher remembers every quiet morning."

    def f0_median(wave: np.ndarray, sr: int) -> float:
        librosa = pytest.importorskip("librosa")
        f0, _, _ = librosa.pyin(wave.astype(np.float64), fmin=50, fmax=400, sr=sr)
        return float(np.nanmedian(f0))

    base, sr = eng.synthesize(text, "festival:kal_diphone", 100, 100, tmpdir=str(tmp_path))
    np.testing.assert_array_equal(eng.synthesize(text, "festival:kal_diphone", 100, 100)[0], base)
    slow, _ = eng.synthesize(text, "festival:kal_diphone", 80, 100, tmpdir=str(tmp_path))
    low, _ = eng.synthesize(text, "festival:kal_diphone", 100, 85, tmpdir=str(tmp_path))
    assert sr == SR and 2.0 < base.size / sr < 8.0
    assert slow.size / base.size == pytest.approx(1.25, abs=0.08)
    assert f0_median(low, sr) / f0_median(base, sr) == pytest.approx(0.85, abs=0.05)
    czech, czech_sr = eng.synthesize("Dobrý den, jedna dva tři čtyři pět.", "festival:czech_machac", 100, 100)
    assert 1.5 < czech.size / czech_sr < 4.0          # read as words: spelled out it took 7.4 s


@pytest.mark.slow
def test_toy_shell_build_with_festival(tmp_path):
    """Through local/make_mini_corpus.sh on the real packages: mini_test byte-identical to a build without
    --festival, the Festival part the same for nj 1 and 2; a voice folder gone stops the build naming it,
    with no completion stamp."""
    from test_rhvoice import shell_builds_agree

    if not os.access(FEST_DL / "usr/bin/festival", os.X_OK):
        pytest.skip("no Festival in downloads/festival (make_mini_corpus.sh --festival true fetches it)")
    fest = ("--festival", "true", "--n-festival-val", "2")
    shell_builds_agree(tmp_path, *fest)
    ids = {v.db for v in festival.all_festival_voices()}
    spk = {n: set(read_kv(tmp_path / "two" / n / "utt2spk").values()) & ids
           for n in ("mini_train", "mini_val")}
    assert len(spk["mini_train"]) == 10 and len(spk["mini_val"]) == 2
    assert "festival=true" in (tmp_path / "two/.mini_corpus.done").read_text()

    # A voice folder gone (a damaged download): named, and nothing looks complete.
    broken = tmp_path / "dl"
    broken.mkdir()
    for sub in ("apt", "tools", "mbrola"):
        if (REPO / "downloads" / sub).exists():
            (broken / sub).symlink_to((REPO / "downloads" / sub).resolve())
    ft = broken / "festival"
    (ft / "usr/share/festival").mkdir(parents=True)
    for sub in (".fetched", "usr/bin", "usr/lib", "lib"):
        if (FEST_DL / sub).exists():
            (ft / sub).symlink_to((FEST_DL / sub).resolve())
    for entry in (FEST_DL / "usr/share/festival").iterdir():
        if entry.name != "voices":
            (ft / "usr/share/festival" / entry.name).symlink_to(entry.resolve())
    for lang in (FEST_DL / "usr/share/festival/voices").iterdir():
        (ft / "usr/share/festival/voices" / lang.name).mkdir(parents=True)
        for v in lang.iterdir():
            if v.name != "ked_diphone":
                (ft / "usr/share/festival/voices" / lang.name / v.name).symlink_to(v.resolve())
    proc = run_script(["bash", "local/make_mini_corpus.sh", "--voices", "us1,us2,de1,de2,fr1,fr2",
                       "--utts-per-spk", "3:4", "--n-test", "2", "--n-val", "2", "--real-test", "false",
                       "--download-dir", str(broken), *fest, str(tmp_path / "bad")], check=False, timeout=600)
    assert proc.returncode != 0 and "ked_diphone (fest-ked) not found" in proc.stderr
    assert not (tmp_path / "bad/.mini_corpus.done").exists()
