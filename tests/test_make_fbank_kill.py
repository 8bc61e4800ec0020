"""Kill steps/make_fbank.sh with SIGKILL mid-way (twice), rerun: the result equals an uninterrupted run.

While killed there is no feats.scp (or only a complete one) and every job scp that exists reads back in
full; the rerun reuses the jobs that had finished.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
from conftest import REPO, run_script

from dmha.common.fileio import read_kv

SR = 16000
N_UTTS = 240


def make_dir(root: Path) -> Path:
    w = root / "wav"
    w.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        sf.write(w / f"{i}.wav", (0.1 * rng.standard_normal(SR + 1111 * i)).astype(np.float32), SR,
                 subtype="PCM_16")
    d = root / "big"
    d.mkdir()
    utts = sorted(f"s{i % 4}-u{i:04d}" for i in range(N_UTTS))
    # pipes make each utterance cost a process start, so the jobs run long enough to be killed mid-way
    (d / "wav.scp").write_text("".join(f"{u} cat {w}/{int(u[-4:]) % 6}.wav |\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    spk2utt = run_script(["utils/utt2spk_to_spk2utt.sh", str(d / "utt2spk")]).stdout
    (d / "spk2utt").write_text(spk2utt)
    return d


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO}/utils:{REPO}/steps:" + env.get("PATH", "")
    env["LC_ALL"] = "C"
    return env


def _our_pids(marker: str) -> list[int]:
    """Processes whose command line names our unique tmp dir (the stage, the launcher, the jobs)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            pids.append(int(p.name))
    return pids


def kill_when(d: Path, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    """Start make_fbank in its own process group; SIGKILL it and every job once ``cond()`` holds."""
    proc = subprocess.Popen([str(REPO / "steps/make_fbank.sh"), "--nj", "2", str(d)], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while not cond():
        assert proc.poll() is None, "make_fbank finished before the kill point; make the data bigger"
        assert time.monotonic() - t0 < timeout, "kill point never reached"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    # The launcher runs each job in its own session: kill those too, as a crash or scancel would.
    for _ in range(50):
        pids = _our_pids(str(d))
        if not pids:
            break
        for pid in pids:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    proc.wait()
    assert not _our_pids(str(d))


def _writing(arks: Path) -> bool:
    """A job has written part of an ark (whatever name it writes it under)."""
    for p in arks.glob("raw_fbank_big.*.ark*"):
        try:
            if p.stat().st_size > 0:
                return True
        except FileNotFoundError:  # renamed just now
            pass
    return False


def assert_consistent(d: Path) -> None:
    """What a reader can see after the kill: no feats.scp or a complete one; job scps read in full."""
    if (d / "feats.scp").exists():
        feats = kaldiio.load_scp(str(d / "feats.scp"))
        assert len(feats) == N_UTTS and all(m.shape[1] == 80 for m in feats.values())
    for scp in (d / "data").glob("raw_fbank_*.scp"):
        job = scp.name.split(".")[1]
        mats = dict(kaldiio.load_scp(str(scp)))
        # a job scp that exists is complete: every utterance of its split, every matrix readable
        assert mats.keys() == read_kv(d / "split2" / job / "wav.scp").keys()
        assert all(m.shape[1] == 80 for m in mats.values())


def test_kill_and_rerun_equals_uninterrupted_run(tmp_path):
    d = make_dir(tmp_path)
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in ("wav.scp", "utt2spk", "spk2utt"):
        shutil.copy(d / f, ref / f)
    arks = d / "data"

    # 1) killed while the jobs are writing their arks
    kill_when(d, lambda: _writing(arks))
    assert not (d / "feats.scp").exists()
    assert_consistent(d)

    # 2) rerun, killed as soon as the first job has finished (its scp published)
    kill_when(d, lambda: any(arks.glob("raw_fbank_big.[12].scp")))
    assert not (d / "feats.scp").exists()
    assert_consistent(d)
    finished = sorted(p.name.split(".")[1] for p in arks.glob("raw_fbank_big.[12].scp"))
    assert finished

    # 3) rerun to the end: finished jobs are reused, the result equals an uninterrupted run
    run_script(["steps/make_fbank.sh", "--nj", "2", str(d)], timeout=120)
    for job in finished:
        assert "skipping this job" in (d / "log" / f"make_fbank_big.{job}.log").read_text()
    assert not list(arks.glob("*.tmp"))
    run_script(["steps/make_fbank.sh", "--nj", "2", str(ref)], timeout=120)
    got = dict(kaldiio.load_scp(str(d / "feats.scp")))
    want = dict(kaldiio.load_scp(str(ref / "feats.scp")))
    assert len(got) == N_UTTS and got.keys() == want.keys()
    for utt in want:
        np.testing.assert_array_equal(got[utt], want[utt])
    assert read_kv(d / "utt2num_frames") == read_kv(ref / "utt2num_frames")
