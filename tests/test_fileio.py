"""Atomic writes and Kaldi key-value files (dmha.common.fileio)."""

from __future__ import annotations

import os

import pytest

from dmha.common.errors import UserError
from dmha.common.fileio import atomic_open, read_kv, write_kv


def test_atomic_open_leaves_old_file_when_the_block_fails(tmp_path):
    target = tmp_path / "utt2spk"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half written")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["utt2spk"]  # no temporary left behind


def test_atomic_open_gives_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "f") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "f").st_mode & 0o777) == 0o644


def test_write_kv_sorts_in_c_locale_and_read_kv_round_trips(tmp_path):
    path = tmp_path / "spk2utt"
    write_kv(path, {"b": ["b-1", "b-2"], "B": ["B-1"], "a": ["a-1"]})
    assert path.read_text() == "B B-1\na a-1\nb b-1 b-2\n"
    assert read_kv(path, multi=True) == {"B": ["B-1"], "a": ["a-1"], "b": ["b-1", "b-2"]}


def test_read_kv_keeps_pipes_whole_and_rejects_duplicates(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_text("u1 sox a.wav -t wav - |\nu2 b.wav\n")
    assert read_kv(path) == {"u1": "sox a.wav -t wav - |", "u2": "b.wav"}
    path.write_text("u1 a.wav\nu1 b.wav\n")
    with pytest.raises(UserError, match="duplicate key 'u1'"):
        read_kv(path)


def test_write_text_if_changed_keeps_an_identical_file(tmp_path):
    from dmha.common.fileio import write_text_if_changed

    f = tmp_path / "sub" / "a.txt"
    assert write_text_if_changed(f, "x\n") and f.read_text() == "x\n"
    os.utime(f, (1_000_000_000, 1_000_000_000))
    assert not write_text_if_changed(f, "x\n") and f.stat().st_mtime == 1_000_000_000
    assert write_text_if_changed(f, "y\n") and f.read_text() == "y\n"
