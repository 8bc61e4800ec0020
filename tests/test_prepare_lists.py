"""Stage 2: speaker map, length filter counts, training list/scp, validation trials (copied or made)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.data.lists import prepare_lists
from dmha.data.trials import read_trials

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_script  # noqa: E402
from train_fixtures import tiny_config, write_data_dir, write_trials_all_pairs  # noqa: E402


@pytest.fixture
def dirs(tmp_path):
    train, val = tmp_path / "train", tmp_path / "val"
    write_data_dir(train, 3, 6, (10, 60), seed=4)
    write_data_dir(val, 3, 3, (30, 50), seed=5, spk_offset=50)
    return train, val


def test_map_filter_and_lists(dirs, tmp_path):
    train, val = dirs
    frames = {u: int(n) for u, n in read_kv(train / "utt2num_frames").items()}
    # one speaker loses every utterance; one utterance has no features
    for u in list(frames):
        if u.startswith("spk001-"):
            frames[u] = 5
    (train / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in sorted(frames.items())))
    scp = read_kv(train / "feats.scp")
    dropped = sorted(scp)[0]
    del scp[dropped]
    (train / "feats.scp").write_text("".join(f"{u} {v}\n" for u, v in sorted(scp.items())))
    write_trials_all_pairs(val)

    out = tmp_path / "lists"
    s = prepare_lists(train, val, out, min_frames=20, crop_frames=40)
    expect_kept = [u for u in sorted(frames) if u != dropped and frames[u] >= 20]
    expect_short = [u for u in frames if u != dropped and frames[u] < 20]
    assert read_kv(out / "spk2int") == {"spk000": "0", "spk002": "1"}  # spk001 has nothing left
    lst = read_kv(out / "train.list")
    assert list(lst) == expect_kept
    assert all(lst[u] == f"{0 if u.startswith('spk000') else 1} {frames[u]}" for u in lst)
    assert list(read_kv(out / "train_feats.scp")) == expect_kept
    assert s["train_utts_in"] == 18 and s["train_utts_no_feats"] == 1
    assert s["train_utts_too_short"] == len(expect_short) and s["train_utts_kept"] == len(expect_kept)
    assert s["train_utts_padded"] == sum(1 for u in expect_kept if frames[u] < 40)
    assert s["train_speakers"] == 2 and s["train_speakers_lost"] == 1
    assert read_kv(out / "summary")["train_utts_too_short"] == str(len(expect_short))
    t = read_trials(out / "val_trials")
    assert len(t) == 36 and int(t.labels.sum()) == 9  # copied all-pairs list of 9 utterances
    assert sorted(read_kv(out / "val_feats.scp")) == sorted(read_kv(val / "utt2spk"))


def test_trials_generated_without_val_trials(dirs, tmp_path):
    train, val = dirs
    assert not (val / "trials").exists()
    out = tmp_path / "lists"
    s = prepare_lists(train, val, out, min_frames=1, crop_frames=40, seed=1)
    t = read_trials(out / "val_trials")
    assert s["val_trials"] == len(t) > 0 and t.labels.any() and (~t.labels).any()
    utt2spk = read_kv(val / "utt2spk")
    assert all((utt2spk[e] == utt2spk[x]) == lab for e, x, lab in zip(t.enroll, t.test, t.labels))


def test_val_domains_from_spk2domain(dirs, tmp_path):
    train, val = dirs
    write_trials_all_pairs(val)
    spks = sorted(set(read_kv(val / "utt2spk").values()))
    (val / "spk2domain").write_text(f"{spks[0]} real\n{spks[1]} real\n{spks[2]} synthetic\n")
    out = tmp_path / "lists"
    s = prepare_lists(train, val, out, min_frames=1, crop_frames=40)
    utt2spk = read_kv(val / "utt2spk")
    assert read_kv(out / "val_utt2domain") == {u: "synthetic" if spk == spks[2] else "real"
                                               for u, spk in utt2spk.items()}
    assert s["val_domains"] == 2
    # a speaker without a domain: one line naming it, and no stale file is trusted afterwards
    (val / "spk2domain").write_text(f"{spks[0]} real\n{spks[1]} real\n")
    with pytest.raises(UserError, match=f"no domain for speaker '{spks[2]}'"):
        prepare_lists(train, val, out, min_frames=1, crop_frames=40)
    (val / "spk2domain").unlink()
    s = prepare_lists(train, val, out, min_frames=1, crop_frames=40)
    assert "val_domains" not in s and not (out / "val_utt2domain").exists()


def test_missing_val_features_is_a_clear_error(dirs, tmp_path):
    train, val = dirs
    write_trials_all_pairs(val)
    with open(val / "trials", "a") as f:
        f.write("ghost-utt spk050-utt000 nontarget\n")
    with pytest.raises(UserError, match="ghost-utt"):
        prepare_lists(train, val, tmp_path / "lists", min_frames=1, crop_frames=40)


def test_features_of_other_settings_than_the_config_are_refused(dirs, tmp_path):
    """Stage 1 records the settings of the features; stage 2 refuses a data dir computed otherwise than
    the config says (the model would train on one kind of features and embed wav files with another)."""
    from dmha.bin.prepare_lists import main

    train, val = dirs
    write_trials_all_pairs(val)
    cfg = tiny_config(tmp_path / "c.yaml")
    (train / "fbank.yaml").write_text("fmax: 4000\nn_mels: 20\nstorage: cm2\n")
    with pytest.raises(UserError, match=r"train/fbank.yaml: .*fmax=4000 \(expected None\)"):
        main(["--config", str(cfg), str(train), str(val), str(tmp_path / "lists")])
    assert not (tmp_path / "lists").exists()
    # the same settings stored compressed (storage) and normalised otherwise (norm: load time) are fine
    (train / "fbank.yaml").write_text("n_mels: 20\nstorage: cm2\n")
    assert main(["--config", str(cfg), "--override", "features.norm=cmvn", str(train), str(val),
                 str(tmp_path / "lists")]) == 0
    # the record goes with the lists, for training to check (and a dir without one leaves none)
    assert (tmp_path / "lists" / "fbank.yaml").read_text() == "n_mels: 20\nstorage: cm2\n"
    (train / "fbank.yaml").unlink()
    assert main(["--config", str(cfg), str(train), str(val), str(tmp_path / "lists")]) == 0
    assert not (tmp_path / "lists" / "fbank.yaml").exists()


def test_script_usage_and_run(dirs, tmp_path, repo):
    train, val = dirs
    bad = run_script(["steps/prepare_lists.sh", str(train)], cwd=repo, check=False)
    assert bad.returncode != 0 and "Usage" in bad.stderr
    conf = tiny_config(tmp_path / "c.yaml")
    out = tmp_path / "lists"
    run_script(["steps/prepare_lists.sh", "--config", str(conf), "--override", "train.min_frames=25",
                str(train), str(val), str(out)], cwd=repo)
    assert read_kv(out / "summary")["min_frames"] == "25"
    assert (out / "log" / "prepare_lists.log").read_text().count("training list:") == 1
