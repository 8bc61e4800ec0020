"""local/import_reference_lists.sh: the reference code's label and pair files -> data dirs and trials."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from conftest import run_script
from voxceleb_fixtures import SR, tone

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus.reference_lists import import_train_labels, import_validation_pairs
from dmha.data.trials import read_trials


def make_audio(root: Path, rels: list[str]) -> None:
    for i, rel in enumerate(rels):
        p = root / f"{rel}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, tone(i % 7, 0.3, i), SR, subtype="PCM_16")


TRAIN = [f"id{1000 + s:05d}/vid{v}/{u:05d}" for s in range(12) for v in range(2) for u in (1, 2)]
VAL = [f"id{9000 + s:05d}/vv{v}/{u:05d}" for s in range(3) for v in range(2) for u in (1, 2)]


@pytest.fixture
def ref(tmp_path):
    audio = tmp_path / "audio"
    make_audio(audio, TRAIN + VAL)
    labels = tmp_path / "labels.ndx"
    # labels 0..11 by speaker; every other path written with its .wav extension, as the reference allows
    labels.write_text("".join(f"{p}{'.wav' if i % 2 else ''} {i // 4} -1\n" for i, p in enumerate(TRAIN)))
    clients = tmp_path / "clients.ndx"
    impostors = tmp_path / "impostors.ndx"
    spk = [VAL[i:i + 4] for i in range(0, 12, 4)]
    clients.write_text("".join(f"{s[0]} {s[j]}\n" for s in spk for j in (1, 2, 3)))
    impostors.write_text(f"{spk[0][0]} {spk[1][0]}\n{spk[1][3]} {spk[2][2]}.wav\n{spk[2][1]} {spk[0][3]}\n")
    return tmp_path, audio, labels, clients, impostors


def test_import_train_and_val_via_script(ref):
    tmp, audio, labels, clients, impostors = ref
    run_script(["local/import_reference_lists.sh", "--audio-dir", str(audio), "--clients", str(clients),
                "--impostors", str(impostors), "--val-dir", str(tmp / "val"), str(labels),
                str(tmp / "train")])
    for d in ("train", "val"):
        run_script(["utils/validate_data_dir.sh", str(tmp / d)])
    u2s = read_kv(tmp / "train" / "utt2spk")
    assert len(u2s) == len(TRAIN)
    # spk<label> zero-padded: sorted speakers (stage 2's class order) give back the reference labels
    spks = sorted(set(u2s.values()))
    assert spks == [f"spk{i:02d}" for i in range(12)]
    assert u2s["spk00-id01000-vid0-00001"] == "spk00" and u2s["spk11-id01011-vid1-00002"] == "spk11"
    wav = read_kv(tmp / "train" / "wav.scp")
    assert wav["spk03-id01003-vid1-00002"] == str(audio / "id01003/vid1/00002.wav")  # .wav added once
    assert all(Path(p).is_file() for p in wav.values())

    tr = read_trials(tmp / "val" / "trials")
    v2s = read_kv(tmp / "val" / "utt2spk")
    assert len(tr) == 12 and tr.labels[:9].all() and not tr.labels[9:].any()
    # speakers = components of the client pairs: each val speaker's 4 utterances share one id
    assert len(set(v2s.values())) == 3
    assert all((v2s[e] == v2s[t]) == lab for e, t, lab in zip(tr.enroll, tr.test, tr.labels))
    key = {u.split("-", 1)[1]: u for u in v2s}     # the path part of each utterance id
    assert tr.enroll[0] == key["id09000-vv0-00001"] and tr.test[0] == key["id09000-vv0-00002"]
    assert tr.test[10] == key[VAL[10].replace("/", "-")]   # '<path>.wav' and '<path>' are one utterance


def test_contradicting_impostor_pair_is_an_error(ref):
    tmp, audio, _, clients, impostors = ref
    first = clients.read_text().split()[:2]
    impostors.write_text(impostors.read_text() + f"{first[1]} {first[0]}\n")
    with pytest.raises(UserError, match=r"impostors.ndx:4: impostor pair .* client pairs make one speaker"):
        import_validation_pairs(clients, impostors, tmp / "val", audio_dir=audio)


def test_bad_label_line_and_wrong_audio_dir(ref, tmp_path):
    tmp, audio, labels, _, _ = ref
    bad = tmp_path / "bad.ndx"
    bad.write_text(labels.read_text() + "id01000/vid0/00009 speaker3 -1\n")
    with pytest.raises(UserError, match=r"bad.ndx:49: expected '<path> <label 0..N-1> \[-1\]'"):
        import_train_labels(bad, tmp_path / "t")
    with pytest.raises(UserError, match=r"none of the 48 audio files exists .*check --audio-dir"):
        import_train_labels(labels, tmp_path / "t", audio_dir=tmp_path / "nowhere")
    proc = run_script(["local/import_reference_lists.sh", "--clients", "x", str(labels), str(tmp_path / "t")],
                      check=False)
    assert proc.returncode == 1 and "--clients, --impostors and --val-dir go together" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_m4a_paths_become_ffmpeg_pipes(tmp_path):
    make_audio(tmp_path, ["a/x/00001"])
    labels = tmp_path / "l.ndx"
    labels.write_text("a/x/00001 0 -1\nb/y/00002.m4a 1 -1\n")
    import_train_labels(labels, tmp_path / "d", audio_dir=tmp_path)   # one file missing: warned, kept
    wav = read_kv(tmp_path / "d" / "wav.scp")
    assert wav["spk1-b-y-00002"].startswith("ffmpeg -nostdin") and wav["spk1-b-y-00002"].endswith("- |")
    assert wav["spk0-a-x-00001"] == str(tmp_path / "a/x/00001.wav")
