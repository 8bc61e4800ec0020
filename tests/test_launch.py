"""Job launcher (dmha.launch, utils/launch.sh): substitution, logs, parallelism limit, failures, kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_script, sigint_default

from dmha.common.errors import UserError
from dmha.launch import build_command, launch, make_jobs, parse_job_spec

LAUNCH = str(REPO / "utils" / "launch.sh")


def test_all_jobs_run_with_job_substituted_in_log_and_every_word(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run_script([LAUNCH, "JOB=1:4", f"{tmp_path}/log/t.JOB.log",
                "bash", "-c", f"echo job=JOB arg=xJOBy > {out}/JOB.txt; echo to-log JOB"])
    for i in range(1, 5):
        assert (out / f"{i}.txt").read_text() == f"job={i} arg=x{i}y\n"
        log = (tmp_path / "log" / f"t.{i}.log").read_text().splitlines()
        assert log[0].startswith("# bash -c") and f"{out}/{i}.txt" in log[0]  # the command line
        assert log[1].startswith("# Started at ")
        assert f"to-log {i}" in log
        assert log[-2].startswith("# Accounting: time=")
        assert log[-1].startswith("# Ended (code 0) at ")


def test_quoted_command_is_a_shell_line_with_pipes_and_redirects(tmp_path):
    run_script([LAUNCH, "JOB=2:3", f"{tmp_path}/p.JOB.log",
                f"printf 'b\\na\\nJOB\\n' | sort > {tmp_path}/s.JOB && echo done-JOB"])
    for i in (2, 3):
        assert (tmp_path / f"s.{i}").read_text() == f"{i}\na\nb\n"
        assert f"done-{i}" in (tmp_path / f"p.{i}.log").read_text()
    assert not (tmp_path / "p.1.log").exists()


def test_several_words_are_quoted_except_operators():
    assert build_command(["echo", "a  b", "|", "tr", "a", "x"]) == "echo 'a  b' | tr a x"
    assert build_command(["echo $HOME"]) == "echo $HOME"
    jobs = make_jobs(parse_job_spec("N=1:2"), "l.N", ["cmd", "in.N", "2>&1", ">", "o.N"])
    assert [(j.index, j.command, j.log) for j in jobs] == [
        (1, "cmd in.1 2>&1 > o.1", "l.1"), (2, "cmd in.2 2>&1 > o.2", "l.2")]


def test_single_job_without_spec_and_spec_parsing(tmp_path):
    run_script([LAUNCH, f"{tmp_path}/one.log", "echo", "JOB stays"])
    assert "JOB stays" in (tmp_path / "one.log").read_text()
    assert parse_job_spec("JOB=3") is not None and list(parse_job_spec("JOB=3").ids) == [3]
    assert parse_job_spec("data/x.log") is None
    with pytest.raises(UserError, match="empty"):
        parse_job_spec("JOB=4:2")
    with pytest.raises(UserError, match="does not contain JOB"):
        make_jobs(parse_job_spec("JOB=1:2"), "same.log", ["true"])


def test_pipefail_makes_a_failing_pipeline_stage_fail(tmp_path):
    res = launch([f"{tmp_path}/f.log", "false | cat"], check=False)
    assert res.codes == {1: 1}
    assert "# Ended (code 1)" in (tmp_path / "f.log").read_text()


def test_failure_propagates_naming_each_failed_job_and_its_log(tmp_path):
    proc = run_script([LAUNCH, "JOB=1:4", f"{tmp_path}/log/f.JOB.log",
                       "echo out-JOB; if [ $((JOB % 2)) = 0 ]; then echo boom-JOB >&2; exit 3; fi"],
                      check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert "2 of 4 jobs failed" in err
    assert f"job 2 (exit 3): see {tmp_path}/log/f.2.log" in err
    assert f"job 4 (exit 3): see {tmp_path}/log/f.4.log" in err
    assert "f.1.log" not in err and "f.3.log" not in err
    assert "boom-2" in err  # the first failure's last output line
    assert (tmp_path / "log/f.2.log").read_text().splitlines()[-1].startswith("# Ended (code 3)")
    assert (tmp_path / "log/f.3.log").read_text().splitlines()[-1].startswith("# Ended (code 0)")
    # the successful jobs still ran to the end
    assert "out-3" in (tmp_path / "log/f.3.log").read_text()


def _concurrency_probe(d: Path, n_jobs: int, want: int) -> str:
    """A job that holds a token in d/run while running and records the most tokens it saw at once.

    It waits (polling, 30 s cap) until ``want`` tokens exist or every other job has finished, so a
    correct launcher always lets the first wave reach the limit: no timing assumption decides the result.
    """
    return (f"mkdir -p {d}/run {d}/done; mkdir {d}/run/JOB; max=0; t=0; "
            f"while :; do n=$(ls {d}/run | wc -l); [ $n -gt $max ] && max=$n; "
            f"[ $n -ge {want} ] && break; [ $((n + $(ls {d}/done | wc -l))) -ge {n_jobs} ] && break; "
            f"t=$((t+1)); [ $t -gt 600 ] && {{ echo timeout; exit 9; }}; sleep 0.05; done; "
            f"sleep 0.2; n=$(ls {d}/run | wc -l); [ $n -gt $max ] && max=$n; "
            f"echo $max > {d}/max.JOB; touch {d}/done/JOB; rmdir {d}/run/JOB")


@pytest.mark.parametrize("max_parallel,n_jobs", [(2, 5), (1, 3)])
def test_max_parallel_is_respected_and_reached(tmp_path, max_parallel, n_jobs):
    d = tmp_path / "probe"
    run_script([LAUNCH, "--max-parallel", str(max_parallel), f"JOB=1:{n_jobs}", f"{tmp_path}/log/c.JOB.log",
                _concurrency_probe(d, n_jobs, max_parallel)])
    seen = [int((d / f"max.{i}").read_text()) for i in range(1, n_jobs + 1)]
    assert max(seen) == max_parallel, seen
    assert len(list((d / "done").iterdir())) == n_jobs


def test_without_limit_all_jobs_run_at_once(tmp_path):
    d = tmp_path / "probe"
    launch(["JOB=1:3", f"{tmp_path}/u.JOB.log", _concurrency_probe(d, 99, 3)])  # needs all 3 together
    assert [int((d / f"max.{i}").read_text()) for i in (1, 2, 3)] == [3, 3, 3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_killing_the_launcher_kills_its_jobs(tmp_path, sig, code):
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    cmd = f"sleep 120 & echo $! > {tmp_path}/sleep.JOB; wait"
    launcher = subprocess.Popen([sys.executable, "-m", "dmha.bin.launch", "JOB=1:2", f"{tmp_path}/k.JOB.log",
                                 cmd], env=env, stderr=subprocess.PIPE, text=True,
                                preexec_fn=sigint_default)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        pids_files = [tmp_path / "sleep.1", tmp_path / "sleep.2"]
        while not all(p.is_file() and p.read_text().strip() for p in pids_files):
            assert time.monotonic() < deadline, "jobs did not start"
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pids_files]
        launcher.send_signal(sig)
        _, err = launcher.communicate(timeout=120)
        assert launcher.returncode == code, err
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "the jobs' children survived the launcher"
        for i in (1, 2):
            last = (tmp_path / f"k.{i}.log").read_text().splitlines()[-1]
            assert last.startswith("# Ended (code 143)") and "killed by a signal" in last
    finally:  # never leave our processes behind, even when the launcher failed to
        if launcher.poll() is None:
            launcher.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_unknown_and_unavailable_backends_fail_clearly(tmp_path):
    proc = run_script([LAUNCH, "--backend", "nope", "JOB=1:2", f"{tmp_path}/x.JOB.log", "true"], check=False)
    assert proc.returncode == 1 and "unknown backend 'nope'" in proc.stderr
    assert not (tmp_path / "x.1.log").exists()


def test_help_and_usage():
    assert run_script([LAUNCH, "--help"]).stdout.startswith("Usage:")
    bad = run_script([LAUNCH, "JOB=1:2"], check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Usage:")
    assert "--max-parallel" in run_script([sys.executable, "-m", "dmha.bin.launch", "--help"]).stdout
