"""utils/digest_data_dir.sh: content digests that agree across folders and ark layouts, and catch changes."""

from __future__ import annotations

import shutil

import kaldiio
import numpy as np
import pytest
from conftest import run_script
from extract_fixtures import make_feats_data_dir, make_wav_data_dir

from dmha.common.errors import UserError
from dmha.data.digest import audio_digest, feature_digest


def _copy_with_new_paths(src, dest):
    """The same data dir in another folder: wav files copied, wav.scp pointing at the copies."""
    shutil.copytree(src, dest)
    lines = (dest / "wav.scp").read_text().replace(str(src), str(dest))
    (dest / "wav.scp").write_text(lines)


def test_audio_digest_ignores_location_and_sees_one_changed_byte(tmp_path):
    a = make_wav_data_dir(tmp_path / "a", n_spk=2, n_utt=2)
    _copy_with_new_paths(a, tmp_path / "b")
    assert audio_digest(a) == audio_digest(tmp_path / "b")
    wav = (tmp_path / "b" / "wav.scp").read_text().split("\n")[0].split()[1]
    data = bytearray(open(wav, "rb").read())
    data[-1] ^= 1
    open(wav, "wb").write(bytes(data))
    assert audio_digest(a).sha256 != audio_digest(tmp_path / "b").sha256


def test_feature_digest_ignores_ark_layout_but_not_values(tmp_path):
    a = make_feats_data_dir(tmp_path / "a", [30, 40, 50])
    mats = {k: np.array(v) for k, v in kaldiio.load_scp(str(a / "feats.scp")).items()}
    b = tmp_path / "b"
    b.mkdir()
    for i, (k, m) in enumerate(mats.items()):  # one ark per utterance instead of one ark in all
        with kaldiio.WriteHelper(f"ark,scp:{b}/f{i}.ark,{b}/f{i}.scp") as w:
            w(k, m)
    (b / "feats.scp").write_text("".join((b / f"f{i}.scp").read_text() for i in range(len(mats))))
    assert feature_digest(a) == feature_digest(b)
    first = next(iter(mats))
    with kaldiio.WriteHelper(f"ark,scp:{b}/f0.ark,{b}/f0.scp") as w:
        w(first, mats[first] + np.float32(1e-6))
    assert feature_digest(a).sha256 != feature_digest(b).sha256


def test_missing_audio_is_one_clear_error(tmp_path):
    a = make_wav_data_dir(tmp_path / "a", n_spk=1, n_utt=2)
    wav = (a / "wav.scp").read_text().split("\n")[0].split()[1]
    (tmp_path / "gone.wav").write_bytes(b"")
    shutil.move(wav, tmp_path / "gone.wav")
    with pytest.raises(UserError, match="wav.scp: .*audio file .* not found"):
        audio_digest(a)


def test_script_prints_one_line_per_part(tmp_path):
    a = make_wav_data_dir(tmp_path / "a", n_spk=1, n_utt=2)
    out = run_script(["utils/digest_data_dir.sh", str(a)]).stdout.split()
    assert out == [str(a), "audio", "2", audio_digest(a).sha256]
