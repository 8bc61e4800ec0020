"""The VoxCeleb recipe on a fake tree in the official layout: data prep, trial conversion, configs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_script
from voxceleb_fixtures import MISSING, VOX1_DEV_SPK, VOX1_TEST_SPK, VOX2_SPK, make_fake_voxceleb

from dmha.common.errors import UserError
from dmha.common.fileio import read_kv
from dmha.corpus import voxceleb as vc
from dmha.corpus.voxceleb_prep import prepare_vox2
from dmha.corpus.voxceleb_trials import convert_official_list
from dmha.data.trials import read_trials
from dmha.features.audio import load_audio

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg not installed (apt-get install ffmpeg): VoxCeleb2 m4a tests")
TOY_OPTS = "--val-speakers 2 --max-missing-pct 10"
#: The scratch recipe copies below must use the project's environment, not make one of their own.
VENV = os.environ.get("DMHA_VENV", str(REPO / ".venv"))


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install ffmpeg): VoxCeleb2 m4a tests")
    return make_fake_voxceleb(tmp_path_factory.mktemp("vox"))


@pytest.fixture(scope="module")
def stage0(fake, tmp_path_factory):
    """run.sh --corpus voxceleb stage 0 in a scratch copy of the recipe's entry points."""
    work = tmp_path_factory.mktemp("recipe")
    for src in REPO.iterdir():  # everything but the outputs, so data/ and exp/ land in the scratch dir
        if src.name not in ("data", "exp", "fbank", "mfcc", ".git"):
            (work / src.name).symlink_to(src)
    proc = run_script(["bash", "run.sh", "--corpus", "voxceleb", "--vox1", str(fake.vox1), "--vox2",
                       str(fake.vox2), "--stage", "0", "--stop-stage", "0"], cwd=work,
                      env={"VOX_PREP_OPTS": TOY_OPTS, "DMHA_VENV": VENV})
    return work / "data", proc


def rel_to_utt(rel: str) -> str:
    return rel[:-4].replace("/", "-")


# ----------------------------------------------------------------------------------------- ids


def test_utt_id_convention_round_trips():
    assert vc.utt_id_from_relpath("id10270/x6uYqmx31kE/00001.wav") == "id10270-x6uYqmx31kE-00001"
    # YouTube ids may contain '-': still invertible (speaker before the first '-', segment after the last)
    utt = vc.utt_id_from_relpath("wav/id10270/-a-b_c-/00007.m4a")
    assert utt == "id10270--a-b_c--00007"
    assert vc.relpath_of(utt) == "id10270/-a-b_c-/00007.wav"
    with pytest.raises(ValueError):
        vc.utt_id_from_relpath("id10270/00001.wav")


def test_official_list_bad_line_names_file_and_line(tmp_path):
    bad = tmp_path / "veri_test2.txt"
    bad.write_text("1 id10270/a/00001.wav id10270/b/00002.wav\n2 id10270/a/00001.wav id10271/b/00002.wav\n")
    with pytest.raises(UserError, match=r"veri_test2.txt:2: expected '1\|0"):
        convert_official_list(bad, set())


# ------------------------------------------------------------------------------------- stage 0


@needs_ffmpeg
def test_stage0_data_dirs_and_ids(fake, stage0):
    data, _ = stage0
    for d in ("vox2_train", "vox2_val", "vox1", "vox1_O", "vox1_E", "vox1_H", "vox1_O_orig", "vox1_E_clean",
              "vox1_H_clean"):
        run_script(["utils/validate_data_dir.sh", str(data / d)])
    vox1 = read_kv(data / "vox1" / "utt2spk")
    assert set(vox1) == {rel_to_utt(r) for r in fake.vox1_relpaths()}  # dev + test, official-path ids
    assert set(vox1.values()) == set(VOX1_DEV_SPK + VOX1_TEST_SPK)
    assert all(u.startswith(s + "-") for u, s in vox1.items())
    assert list(vox1) == sorted(vox1, key=lambda u: u.encode())

    train = read_kv(data / "vox2_train" / "utt2spk")
    val = read_kv(data / "vox2_val" / "utt2spk")
    assert len(set(val.values())) == 2
    assert not set(train.values()) & set(val.values())                  # speaker-disjoint
    assert set(train.values()) | set(val.values()) == set(VOX2_SPK)
    assert len(train) + len(val) == 4 * len(VOX2_SPK)
    assert "id00012-x6u-Yqm_x31-00001" in train or "id00012-x6u-Yqm_x31-00001" in val
    held = read_kv(data / "vox2_val" / "speakers_held_out")
    assert set(held) == set(val.values())

    vt = read_trials(data / "vox2_val" / "trials")
    assert set(vt.enroll) | set(vt.test) <= set(val)
    assert all((val[e] == val[t]) == lab for e, t, lab in zip(vt.enroll, vt.test, vt.labels))
    assert vt.labels.any() and not vt.labels.all()


@needs_ffmpeg
def test_stage0_m4a_pipe_reaches_audio(fake, stage0):
    data, _ = stage0
    wav = read_kv(data / "vox2_train" / "wav.scp")
    utt, entry = next(iter(wav.items()))
    assert entry.startswith("ffmpeg -nostdin -loglevel error -i ")
    assert entry.endswith("-f wav -ar 16000 -ac 1 - |")
    samples, sr = load_audio(entry)
    assert sr == 16000 and abs(len(samples) / sr - 1.2) < 0.1   # AAC adds priming samples only
    assert 0.05 < np.abs(samples).max() <= 1.0


@needs_ffmpeg
def test_stage0_trials_converted_and_missing_reported(fake, stage0):
    data, proc = stage0
    lines = fake.lists["veri_test2.txt"]
    missing_utt = rel_to_utt(MISSING)
    expect = [ln.split() for ln in lines if MISSING not in ln]
    tr = read_trials(data / "vox1_O" / "trials")
    assert len(tr) == len(lines) - 1 == len(expect)
    for (lab, e, t), te, tt, tl in zip(expect, tr.enroll, tr.test, tr.labels):
        assert (te, tt, bool(tl)) == (rel_to_utt(e), rel_to_utt(t), lab == "1")
    dropped = (data / "vox1_O" / "trials.missing").read_text().splitlines()
    assert dropped == [ln for ln in lines if MISSING in ln]
    # the report: count of trials and utterances, the utterance itself, where the list is
    assert f"1 of {len(lines)} trials name 1 utterance(s) absent" in proc.stdout + proc.stderr
    assert missing_utt in proc.stdout + proc.stderr
    # the test dir holds exactly the utterances of its list
    assert set(read_kv(data / "vox1_O" / "utt2spk")) == set(tr.enroll) | set(tr.test)
    # the paper's E/H are the original lists; the cleaned ones are extra sets
    assert len(read_trials(data / "vox1_E" / "trials")) == len(fake.lists["list_test_all.txt"])
    assert len(read_trials(data / "vox1_E_clean" / "trials")) == len(fake.lists["list_test_all2.txt"])
    assert len(read_trials(data / "vox1_H" / "trials")) == len(fake.lists["list_test_hard.txt"])
    assert not (data / "vox1_E" / "trials.missing").exists()


@needs_ffmpeg
def test_missing_over_limit_fails_clearly(fake, tmp_path):
    proc = run_script(["local/prepare_voxceleb.sh", "--vox1", str(fake.vox1), str(tmp_path / "data")],
                      check=False)
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() + proc.stdout.splitlines() if "ERROR" in ln]
    assert len(err) == 1 and "1 of 21 trials" in err[0] and "--max-missing-pct" in err[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "vox1_O" / "trials").exists()
    assert (tmp_path / "data" / "vox1_O" / "trials.missing").is_file()


@needs_ffmpeg
def test_m4a_convert_mode_matches_pipe(fake, stage0, tmp_path):
    data, _ = stage0
    out = tmp_path / "data"
    run_script(["local/prepare_voxceleb.sh", "--vox1", str(fake.vox1), "--vox2", str(fake.vox2), "--m4a-mode",
                "convert", "--nj", "2", "--val-speakers", "2", "--max-missing-pct", "10", str(out)])
    conv = read_kv(out / "vox2_train" / "wav.scp")
    pipe = read_kv(data / "vox2_train" / "wav.scp")
    assert conv.keys() == pipe.keys()
    for utt in list(conv)[:3]:
        path = Path(conv[utt])
        assert path.is_file() and path.suffix == ".wav" and out / "vox2_dev_wav" in path.parents
        assert str(path).endswith(vc.relpath_of(utt))
        a, sr_a = load_audio(conv[utt])
        b, sr_b = load_audio(pipe[utt])
        assert sr_a == sr_b == 16000 and np.array_equal(a, b)  # same decoder, same samples
    # a second run keeps the converted files (resumable) and gives the same data dir
    mtime = Path(conv[next(iter(conv))]).stat().st_mtime_ns
    run_script(["local/prepare_voxceleb.sh", "--vox1", str(fake.vox1), "--vox2", str(fake.vox2), "--m4a-mode",
                "convert", "--val-speakers", "2", "--max-missing-pct", "10", str(out)])
    assert Path(conv[next(iter(conv))]).stat().st_mtime_ns == mtime
    assert read_kv(out / "vox2_train" / "wav.scp") == conv


@needs_ffmpeg
def test_convert_drops_undecodable_file_with_a_record(fake, tmp_path):
    vox2 = tmp_path / "voxceleb2"
    shutil.copytree(fake.vox2, vox2)
    bad = vox2 / "dev" / "aac" / VOX2_SPK[0] / "x6u-Yqm_x31" / "00003.m4a"
    bad.write_bytes(b"not an m4a file" * 10)
    prepare_vox2(vox2, tmp_path / "data", m4a_mode="convert", val_speakers=2, nj=2)
    utts = set(read_kv(tmp_path / "data" / "vox2_train" / "utt2spk")) | set(
        read_kv(tmp_path / "data" / "vox2_val" / "utt2spk"))
    assert len(utts) == 4 * len(VOX2_SPK) and f"{VOX2_SPK[0]}-x6u-Yqm_x31-00003" not in utts
    failed = read_kv(tmp_path / "data" / "vox2_convert_failed")
    assert list(failed) == [f"{VOX2_SPK[0]}-x6u-Yqm_x31-00003"]
    assert "ffmpeg exit" in next(iter(failed.values()))
    assert not list((tmp_path / "data" / "vox2_dev_wav").rglob("*.tmp"))   # no half-written wav left


@needs_ffmpeg
def test_missing_ffmpeg_is_a_clear_error(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH
    with pytest.raises(UserError, match="ffmpeg not found on PATH: VoxCeleb2 m4a audio needs it"):
        prepare_vox2(fake.vox2, tmp_path / "data", val_speakers=2)


def test_merged_vox1_and_converted_vox2_need_no_ffmpeg(tmp_path, monkeypatch):
    fake = make_fake_voxceleb(tmp_path / "vox", m4a=False, merged_vox1=True)
    assert (fake.vox1 / "wav").is_dir() and not (fake.vox1 / "dev").exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # prove ffmpeg is not needed for wav
    from dmha.corpus.voxceleb_prep import prepare_vox1

    made = prepare_vox1(fake.vox1, tmp_path / "data", max_missing_pct=10)
    assert made[:3] == ["vox1_O", "vox1_E", "vox1_H"]
    prepare_vox2(fake.vox2, tmp_path / "data", val_speakers=2)
    wav = read_kv(tmp_path / "data" / "vox2_train" / "wav.scp")
    assert all(Path(p).is_file() and p.endswith(".wav") for p in wav.values())
    assert len(read_kv(tmp_path / "data" / "vox1" / "utt2spk")) == len(fake.vox1_relpaths())


def test_stage0_needs_vox_dirs(tmp_path):
    proc = run_script(["bash", "run.sh", "--corpus", "voxceleb", "--stage", "0", "--stop-stage", "0"],
                      check=False)
    assert proc.returncode != 0 and "needs --vox1" in proc.stderr
    proc = run_script(["local/prepare_voxceleb.sh", "--vox1", str(tmp_path / "nope"), str(tmp_path / "d")],
                      check=False)
    assert proc.returncode != 0 and f"--vox1 {tmp_path / 'nope'}: directory not found" in proc.stderr


# ---------------------------------------------------------------------------------- paper configs

PAPER_ROWS = {  # config -> (pooling, K, pooled dim) of SPEC §5
    "attention": ("attention", 1, 5120), "mha_k8": ("mha", 8, 5120), "mha_k16": ("mha", 16, 5120),
    "mha_k32": ("mha", 32, 5120), "dmha_k8": ("dmha", 8, 640), "dmha_k16": ("dmha", 16, 320),
    "dmha_k32": ("dmha", 32, 160),
}


#: SPEC §5 as printed: EER % / DCF(0.01) for O, E, H (the paper's DCF is unnormalised: x100 = ours).
PAPER_TABLE = {
    "attention": ((3.42, .0031), (3.42, .0029), (4.89, .0038)),
    "mha_k8": ((3.36, .0029), (3.44, .0029), (5.04, .0040)),
    "mha_k16": ((3.43, .0032), (3.40, .0029), (4.90, .0040)),
    "mha_k32": ((3.64, .0032), (3.68, .0031), (5.35, .0042)),
    "dmha_k8": ((3.27, .0028), (3.23, .0028), (4.69, .0037)),
    "dmha_k16": ((3.19, .0027), (3.22, .0027), (4.67, .0038)),
    "dmha_k32": ((3.23, .0028), (3.18, .0026), (4.61, .0036)),
}


def expected_params(pooling: str, heads: int, pooled: int, classes: int = 5994) -> dict[str, int]:
    """Parameter counts of the paper model written out from its definition (SPEC §2)."""
    widths, cnn, cin = [128, 256, 512, 1024], 0, 1
    for c in widths:                                   # per block: two 3x3 convs with bias
        cnn += 9 * cin * c + c + 9 * c * c + c
        cin = c
    d = 1024 * 5
    pool = d + (d // heads if pooling == "dmha" else 0)   # u (attention) / u_1..u_K (mha) [+ u' (dmha)]
    dense = (pooled * 400 + 400) + 2 * (400 * 400 + 400) + 2 * 400   # fc1, fc2, pre-layer, BatchNorm
    return {"frontend": cnn, "pooling": pool, "dense": dense, "classifier": classes * 400}


def test_paper_configs_one_per_row_with_paper_sizes():
    import torch
    import yaml

    from dmha.models import build_model, count_parameters
    from dmha.models.losses import build_loss

    torch.set_num_threads(1)
    confs = {p.stem: p for p in (REPO / "egs" / "voxceleb" / "conf").glob("*.yaml")
             if "model" in (yaml.safe_load(p.read_text()) or {})}   # not e.g. a slurm.yaml
    assert set(confs) == set(PAPER_ROWS)
    for name, (pooling, heads, pooled) in PAPER_ROWS.items():
        cfg = yaml.safe_load(confs[name].read_text())
        assert cfg["model"]["pooling"] == pooling and cfg["model"].get("heads", 1) in (heads, None)
        assert cfg["model"]["channels"] == [128, 256, 512, 1024] and cfg["features"]["n_mels"] == 80
        t = cfg["train"]
        got_train = (t["crop_frames"], t["batch_size"], t["grad_accum"], float(t["lr"]),
                     float(t["weight_decay"]), t["lr_patience"], t["stop_patience"], t["max_epochs"])
        assert got_train == (350, 128, 2, 1e-4, 1e-3, 15, 25, 100)
        assert (cfg["loss"]["type"], cfg["loss"]["scale"], cfg["loss"]["margin"]) == ("amsoftmax", 30, 0.4)
        for s, (eer, dcf) in zip(("vox1_O", "vox1_E", "vox1_H"), PAPER_TABLE[name]):
            assert cfg["paper"][s] == pytest.approx({"eer": eer, "mindcf_0.01": 100 * dcf})
        assert set(cfg["paper"]) == {"vox1_O", "vox1_E", "vox1_H"}
        model = build_model(cfg["model"], 5994)
        loss = build_loss(cfg["loss"], model.embed_dim, 5994)
        got = model.parameter_counts()
        want = expected_params(pooling, heads, pooled)
        assert model.pooling.get_out_dim() == pooled
        parts = ("frontend", "pooling", "dense")
        assert {k: got[k] for k in parts} == {k: want[k] for k in parts}
        assert count_parameters(loss) == want["classifier"]
        if name == "dmha_k32":  # the paper: ~21.5 M parameters (CNN 18.7 M, classifier 2.4 M)
            total = got["total"] + count_parameters(loss)
            assert abs(total - 21.5e6) < 0.05e6 and abs(got["frontend"] - 18.7e6) < 0.05e6
        del model, loss


def test_summary_prints_paper_figures_from_exp_config(tmp_path):
    from dmha.scoring.results import append_result

    exp = tmp_path / "exp"
    exp.mkdir()
    for s, eer in (("vox1_O", 4.5), ("vox1_E_clean", 5.0)):
        append_result(exp / "results", {"set": s, "norm": "none", "eer": eer, "mindcf_0.01": 0.3,
                                        "mindcf_0.001": 0.5, "n_trials": 10, "n_target": 5, "n_nontarget": 5,
                                        "score_file": "x"})
    summary = ["python", "-m", "dmha.bin.summarize_results", str(exp / "results")]
    out = run_script(summary).stdout
    assert "paper EER" not in out                      # no config.yaml: our columns only
    shutil.copy(REPO / "egs" / "voxceleb" / "conf" / "dmha_k32.yaml", exp / "config.yaml")
    out = run_script(summary).stdout
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in out.splitlines()
            if ln.startswith("| vox1")}
    assert "paper EER (%)" in out
    assert rows["vox1_O"][2:4] == ["cosine", "4.50"] and rows["vox1_O"][-2:] == ["3.23", "0.2800"]
    assert rows["vox1_E_clean"][-2:] == ["-", "-"]      # no paper figure for that list


# ------------------------------------------------------------------------------ stages 1-5 (toy)

TOY_YAML = """\
model: {channels: [4, 8, 8, 16], pooling: dmha, heads: 4, embed_dim: 32}
loss: {type: amsoftmax, scale: 30, margin: 0.4}
train: {crop_frames: 50, min_frames: 20, batch_size: 8, grad_accum: 1, lr: 1.0e-3, max_epochs: 1,
        ckpt_every_steps: 10, log_every_steps: 1, num_threads: 1}
"""


@needs_ffmpeg
@pytest.mark.slow
def test_run_sh_voxceleb_stages_1_to_5_toy(fake, stage0):
    """The fake tree through features (m4a via the ffmpeg pipe), lists, 1 epoch, extraction, scoring."""
    data, _ = stage0
    work = data.parent
    (work / "toy.yaml").write_text(TOY_YAML)
    proc = run_script(["bash", "run.sh", "--corpus", "voxceleb", "--stage", "1", "--config", "toy.yaml",
                       "--nj", "1", "--device", "cpu"], cwd=work,
                      env={"DMHA_VENV": VENV, "VOX_TEST_SETS": "vox1_O vox1_H"})  # E: as H
    # every m4a utterance reached the features through its ffmpeg pipe
    train = read_kv(data / "vox2_train" / "utt2spk")
    assert read_kv(data / "vox2_train" / "feats.scp").keys() == train.keys()
    assert not (data / "vox2_train" / "bad_utts").exists()
    exp = work / "exp" / "voxceleb_toy"
    assert len(read_kv(exp / "spk2int")) == len(set(train.values()))
    for s in ("vox1_O", "vox1_H"):
        tr = read_trials(data / s / "trials")
        lines = (exp / "scores" / f"{s}.score").read_text().splitlines()
        assert [ln.split()[:2] for ln in lines] == [[e, t] for e, t in zip(tr.enroll, tr.test)]
        assert f"| {s} | none |" in proc.stdout
    tsv = (exp / "results.tsv").read_text().splitlines()
    n = {ln.split("\t")[0]: int(ln.split("\t")[5]) for ln in tsv[1:]}
    assert n == {"vox1_O": len(fake.lists["veri_test2.txt"]) - 1,          # the missing trial left out
                 "vox1_H": len(fake.lists["list_test_hard.txt"])}


def test_paper_configs_resolve_and_keep_paper_section(tmp_path):
    """run.sh stages 2-3 load the paper configs; exp/<name>/config.yaml keeps paper: for the summary."""
    import yaml

    from dmha.config import load_config, save_config

    for path in sorted((REPO / "egs" / "voxceleb" / "conf").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        if "model" not in raw:
            continue
        cfg = load_config(path)
        save_config(cfg, tmp_path / "config.yaml")
        assert yaml.safe_load((tmp_path / "config.yaml").read_text())["paper"] == raw["paper"]
        assert load_config(tmp_path / "config.yaml") == cfg
