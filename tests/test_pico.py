"""SVOX Pico voices in the mini corpus (``--pico true``).

What is pinned: the six voices are six female speaker ids that no other source uses; the split is seeded
and has no test part; the engine gives 16 kHz speech that follows the rate and is repeatable; a missing
package or a voice that cannot speak is one line naming it; the builder gives the same corpus for nj 1
and 2, puts the voices into mini_train/mini_val only and leaves mini_test alone. Synthesis tests need the
PyPI package py-nanotts (requirements-test.txt installs it; skipped without it).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest
import soundfile as sf
from test_rhvoice import SR, _digest, _fake_mbrola_sets

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import pico, rhvoice
from dmha.corpus.mini import SynthConfig
from dmha.corpus.text import text_family
from dmha.corpus.voices import all_voices


def test_six_female_ids_of_their_own():
    voices = pico.all_pico_voices()
    assert [v.db for v in voices] == ["pico-de", "pico-en-gb", "pico-en-us", "pico-es", "pico-fr", "pico-it"]
    assert len({v.voice for v in voices}) == 6 and {v.sex for v in voices} == {"f"}
    assert {text_family(v.lang) for v in voices} == {"en", "de", "es", "fr", "it"}
    others = {v.db for v in all_voices()} | {v.db for v in rhvoice.all_rhvoice_voices()}
    assert not others & {v.db for v in voices}


def test_split_is_seeded_and_has_no_test_part():
    voices = pico.all_pico_voices()
    a, b = pico.split_pico(voices, 3, 2), pico.split_pico(voices, 3, 2)
    assert a == b and sorted(a) == ["train", "val"]
    assert len(a["val"]) == 2 and len(a["train"]) == 4 and not set(a["val"]) & set(a["train"])
    assert any(pico.split_pico(voices, s, 2)["val"] != a["val"] for s in range(4, 12))
    for bad in (1, -1, 6):
        with pytest.raises(UserError, match="--n-pico-val"):
            pico.split_pico(voices, 0, bad)


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "py_nanotts", None)  # not importable
    with pytest.raises(UserError, match="needs the Python package py-nanotts==0.1.1"):
        pico.setup_pico(pico.all_pico_voices())


@pytest.fixture(scope="module")
def engine() -> pico.Pico:
    pytest.importorskip("py_nanotts")
    return pico.setup_pico(pico.all_pico_voices())


def test_engine_speaks_16k_follows_the_rate_and_repeats(engine):
    text = "The quick brown fox jumps over the lazy dog, forty two times."
    normal, sr = engine.synthesize(text, "en-GB", 100, 100)
    assert sr == SR and normal.dtype == np.float32 and np.abs(normal).max() <= 1.0
    assert 2.0 < normal.size / sr < 8.0 and normal.std() > 0.01
    slow, _ = engine.synthesize(text, "en-GB", 70, 100)
    assert slow.size > 1.25 * normal.size
    # the same samples after other utterances (Pico in one process would not give them: see Pico)
    np.testing.assert_array_equal(engine.synthesize(text, "en-GB", 100, 100)[0], normal)
    other, _ = engine.synthesize(text, "en-US", 100, 100)
    assert other.size != normal.size or not np.array_equal(other, normal)


def test_a_voice_that_cannot_speak_is_named(engine):
    bad = pico.PicoVoice("pico-xx", "xx-XX", "en")
    with pytest.raises(UserError, match=r"Pico voice xx-XX \(pico-xx\) cannot synthesize"):
        pico.setup_pico([bad])


def test_add_pico_same_for_any_nj_and_leaves_mini_test_alone(engine, tmp_path):
    from dmha.bin import make_mini_corpus as cli

    out = {}
    for nj in (1, 2):
        data = tmp_path / f"nj{nj}" / "data"
        mbrola_split = _fake_mbrola_sets(data)
        test_before = _digest(data / "mini_test")
        args = argparse.Namespace(n_pico_val=2, seed=4, nj=nj, nontarget_ratio=3.0, min_trials=10)
        stats: dict = {}
        cfg = SynthConfig(min_utts=2, max_utts=3)
        cli.add_pico(args, data, data / "mini_audio", cfg, mbrola_split, stats)
        assert _digest(data / "mini_test") == test_before
        out[nj] = {k: _digest(data / k) for k in ("mini_train", "mini_val", "mini_audio/pico")}
        spk = {n: set(read_kv(data / n / "utt2spk").values()) for n in ("mini_train", "mini_val")}
        ids = {v.db for v in pico.all_pico_voices()}
        assert len(spk["mini_train"] & ids) == 4 and len(spk["mini_val"] & ids) == 2
        assert {"de1", "us1"} < spk["mini_train"] and {"fr1", "fr2"} < spk["mini_val"]
        genders = read_kv(data / "mini_val/spk2gender")
        assert all(genders[s] == "f" for s in spk["mini_val"] & ids)
        wavs = read_kv(data / "mini_train/wav.scp")
        for u, s in read_kv(data / "mini_train/utt2spk").items():
            if s in ids:
                info = sf.info(wavs[u])
                assert "/mini_audio/pico/wav/" in wavs[u] and info.samplerate == SR
                assert 2.0 <= info.frames / SR <= 8.0
        assert stats["mini_val"]["speakers"] == 4 and "target" in stats["mini_val"]
    assert out[1] == out[2]
