"""Data-dir tools (dmha.data.datadir and the utils/*.sh wrappers) on good and broken dirs."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
from conftest import REPO, run_script

from dmha.common.errors import UserError
from dmha.data.datadir import (
    combine_data,
    copy_data_dir,
    fix_data_dir,
    load_data_dir,
    split_data,
    subset_data_dir,
    validate_data_dir,
)

SPEAKERS = {"spkA": 4, "spkB": 1, "spkC": 3, "spkD": 2, "spkE": 5}


def make_dir(d: Path, speakers: dict[str, int] = SPEAKERS, feats: bool = False, prefix: str = "") -> Path:
    """A valid data dir; with ``feats`` real kaldiio features and utt2num_frames (frames = 10 + index)."""
    d.mkdir(parents=True, exist_ok=True)
    utts = sorted(f"{prefix}{s}-utt{i}" for s, n in speakers.items() for i in range(n))
    spk_of = {u: u.split("-")[0] for u in utts}
    (d / "utt2spk").write_text("".join(f"{u} {spk_of[u]}\n" for u in utts))
    (d / "wav.scp").write_text("".join(f"{u} /corpus/{u}.wav\n" for u in utts))
    spks = sorted(set(spk_of.values()))
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u for u in utts if spk_of[u] == s)}\n" for s in spks))
    if feats:
        with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
            for i, u in enumerate(utts):
                w(u, np.full((10 + i, 3), i, dtype=np.float32))
        (d / "utt2num_frames").write_text("".join(f"{u} {10 + i}\n" for i, u in enumerate(utts)))
    return d


def lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def drop_lines(p: Path, prefix: str) -> None:
    p.write_text("".join(x + "\n" for x in lines(p) if not x.startswith(prefix)))


def sh(name: str, *args) -> list[str]:
    return [str(REPO / "utils" / name), *map(str, args)]


# ------------------------------------------------------------------ validate


def test_good_dir_validates_through_the_wrapper(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    (d / "trials").write_text("spkA-utt0 spkB-utt0 nontarget\nspkA-utt0 spkA-utt1 target\n")
    assert validate_data_dir(d) == []
    proc = run_script(sh("validate_data_dir.sh", d))
    assert "is OK" in proc.stdout


def _broken(tmp_path: Path, kind: str) -> Path:
    d = make_dir(tmp_path / kind, feats=True)
    if kind == "unsorted":
        ls = lines(d / "wav.scp")
        ls[0], ls[1] = ls[1], ls[0]
        (d / "wav.scp").write_text("\n".join(ls) + "\n")
    elif kind == "duplicate":
        with open(d / "utt2spk", "a") as f:
            f.write("spkA-utt0 spkA\n")
    elif kind == "missing_wav":
        drop_lines(d / "wav.scp", "spkC-utt1 ")
    elif kind == "spk2utt":
        (d / "spk2utt").write_text("".join(x.replace(" spkD-utt1", "") + "\n" for x in lines(d / "spk2utt")))
    elif kind == "bad_frames":
        (d / "utt2num_frames").write_text(
            "".join((x.split()[0] + " 0\n") if x.startswith("spkB-utt0 ") else
                    (x.split()[0] + " abc\n") if x.startswith("spkD-utt0 ") else x + "\n"
                    for x in lines(d / "utt2num_frames")))
    return d


# kind -> (substrings every one of which must appear in the messages, utts fix must drop)
BROKEN = {
    "unsorted": (["wav.scp:2", "not sorted"], 0),
    "duplicate": (["utt2spk:16: duplicate key 'spkA-utt0' (first on line 1)", "not sorted"], 0),
    "missing_wav": (["wav.scp: utterance 'spkC-utt1' of utt2spk is missing"], 1),
    "spk2utt": (["spk2utt: speaker 'spkD' disagrees with utt2spk: lacks ['spkD-utt1']"], 0),
    "bad_frames": (["'spkB-utt0' has '0' frames", "'spkD-utt0' has 'abc' frames"], 2),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_dir_reports_each_problem_and_fix_repairs_it(tmp_path, kind):
    d = _broken(tmp_path, kind)
    expected, n_drop = BROKEN[kind]
    msgs = validate_data_dir(d)
    text = "\n".join(msgs)
    for e in expected:
        assert e in text, (e, msgs)
    report = fix_data_dir(d)
    assert validate_data_dir(d) == [], validate_data_dir(d)
    n_total = sum(SPEAKERS.values())
    assert report.n_before == n_total
    assert report.n_kept == n_total - n_drop
    assert sum(report.dropped.values()) == n_drop
    assert len(lines(d / "utt2spk")) == n_total - n_drop
    assert (d / ".backup" / "utt2spk").is_file()


def test_validate_wrapper_exits_nonzero_naming_file_and_key(tmp_path):
    d = _broken(tmp_path, "missing_wav")
    proc = run_script(sh("validate_data_dir.sh", d), check=False)
    assert proc.returncode == 1
    assert f"{d}/wav.scp: utterance 'spkC-utt1' of utt2spk is missing" in proc.stderr
    assert "NOT valid" in proc.stderr
    # --no-wav skips exactly that check
    assert run_script(sh("validate_data_dir.sh", "--no-wav", d)).returncode == 0


def test_validate_reports_every_problem_in_one_run(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    (d / "wav.scp").write_text("".join(x + "\n" for x in lines(d / "wav.scp")[1:]))  # first utt missing
    (d / "feats.scp").write_text("".join(x + "\n" for x in lines(d / "feats.scp")[:-1]))  # last utt missing
    (d / "trials").write_text("spkA-utt0 nobody target\nspkA-utt0 spkA-utt1 maybe\nx\n")
    msgs = validate_data_dir(d)
    text = "\n".join(msgs)
    assert "wav.scp: utterance 'spkA-utt0' of utt2spk is missing" in text
    assert "feats.scp: utterance 'spkE-utt4' of utt2spk is missing" in text
    assert "utt2num_frames: utterance 'spkE-utt4' is not in feats.scp" in text
    assert "trials:1: utterance 'nobody' is not in utt2spk" in text
    assert "trials:2: label must be target or nontarget, got 'maybe'" in text
    assert "trials:3: expected 'enroll test [target|nontarget]'" in text
    assert len(msgs) == 6
    assert validate_data_dir(d, check_wav=False, check_feats=False, check_trials=False) == []


def test_validate_caps_messages_per_kind(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "wav.scp").write_text("")
    msgs = validate_data_dir(d, max_per_kind=2)
    assert len(msgs) == 3 and "13 more problems" in msgs[-1]
    assert len(validate_data_dir(d, max_per_kind=0)) == 15


def test_validate_requires_speaker_prefix(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "utt2spk").write_text("u1 s1\n")
    (d / "spk2utt").write_text("s1 u1\n")
    (d / "wav.scp").write_text("u1 /a.wav\n")
    assert any("does not start with its speaker id" in m for m in validate_data_dir(d))


# ------------------------------------------------------------------ fix


def test_fix_through_wrapper_counts_each_reason_and_keeps_trials(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    ls = lines(d / "utt2spk")
    # unsorted, an identical duplicate (merged), a conflicting duplicate (dropped)
    (d / "utt2spk").write_text("\n".join(reversed(ls)) + f"\n{ls[0]}\nspkB-utt0 spkZ\n")
    drop_lines(d / "feats.scp", "spkE-utt0 ")
    (d / "bad_utts").write_text("spkC-utt2 audio could not be decoded\n")
    (d / "trials").write_text("spkA-utt0 spkB-utt0 nontarget\nspkA-utt0 spkA-utt1 target\n")
    trials_before = (d / "trials").read_text()
    proc = run_script(sh("fix_data_dir.sh", d))
    out = proc.stdout
    assert "kept 12 of 15 utterances" in out
    assert "dropped 1 utterances: conflicting duplicate lines in utt2spk" in out
    assert "dropped 1 utterances: listed in bad_utts" in out
    assert "dropped 1 utterances: missing from feats.scp" in out
    assert "1 trials name utterances not in the fixed dir" in out
    assert (d / "trials").read_text() == trials_before
    assert validate_data_dir(d, check_trials=False) == []
    kept = set(load_data_dir(d).utt2spk)
    assert not kept & {"spkB-utt0", "spkC-utt2", "spkE-utt0"} and len(kept) == 12
    # fixing a valid dir changes nothing
    names = ("utt2spk", "spk2utt", "wav.scp", "feats.scp", "utt2num_frames")
    before = {n: (d / n).read_text() for n in names}
    again = fix_data_dir(d)
    assert again.n_kept == 12 and sum(again.dropped.values()) == 0
    assert before == {n: (d / n).read_text() for n in before}


# ------------------------------------------------------------------ split / combine


@pytest.mark.parametrize("per_utt", [False, True])
def test_split_then_combine_round_trip(tmp_path, per_utt):
    d = make_dir(tmp_path / "d", feats=True)
    n = 3
    run_script(sh("split_data.sh", *(["--per-utt"] if per_utt else []), d, n))
    parts = [d / f"split{n}" / str(i) for i in range(1, n + 1)]
    seen: list[str] = []
    for p in parts:
        assert validate_data_dir(p) == [], (p, validate_data_dir(p))
        dd = load_data_dir(p)
        assert set(dd.files) == {"utt2spk", "wav.scp", "feats.scp", "utt2num_frames"}
        for utt, rxf in dd.files["feats.scp"].items():  # the feature pointers still load
            assert kaldiio.load_mat(rxf).shape[0] == int(dd.files["utt2num_frames"][utt])
        seen += dd.utts
    assert sorted(seen) == load_data_dir(d).utts  # nothing lost, nothing doubled
    spk_parts = {}
    for i, p in enumerate(parts):
        for spk in load_data_dir(p).speakers:
            spk_parts.setdefault(spk, set()).add(i)
    if per_utt:
        sizes = [len(load_data_dir(p).utt2spk) for p in parts]
        assert max(sizes) - min(sizes) <= 1
    else:
        assert all(len(s) == 1 for s in spk_parts.values()), spk_parts  # speakers kept whole
    run_script(sh("combine_data.sh", tmp_path / "c", *parts))
    for name in ("utt2spk", "spk2utt", "wav.scp", "feats.scp", "utt2num_frames"):
        assert (tmp_path / "c" / name).read_text() == (d / name).read_text(), name


def test_split_by_speaker_balances_and_is_reused_when_up_to_date(tmp_path):
    d = make_dir(tmp_path / "d", {f"s{i:02d}": 2 + i % 3 for i in range(20)})
    parts = split_data(d, 4)
    sizes = [len(load_data_dir(p).utt2spk) for p in parts]
    assert sum(sizes) == 59 and max(sizes) - min(sizes) <= 4, sizes
    stamp = d / "split4" / "1" / "utt2spk"
    mtime = stamp.stat().st_mtime_ns
    split_data(d, 4)
    assert stamp.stat().st_mtime_ns == mtime  # up to date: not rewritten
    split_data(d, 4, per_utt=True)  # other mode: re-split
    sizes = [len(load_data_dir(p).utt2spk) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    (d / "utt2spk").write_text("".join(x + "\n" for x in lines(d / "utt2spk")[:-1]))  # source changed
    fix_data_dir(d)
    split_data(d, 4, per_utt=True)
    assert sum(len(load_data_dir(p).utt2spk) for p in parts) == 58


def test_split_into_more_parts_than_speakers_fails(tmp_path):
    d = make_dir(tmp_path / "d")
    proc = run_script(sh("split_data.sh", d, 6), check=False)
    assert proc.returncode == 1
    assert "cannot split 5 speakers into 6 parts" in proc.stderr and "Traceback" not in proc.stderr
    assert len(split_data(d, 6, per_utt=True)) == 6


def test_combine_conflicting_duplicate_fails_identical_is_merged(tmp_path):
    a = make_dir(tmp_path / "a", {"spkA": 2})
    b = make_dir(tmp_path / "b", {"spkA": 3, "spkB": 1})
    dd = combine_data(tmp_path / "c", [a, b])  # spkA-utt0/1 identical in both
    assert len(dd.utt2spk) == 4 and validate_data_dir(tmp_path / "c") == []
    (b / "wav.scp").write_text((b / "wav.scp").read_text().replace("/corpus/spkA-utt1.wav", "/other.wav"))
    proc = run_script(sh("combine_data.sh", tmp_path / "c2", a, b), check=False)
    assert proc.returncode == 1
    assert "wav.scp: utterance 'spkA-utt1'" in proc.stderr and str(b) in proc.stderr
    assert not (tmp_path / "c2").exists()


def test_combine_drops_files_not_in_every_source(tmp_path):
    a = make_dir(tmp_path / "a", {"spkA": 2}, feats=True)
    b = make_dir(tmp_path / "b", {"spkB": 2})
    dd = combine_data(tmp_path / "c", [a, b])
    assert set(dd.files) == {"utt2spk", "wav.scp"}
    assert validate_data_dir(tmp_path / "c") == []


def test_combine_carries_one_feature_record_only_when_all_sources_agree(tmp_path):
    a = make_dir(tmp_path / "a", {"spkA": 2}, feats=True)
    b = make_dir(tmp_path / "b", {"spkB": 2}, feats=True)
    for d in (a, b):
        (d / "fbank.yaml").write_text("fmax: 4000\nn_mels: 80\n")
    combine_data(tmp_path / "c", [a, b])
    assert (tmp_path / "c" / "fbank.yaml").read_text() == "fmax: 4000\nn_mels: 80\n"
    (b / "fbank.yaml").write_text("fmax: null\nn_mels: 80\n")
    combine_data(tmp_path / "c", [a, b])  # a stale record of an earlier combination must not survive
    assert not (tmp_path / "c" / "fbank.yaml").exists()


# ------------------------------------------------------------------ subset


def test_subset_modes(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    all_utts = load_data_dir(d).utts
    (tmp_path / "utts").write_text("spkC-utt2\nspkA-utt1 extra-column\nnot-there\n")
    (tmp_path / "spks").write_text("spkE\nspkB\n")
    run_script(sh("subset_data_dir.sh", "--utt-list", tmp_path / "utts", d, tmp_path / "u"))
    assert load_data_dir(tmp_path / "u").utts == ["spkA-utt1", "spkC-utt2"]
    run_script(sh("subset_data_dir.sh", "--spk-list", tmp_path / "spks", d, tmp_path / "s"))
    assert load_data_dir(tmp_path / "s").speakers == ["spkB", "spkE"]
    assert len(load_data_dir(tmp_path / "s").utt2spk) == 6
    run_script(sh("subset_data_dir.sh", "--first", 5, d, tmp_path / "f"))
    assert load_data_dir(tmp_path / "f").utts == all_utts[:5]
    r1 = subset_data_dir(d, tmp_path / "r1", random_n=6, seed=3).utts
    run_script(sh("subset_data_dir.sh", "--random", 6, "--seed", 3, d, tmp_path / "r2"))
    r2 = load_data_dir(tmp_path / "r2").utts
    r3 = subset_data_dir(d, tmp_path / "r3", random_n=6, seed=4).utts
    assert r1 == r2 and len(r1) == 6 and set(r1) <= set(all_utts)
    assert r1 != r3
    for name in ("u", "s", "f", "r1", "r2", "r3"):
        sub = tmp_path / name
        assert validate_data_dir(sub) == [], name
        frames = load_data_dir(sub).files["utt2num_frames"]
        assert frames == {u: v for u, v in load_data_dir(d).files["utt2num_frames"].items() if u in frames}


def test_subset_bad_requests_fail_clearly(tmp_path):
    d = make_dir(tmp_path / "d")
    with pytest.raises(UserError, match="only 15 utterances"):
        subset_data_dir(d, tmp_path / "x", first=99)
    with pytest.raises(UserError, match="exactly one"):
        subset_data_dir(d, tmp_path / "x", first=1, random_n=1)
    (tmp_path / "none").write_text("nobody\n")
    proc = run_script(sh("subset_data_dir.sh", "--spk-list", tmp_path / "none", d, tmp_path / "x"),
                      check=False)
    assert proc.returncode == 1 and "no utterance" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_subset_carries_the_feature_record(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    (d / "fbank.yaml").write_text("n_mels: 80\n")
    subset_data_dir(d, tmp_path / "s", first=3)
    assert (tmp_path / "s" / "fbank.yaml").read_text() == "n_mels: 80\n"


# ------------------------------------------------------------------ copy (oversampling)


def test_copy_renames_ids_and_combines_into_an_oversampled_dir(tmp_path):
    d = make_dir(tmp_path / "d", {"spkA": 2, "spkB": 1}, feats=True)
    (d / "fbank.yaml").write_text("n_mels: 80\n")
    (d / "spk2domain").write_text("spkA real\nspkB synthetic\n")
    run_script(sh("copy_data_dir.sh", "--utt-suffix", "-rx1", d, tmp_path / "c"))  # a dash-led suffix
    c = load_data_dir(tmp_path / "c")
    assert c.utt2spk == {"spkA-utt0-rx1": "spkA", "spkA-utt1-rx1": "spkA", "spkB-utt0-rx1": "spkB"}
    src = load_data_dir(d)
    for name in ("wav.scp", "feats.scp", "utt2num_frames"):   # same audio and features, new keys
        assert c.files[name] == {f"{u}-rx1": v for u, v in src.files[name].items()}, name
    assert (tmp_path / "c" / "fbank.yaml").read_text() == "n_mels: 80\n"
    assert (tmp_path / "c" / "spk2domain").read_text() == (d / "spk2domain").read_text()
    assert validate_data_dir(tmp_path / "c") == []
    both = combine_data(tmp_path / "both", [d, tmp_path / "c"])
    assert len(both.utt2spk) == 6 and both.spk2utt()["spkA"] == ["spkA-utt0", "spkA-utt0-rx1", "spkA-utt1",
                                                                  "spkA-utt1-rx1"]
    assert (tmp_path / "both" / "fbank.yaml").is_file() and validate_data_dir(tmp_path / "both") == []
    # new speakers too: prefixes on both keep Kaldi's rule (utterance ids start with the speaker id)
    sp = copy_data_dir(d, tmp_path / "sp", utt_prefix="sp0.9-", spk_prefix="sp0.9-")
    assert sp.speakers == ["sp0.9-spkA", "sp0.9-spkB"] and "sp0.9-spkA-utt1" in sp.utt2spk
    assert (tmp_path / "sp" / "spk2domain").read_text() == "sp0.9-spkA real\nsp0.9-spkB synthetic\n"


def test_copy_refuses_ids_that_break_the_speaker_prefix_rule(tmp_path):
    d = make_dir(tmp_path / "d", {"spkA": 2})
    with pytest.raises(UserError, match="would not start with its speaker id 'spkA'"):
        copy_data_dir(d, tmp_path / "x", utt_prefix="rx-")
    with pytest.raises(UserError, match="would not start with its speaker id 'spkA-x'"):
        copy_data_dir(d, tmp_path / "x", spk_suffix="-x")
    with pytest.raises(UserError, match="give a prefix or suffix"):
        copy_data_dir(d, tmp_path / "x")
    with pytest.raises(UserError, match="must differ"):
        copy_data_dir(d, d, utt_suffix="-a")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ utt2spk <-> spk2utt


def test_utt2spk_spk2utt_conversions(tmp_path):
    d = make_dir(tmp_path / "d")
    out = run_script(sh("utt2spk_to_spk2utt.sh", d / "utt2spk")).stdout
    assert out == (d / "spk2utt").read_text()
    back = run_script(["bash", "-c", f"{REPO}/utils/spk2utt_to_utt2spk.sh < {d}/spk2utt"]).stdout
    assert back == (d / "utt2spk").read_text()
    proc = run_script(["bash", "-c", f"echo 'u1 s1 extra' | {REPO}/utils/utt2spk_to_spk2utt.sh"], check=False)
    assert proc.returncode == 1 and "expected 'utt spk'" in proc.stderr


@pytest.mark.parametrize("script", ["validate_data_dir.sh", "fix_data_dir.sh", "subset_data_dir.sh",
                                    "split_data.sh", "combine_data.sh", "copy_data_dir.sh",
                                    "utt2spk_to_spk2utt.sh", "spk2utt_to_utt2spk.sh"])
def test_scripts_have_help_and_usage(script):
    proc = run_script(sh(script, "--help"))
    assert proc.stdout.startswith("Usage:")
    if script not in ("utt2spk_to_spk2utt.sh", "spk2utt_to_utt2spk.sh"):
        bad = run_script(sh(script), check=False)
        assert bad.returncode == 1 and bad.stderr.startswith("Usage:")
