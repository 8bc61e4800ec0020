"""Mini corpus version 5, the real-voice part, on tiny fabricated package trees (no download needed):
listing and labelling (Tux Paint languages, Drascula prefixes, Kajongg artist tags, the UQM zip),
decoding (Drascula's raw u8 between header and tail; an unreadable clip is named), cutting, the seeded
speaker-disjoint split, and the whole build being identical for nj=1 and nj=2.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import real_corpus, real_sources
from dmha.corpus.mini import pool_map, write_set, write_wav
from dmha.corpus.real_corpus import RealConfig, build_real, cut_pieces, estimate_sex, split_real_speakers

SR = 16000


def _tone(f0: float, sec: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic 'voice' with a little noise (different f0 = different speaker)."""
    t = np.arange(int(sec * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    x = x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * x).astype(np.float32)


def _ogg(path: Path, wave: np.ndarray, sr: int = 44100, artist: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", sr, 1, format="OGG", subtype="VORBIS") as f:
        if artist:
            f.artist = artist
        f.write(wave)


def _drascula_bytes(wave: np.ndarray) -> bytes:
    body = np.clip(np.round(wave * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    return b"\x80" * real_sources.DRASCULA_HEADER + body + b"\x80" * real_sources.DRASCULA_TAIL


def fake_share(root: Path) -> Path:
    """A usr/share tree shaped like the real packages: 3 Tux Paint languages, Drascula en, UQM, Kajongg."""
    share = root / "usr/share"
    for lang, f0 in (("fr", 110.0), ("ru", 150.0), ("ca", 220.0)):
        for i in range(6):
            _ogg(share / f"tuxpaint/stamps/animals/s{i}_desc_{lang}.ogg", _tone(f0, 2.0 + 0.1 * i, 44100, i))
        _ogg(share / f"tuxpaint/stamps/animals/s0_{lang}.ogg", _tone(f0, 2.0, 44100))  # not a description
    d = share / "scummvm/drascula/en"
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"{i}.ALS").write_bytes(_drascula_bytes(_tone(130.0, 2.0, 11025, i)))
        (d / f"VB{i}.ALS").write_bytes(_drascula_bytes(_tone(95.0, 2.0, 11025, i)))
    (d / "AN7_3.ALG").write_bytes(b"not audio")
    uqm = share / real_sources.UQM_ARCHIVE
    uqm.parent.mkdir(parents=True)
    with zipfile.ZipFile(uqm, "w") as z:
        for race, f0 in (("spathi", 180.0), ("syreen", 240.0)):
            for i in range(3):
                tmp = root / f"{race}{i}.ogg"
                _ogg(tmp, _tone(f0, 17.0, 11025, i), 11025)
                z.write(tmp, f"3dovoice/{race}/{race}-{i:03d}.ogg")
            z.writestr(f"3dovoice/{race}/{race}.txt", "subtitles")
    for folder, artist in (("male1", "Wolfgang"), ("de/male1", "Wolfgang"), ("female1", "Petra")):
        for i in range(2):
            _ogg(share / f"kajongg/voices/{folder}/b{i}.ogg", _tone(120.0, 1.0, 44100), artist=artist)
    return share


@pytest.fixture(scope="module")
def share(tmp_path_factory) -> Path:
    return fake_share(tmp_path_factory.mktemp("real"))


MAP = {"tux-fr": "tux-fr", "tux-ru": "tux-ru", "tux-ca": "tux-ca", "drascen-john": "drasc-john",
       "drascen-VB": "drasc-vb", "uqm-spathi": "uqm-bryce", "uqm-syreen": "uqm-wild",
       "kaj-wolfgang": "kaj-wolfgang", "kaj-petra": None}


def test_listing_labels_every_source_by_its_own_convention(share):
    clips = real_sources.list_clips(share, list(real_sources.LISTERS))
    labels: dict[str, int] = {}
    for c in clips:
        labels[c.raw_label] = labels.get(c.raw_label, 0) + 1
    assert labels == {"tux-fr": 6, "tux-ru": 6, "tux-ca": 6, "drascen-john": 5, "drascen-VB": 5,
                      "uqm-spathi": 3, "uqm-syreen": 3, "kaj-wolfgang": 4, "kaj-petra": 2}
    assert [c.key for c in clips] == sorted(c.key for c in clips)


@pytest.mark.parametrize("name,label", [("259.ALS", "drascen-john"), ("VB41.ALS", "drascen-VB"),
                                        ("D12.ALS", "drascen-D"), ("D60.ALS", "drascen-Dblind"),
                                        ("AN7_3.ALG", None), ("13.ALD", None)])
def test_drascula_prefix_names_the_character(name, label):
    assert real_sources.drascula_label("en", name) == label


def test_drascula_decoding_drops_header_and_tail():
    wave = _tone(130.0, 0.5, 11025)
    got = real_sources.decode_drascula(_drascula_bytes(wave))
    assert len(got) == len(wave)
    assert np.max(np.abs(got - wave)) <= 1.0 / 128 + 1e-6
    with pytest.raises(UserError, match="too short"):
        real_sources.decode_drascula(b"\x80" * 96, "x.ALS")


def test_read_clip_resamples_to_16k_and_names_an_unreadable_clip(share, tmp_path):
    clip = real_sources.Clip("tux-fr", "tuxpaint-stamps-default", "tuxpaint/stamps/animals/s0_desc_fr.ogg")
    y = real_sources.read_clip(share, clip)
    assert abs(len(y) / SR - 2.0) < 0.01
    zipped = [c for c in real_sources.list_uqm(share)][0]
    assert abs(len(real_sources.read_clip(share, zipped)) / SR - 17.0) < 0.01
    bad_share = tmp_path / "usr/share"
    (bad_share / "x").mkdir(parents=True)
    (bad_share / "x/broken_desc_fr.ogg").write_bytes(b"OggS" + b"\x00" * 100)
    with pytest.raises(UserError, match="broken_desc_fr.ogg: cannot decode"):
        real_sources.read_clip(bad_share, real_sources.Clip("tux-fr", "t", "x/broken_desc_fr.ogg"))


def test_truncated_uqm_archive_is_named(tmp_path):
    share = tmp_path / "usr/share"
    archive = share / real_sources.UQM_ARCHIVE
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="uqm-0.8.0-voice.uqm: cannot read"):
        real_sources.list_uqm(share)


def test_cut_pieces_balances_lengths_and_drops_short_clips():
    assert [len(p) for p in cut_pieces(np.zeros(18 * SR), 1.5, 8.0)] == [6 * SR] * 3
    assert [len(p) for p in cut_pieces(np.zeros(9 * SR), 1.5, 8.0)] == [int(4.5 * SR)] * 2
    assert cut_pieces(np.zeros(SR), 1.5, 8.0) == []
    assert [len(p) for p in cut_pieces(np.zeros(5 * SR), 1.5, 8.0)] == [5 * SR]


def test_real_split_is_seeded_disjoint_and_complete():
    spks = [f"s{i:02d}" for i in range(20)]
    a = split_real_speakers(spks, 3, 4, 5)
    assert a == split_real_speakers(spks, 3, 4, 5)
    assert a != split_real_speakers(spks, 4, 4, 5)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (11, 4, 5)
    assert sorted(a["train"] + a["val"] + a["test"]) == spks
    with pytest.raises(UserError, match="n-real-val"):
        split_real_speakers(spks, 0, 1, 5)
    with pytest.raises(UserError, match="cannot give"):
        split_real_speakers(spks[:5], 0, 2, 3)


def test_group_speakers_merges_mapped_labels_and_leaves_out_unchecked_ones(share):
    clips = real_sources.list_clips(share, list(real_sources.LISTERS))
    groups = real_corpus.group_speakers(clips, {"uqm-spathi": "uqm-bryce", "uqm-syreen": "uqm-bryce",
                                                "tux-fr": "tux-fr", "tux-ru": None})
    assert sorted(groups) == ["tux-fr", "uqm-bryce"]
    assert len(groups["uqm-bryce"]) == 6


def test_estimate_sex_from_f0():
    assert estimate_sex([_tone(110.0, 1.0)]) == "m"
    assert estimate_sex([_tone(220.0, 1.0)]) == "f"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_build_real_is_the_same_for_any_nj(share, tmp_path):
    clips = real_sources.list_clips(share, list(real_sources.LISTERS))
    cfg = RealConfig(max_utts=4, min_utts=3, n_val=2, n_test=2)
    out = {}
    for nj in (1, 2):
        wav_dir = tmp_path / f"nj{nj}"
        split, rows, sexes = build_real(share, clips, 7, cfg, wav_dir, write_wav, pool_map, nj, MAP)
        out[nj] = (split, {s: [(u, Path(p).name, d, src) for u, p, d, src in r] for s, r in rows.items()},
                   sexes, _digest(wav_dir))
    assert out[1] == out[2]
    split, rows, sexes, _ = out[1]
    # kaj-wolfgang: 1 s clips, nothing >= 1.5 s -> left out; kaj-petra: mapped to None
    assert sorted(rows) == ["drasc-john", "drasc-vb", "tux-ca", "tux-fr", "tux-ru", "uqm-bryce", "uqm-wild"]
    assert all(len(r) == 4 for r in rows.values())                      # capped at max_utts
    assert all(1.5 <= d <= 8.0 for r in rows.values() for _, _, d, _ in r)
    assert len(rows["uqm-bryce"]) == 4 and all("#" in src for _, _, _, src in rows["uqm-bryce"])
    assert sexes["tux-fr"] == "m" and sexes["tux-ca"] == "f"
    assert len(split["val"]) == 2 and len(split["test"]) == 2 and len(split["train"]) == 3


def test_add_real_voices_extends_train_and_val_and_writes_real2_test(share, tmp_path, monkeypatch):
    from dmha.bin import make_mini_corpus as cli

    monkeypatch.setattr(real_corpus, "LABEL_MAP", MAP)
    data = tmp_path / "data"
    dl = tmp_path / "dl"
    (dl / "real").mkdir(parents=True)
    (dl / "real/usr").symlink_to(share.parent)
    synth = {"mini_train": ["us1", "de1"], "mini_val": ["fr1", "fr2"]}
    for name, spks in synth.items():
        utt2spk = {f"{s}-{i:04d}": s for s in spks for i in range(1, 3)}
        write_set(data / name, {u: f"/x/{u}.wav" for u in utt2spk}, utt2spk, {u: 3.0 for u in utt2spk},
                  {s: "m" for s in spks}, None)
    args = argparse.Namespace(real_train_utts=4, real_min_utts=3, n_real_val=2, n_real_test=2, seed=1, nj=1,
                              nontarget_ratio=2.0, min_trials=10)
    stats: dict = {}
    cli.add_real_voices(args, data, data / "mini_audio", dl, stats)
    sets = {n: set(read_kv(data / n / "utt2spk").values()) for n in ("mini_train", "mini_val", "real2_test")}
    assert {"us1", "de1"} < sets["mini_train"] and {"fr1", "fr2"} < sets["mini_val"]
    assert len(sets["mini_train"]) == 2 + 3 and len(sets["mini_val"]) == 2 + 2
    assert len(sets["real2_test"]) == 2
    assert not (sets["mini_train"] & sets["mini_val"]) and not (sets["mini_train"] & sets["real2_test"])
    assert not (sets["mini_val"] & sets["real2_test"])
    assert (data / "mini_val/trials").is_file() and (data / "real2_test/trials").is_file()
    assert not (data / "mini_train/trials").exists()
    assert stats["real2_test"]["speakers"] == 2
    assert read_kv(data / "mini_train/wav.scp")["us1-0001"] == "/x/us1-0001.wav"  # synthetic rows kept
    # spk2domain tells validation which speakers are real (the synthetic ones were there before)
    val_domains = read_kv(data / "mini_val/spk2domain")
    assert val_domains == {s: ("synthetic" if s in ("fr1", "fr2") else "real") for s in sets["mini_val"]}
    assert set(read_kv(data / "real2_test/spk2domain").values()) == {"real"}
    assert read_kv(data / "mini_train/spk2domain")["us1"] == "synthetic"


def test_print_packages_adds_the_real_voice_packages_only_for_version_5(capsys):
    from dmha.bin import make_mini_corpus as cli

    cli.main(["--print-packages", "--voices", "us1", "--real-test", "false", "data"])
    assert capsys.readouterr().out.split() == ["mbrola-us1"]
    cli.main(["--print-packages", "--voices", "us1", "--real-test", "false", "--real-voices", "true", "data"])
    assert capsys.readouterr().out.split() == ["mbrola-us1", *real_sources.PACKAGES]


@pytest.mark.parametrize("opts,expected", [
    ("", "mini_test real_test"),
    ("--voices us1 --real-voices true", "mini_test real_test real2_test"),
    ("--real-voices false", "mini_test real_test")])
def test_mini_recipe_scores_real2_test_only_with_real_voices(opts, expected):
    import subprocess

    out = subprocess.run(["bash", "-c", f'mini_opts="{opts}"; . egs/mini/corpus.sh; echo "$test_sets"'],
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_label_report_flags_a_label_that_holds_two_voices():
    """bench/real_voice_labels.py's report: one-voice labels split into close halves; a two-voice label
    splits into two groups of several clips with a low sub-centroid cosine."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "real_voice_labels", Path(__file__).resolve().parents[1] / "bench/real_voice_labels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 64))
    emb = [base[0] + 0.3 * rng.standard_normal(64) for _ in range(12)]
    emb += [base[1] + 0.3 * rng.standard_normal(64) for _ in range(12)]
    emb += [base[k] + 0.3 * rng.standard_normal(64) for k in (1,) * 6 + (2,) * 6]   # "mixed": two voices
    labels = ["one"] * 12 + ["two"] * 12 + ["mixed"] * 12
    rows = {line.split()[0]: line for line in mod.cosine_report(np.array(emb), labels)[1:4]}
    two_means_cos = {k: float(v.split()[-1]) for k, v in rows.items()}
    assert two_means_cos["one"] > 0.8 and two_means_cos["two"] > 0.8
    assert two_means_cos["mixed"] < 0.3
    assert "[6, 6]" in rows["mixed"]
