"""Slurm backend of the job launcher (dmha.launch.slurm) and the stages run through it.

The first tests check the sbatch mapping and the config without Slurm. The @pytest.mark.slurm tests
submit real jobs: they need a reachable Slurm (tests/slurm/start_slurm.sh brings up a single-node one;
.ci/run does so in CI) and are skipped with the reason otherwise (failed in CI, see slurm_util).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_script, sigint_default
from slurm_util import require_slurm

from dmha.common.errors import UserError
from dmha.launch import Resources, launch, make_jobs, parse_job_spec
from dmha.launch.slurm import array_spec, queue_name, sbatch_command
from dmha.launch.slurm_config import ENV_VAR, SlurmConfig, load_slurm_config

LAUNCH = str(REPO / "utils" / "launch.sh")


# ---------------------------------------------------------------- without Slurm: mapping and config


def test_array_spec_compresses_runs_and_queue_name_drops_index():
    assert array_spec([1, 2, 3, 4]) == "1-4"
    assert array_spec([7, 1, 2, 9, 10, 4]) == "1-2,4,7,9-10"
    assert array_spec([5]) == "5"
    jobs = make_jobs(parse_job_spec("JOB=1:3"), "exp/log/make_fbank.JOB.log", ["true"])
    assert queue_name(jobs) == "make_fbank"
    assert queue_name(make_jobs(None, "exp/x/train log.log", ["true"])) == "train_log"


def _cmd(res: Resources, cfg: SlurmConfig, max_parallel=None, spec="JOB=2:5") -> list[str]:
    jobs = make_jobs(parse_job_spec(spec), "/l/x.JOB.log", ["true"])
    return sbatch_command(jobs, res, cfg, max_parallel, Path("/l/q"), "x", Path("/l/q/x.sh"))


def test_sbatch_command_maps_resources_and_site_config():
    cfg = SlurmConfig(partition="cpu", gpu_partition="gpu", time="1:00:00", mem="2G", max_parallel=8,
                      sbatch_args=("--account=a",), gpu_sbatch_args=("--constraint=a100",))
    cpu = _cmd(Resources(num_threads=3), cfg)
    assert cpu[0] == "sbatch" and cpu[-1] == "/l/q/x.sh"
    assert {"--array=2-5%8", "--partition=cpu", "--time=1:00:00", "--mem=2G", "--cpus-per-task=3",
            "--output=/l/q/x.%a.out", "--account=a", "--nodes=1", "--export=ALL"} <= set(cpu)
    assert not any("gres" in a or "gpu" in a for a in cpu)
    # launch options override the site defaults; GPUs switch partition and add the GPU options
    gpu = _cmd(Resources(gpu=2, nodes=3, time="5:00", mem="8G", sbatch_args=("--qos=q",)), cfg,
               max_parallel=2)
    assert {"--array=2-5%2", "--partition=gpu", "--gres=gpu:2", "--constraint=a100", "--time=5:00",
            "--mem=8G", "--nodes=3", "--ntasks-per-node=1", "--qos=q", "--account=a"} <= set(gpu)
    assert "--partition=cpu" not in gpu and "--time=1:00:00" not in gpu
    # no site config: nothing site-specific, no throttle
    bare = _cmd(Resources(), SlurmConfig())
    assert "--array=2-5" in bare
    assert not any(a.startswith(("--partition", "--time", "--mem")) for a in bare)
    custom = _cmd(Resources(gpu=1), SlurmConfig(gpu_option="--gpus-per-node={gpu}"))
    assert "--gpus-per-node=1" in custom


def test_config_lookup_order_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert load_slurm_config().source == "built-in defaults"
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "slurm.yaml").write_text("partition: short\nsbatch_args: [--qos=x]\n")
    cfg = load_slurm_config()
    assert cfg.partition == "short" and cfg.sbatch_args == ("--qos=x",) and cfg.source.endswith("slurm.yaml")
    env_conf = tmp_path / "env.yaml"
    env_conf.write_text("partition: fromenv\n")
    monkeypatch.setenv(ENV_VAR, str(env_conf))
    assert load_slurm_config().partition == "fromenv"
    opt = tmp_path / "opt.yaml"
    opt.write_text("partition: fromopt\ntime: '2:00:00'\nmax_parallel: 3\n")
    assert load_slurm_config(str(opt)).partition == "fromopt"
    for text, msg in [("partitoin: x\n", "unknown key 'partitoin'"), ("max_parallel: two\n", "integer"),
                      ("sbatch_args: --qos=x\n", "must be a list"), ("gpu_option: --gres=gpu\n", "{gpu}"),
                      ("- a\n", "mapping"), ("poll_interval: 0\n", ">= 0.5")]:
        opt.write_text(text)
        with pytest.raises(UserError, match="opt.yaml") as e:
            load_slurm_config(str(opt))
        assert msg in str(e.value)
    with pytest.raises(UserError, match="file not found"):
        load_slurm_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(UserError, match="--mem"):
        Resources(mem="4 GB")


def test_example_config_is_valid():
    cfg = load_slurm_config(str(REPO / "conf" / "slurm.example.yaml"))
    assert cfg.partition == "cpu" and cfg.gpu_partition == "gpu" and cfg.max_parallel == 100


def test_local_backend_refuses_multi_node(tmp_path):
    with pytest.raises(UserError, match="--backend slurm"):
        launch([f"{tmp_path}/x.log", "true"], resources=Resources(nodes=2))


# ---------------------------------------------------------------- with Slurm

@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """A reachable Slurm and a config that polls squeue every second (the default is 10 s)."""
    require_slurm()
    conf = tmp_path / "slurm.yaml"
    conf.write_text("poll_interval: 1\n")
    monkeypatch.setenv(ENV_VAR, str(conf))
    return conf


def _squeue(job_id: str) -> str:
    return subprocess.run(["squeue", "--noheader", f"--jobs={job_id}"], capture_output=True, text=True).stdout


@pytest.mark.slurm
def test_start_script_is_idempotent_and_fast_when_slurm_is_up(slurm):
    t0 = time.monotonic()
    proc = run_script(["bash", "tests/slurm/start_slurm.sh"], timeout=60)
    assert "already up" in proc.stderr and time.monotonic() - t0 < 10


@pytest.mark.slurm
def test_array_runs_every_job_with_the_local_log_format(tmp_path, slurm):
    proc = run_script([LAUNCH, "--backend", "slurm", "--num-threads", "2", "JOB=1:3",
                       f"{tmp_path}/log/t.JOB.log",
                       f"echo job=JOB cpus=$SLURM_CPUS_PER_TASK task=$SLURM_ARRAY_TASK_ID > {tmp_path}/o.JOB;"
                       " echo to-log JOB"])
    assert "Slurm job" in proc.stderr  # the launcher says which job to look at
    for i in (1, 2, 3):
        assert (tmp_path / f"o.{i}").read_text() == f"job={i} cpus=2 task={i}\n"
        log = (tmp_path / "log" / f"t.{i}.log").read_text().splitlines()
        assert log[0].startswith("# echo job=") and log[1].startswith("# Started at ")
        assert f"to-log {i}" in log
        assert log[-2].startswith("# Accounting: time=") and log[-1].startswith("# Ended (code 0) at ")
        assert (tmp_path / "log" / "q" / f"t.{i}.status").read_text().strip() == "0"


@pytest.mark.slurm
def test_failures_name_each_failed_job_its_exit_code_and_log(tmp_path, slurm):
    proc = run_script([LAUNCH, "--backend", "slurm", "JOB=1:3", f"{tmp_path}/log/f.JOB.log",
                       "echo out-JOB; if [ JOB = 2 ]; then echo boom-JOB >&2; exit 3; fi"], check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()[-1]
    assert "1 of 3 jobs failed" in err
    assert f"job 2 (exit 3): see {tmp_path}/log/f.2.log" in err
    assert "boom-2" in err and "f.1.log" not in err and "f.3.log" not in err
    assert (tmp_path / "log/f.2.log").read_text().splitlines()[-1].startswith("# Ended (code 3)")
    assert "out-3" in (tmp_path / "log/f.3.log").read_text()


@pytest.mark.slurm
def test_a_task_killed_outright_fails_with_slurms_state_in_its_log(tmp_path, slurm):
    # kill -9 0 kills the task's whole process group, wrapper included: no status file, no log footer,
    # as after an out-of-memory kill; the launcher must still fail it, from scontrol's record.
    res = launch(["JOB=1:2", f"{tmp_path}/k.JOB.log", "echo started-JOB; [ JOB = 2 ] && kill -9 0; true"],
                 backend="slurm", check=False)
    assert res.codes == {1: 0, 2: 137}
    log = (tmp_path / "k.2.log").read_text()
    assert "started-2" in log and "ended FAILED (ExitCode 0:9)" in log
    assert log.splitlines()[-1].startswith("# Ended (code 137)")


def _concurrency_probe(d: Path, n_jobs: int, want: int) -> str:
    """Holds a token in d/run while running; records the most tokens seen at once (no timing assumption:
    it waits until ``want`` tokens exist or every other job has finished)."""
    return (f"mkdir -p {d}/run {d}/done; mkdir {d}/run/JOB; max=0; t=0; "
            f"while :; do n=$(ls {d}/run | wc -l); [ $n -gt $max ] && max=$n; "
            f"[ $n -ge {want} ] && break; [ $((n + $(ls {d}/done | wc -l))) -ge {n_jobs} ] && break; "
            f"t=$((t+1)); [ $t -gt 1200 ] && {{ echo timeout; exit 9; }}; sleep 0.05; done; "
            f"sleep 0.3; n=$(ls {d}/run | wc -l); [ $n -gt $max ] && max=$n; "
            f"echo $max > {d}/max.JOB; touch {d}/done/JOB; rmdir {d}/run/JOB")


@pytest.mark.slurm
@pytest.mark.parametrize("max_parallel,n_jobs", [(1, 3), (2, 3)])
def test_max_parallel_becomes_the_array_throttle(tmp_path, slurm, max_parallel, n_jobs):
    d = tmp_path / "probe"
    launch([f"JOB=1:{n_jobs}", f"{tmp_path}/log/c.JOB.log", _concurrency_probe(d, n_jobs, max_parallel)],
           backend="slurm", max_parallel=max_parallel)
    seen = [int((d / f"max.{i}").read_text()) for i in range(1, n_jobs + 1)]
    assert max(seen) == max_parallel, seen
    assert len(list((d / "done").iterdir())) == n_jobs


@pytest.mark.slurm
def test_sbatch_refusal_is_one_clear_error(tmp_path, slurm):
    slurm.write_text("partition: no_such_partition\n")
    proc = run_script([LAUNCH, "--backend", "slurm", f"{tmp_path}/x.log", "true"], check=False)
    assert proc.returncode == 1
    assert "sbatch refused" in proc.stderr and "--partition=no_such_partition" in proc.stderr
    assert str(slurm) in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slurm
def test_a_long_pending_array_is_reported_and_cancelled(tmp_path, slurm, capsys):
    from dmha.launch.slurm import SlurmBackend

    backend = SlurmBackend(resources=Resources(sbatch_args=("--begin=now+1hour",)))
    backend.submit(make_jobs(parse_job_spec("JOB=1:2"), f"{tmp_path}/p.JOB.log", ["true"]))
    try:
        want = f"Slurm job {backend.job_id} is still pending (reason: BeginTime)"
        err, deadline = "", time.monotonic() + 30
        while want not in err and time.monotonic() < deadline:  # the reason is set by the scheduler
            backend._next_note = 0.0  # as if PENDING_NOTE_S had passed
            assert backend._in_queue() == (True, None)
            err += capsys.readouterr().err
            time.sleep(0.5)
        assert want in err
    finally:
        backend.cancel()
    assert _squeue(backend.job_id).strip() == ""
    assert not (tmp_path / "p.1.log").exists()  # never ran


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slurm
def test_ctrl_c_cancels_the_array(tmp_path, slurm):
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    launcher = subprocess.Popen([sys.executable, "-m", "dmha.bin.launch", "--backend", "slurm", "JOB=1:2",
                                 f"{tmp_path}/k.JOB.log", f"sleep 300 & echo $! > {tmp_path}/pid.JOB; wait"],
                                env=env, stderr=subprocess.PIPE, text=True,
                                preexec_fn=sigint_default)
    try:
        files = [tmp_path / "pid.1", tmp_path / "pid.2"]
        deadline = time.monotonic() + 60
        while not all(f.is_file() and f.read_text().strip() for f in files):
            assert time.monotonic() < deadline and launcher.poll() is None, "jobs did not start"
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in files]
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=240)
        assert launcher.returncode == 130, err
        job_id = err.split("Slurm job ")[1].split()[0]
        assert _squeue(job_id).strip() == ""  # the launcher waited until the array left the queue
        deadline = time.monotonic() + 60  # same machine here: the jobs' processes are gone too
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if launcher.poll() is None:
            launcher.kill()


# ---------------------------------------------------------------- training through srun

def _train_lists(tmp_path: Path, **train) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from train_fixtures import make_corpus, tiny_config

    train_dir, val_dir = make_corpus(tmp_path)
    conf = tiny_config(tmp_path / "conf.yaml", **train)
    lists = tmp_path / "lists"
    run_script([sys.executable, "-m", "dmha.bin.prepare_lists", "--config", str(conf), str(train_dir),
                str(val_dir), str(lists)])
    return conf, lists


@pytest.mark.slurm
@pytest.mark.slow
def test_two_torchrun_agents_under_srun_rendezvous_and_keep_ranks_identical(tmp_path, slurm):
    # Two Slurm tasks (on a real cluster: two nodes) each start one torchrun agent; they meet in the
    # c10d rendezvous on the job's first node and train as ranks 0 and 1 (gloo, CPU).
    conf, lists = _train_lists(tmp_path, max_epochs=2)
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    proc = run_script([LAUNCH, "--backend", "slurm", "--sbatch-opts", "--ntasks-per-node=2",
                       f"{tmp_path}/log/ddp.log", str(REPO / "steps" / "slurm_train.sh"), "--nproc", "1",
                       str(REPO / "tests" / "ddp_train_worker.py"), str(conf), str(lists),
                       str(tmp_path / "exp"), str(hashes)],
                      env={"OMP_NUM_THREADS": "1"}, check=False, timeout=300)
    log = (tmp_path / "log" / "ddp.log").read_text()
    h0 = (hashes / "hash.0").read_text().split()
    h1 = (hashes / "hash.1").read_text().split()
    assert h0 == h1, (h0, h1, log[-3000:])
    assert h0[1] == "6"  # 48 utterances // batch 16 = 3 steps x 2 epochs
    assert proc.returncode == 0, proc.stderr[-2000:] + log[-3000:]
    assert "2 agent(s) x 1 rank(s), rendezvous" in log
    assert "x 2 processes" in (tmp_path / "exp" / "train.log").read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_train_sh_cmd_slurm_trains_with_two_ranks_and_resumes_done(tmp_path, slurm, repo):
    from dmha.training.checkpoint import load_checkpoint

    conf, lists = _train_lists(tmp_path, max_epochs=1)
    exp = tmp_path / "exp"
    cmd = ["bash", str(repo / "steps" / "train.sh"), "--cmd", "slurm", "--nproc", "2", "--device", "cpu",
           "--config", str(conf), str(lists), str(exp)]
    first = run_script(cmd, env={"OMP_NUM_THREADS": "1"}, check=False, timeout=300)
    job_log = (exp / "log" / "train.log").read_text()
    assert first.returncode == 0, first.stderr[-2000:] + job_log[-3000:]
    assert "Slurm job" in first.stderr and "1 agent(s) x 2 rank(s)" in job_log
    ckpt = load_checkpoint(exp / "ckpt.pt")
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["finished"]
    assert "x 2 processes" in (exp / "train.log").read_text()
    again = run_script(cmd, env={"OMP_NUM_THREADS": "1"}, check=False, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished" in (exp / "train.log").read_text()


# ---------------------------------------------------------------- stages through Slurm

def _scp_arrays(scp: Path) -> dict:
    import kaldiio
    import numpy as np

    return {k: np.array(v) for k, v in kaldiio.load_scp(str(scp)).items()}


def _assert_same_tables(a: Path, b: Path) -> None:
    import numpy as np

    ta, tb = _scp_arrays(a), _scp_arrays(b)
    assert sorted(ta) == sorted(tb) and ta
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), k


@pytest.mark.slurm
@pytest.mark.slow
def test_make_fbank_through_slurm_equals_local(tmp_path, slurm):
    from extract_fixtures import make_wav_data_dir

    src = make_wav_data_dir(tmp_path / "src", n_spk=2, n_utt=2, lengths=(0.3, 0.8))
    dirs = {}
    for backend in ("local", "slurm"):
        d = tmp_path / backend / "d"
        d.mkdir(parents=True)
        for f in ("wav.scp", "utt2spk", "spk2utt"):
            (d / f).write_text((src / f).read_text())
        run_script(["steps/make_fbank.sh", "--nj", "2", "--cmd", backend, str(d)], timeout=300)
        dirs[backend] = d
    _assert_same_tables(dirs["local"] / "feats.scp", dirs["slurm"] / "feats.scp")
    assert (dirs["local"] / "utt2num_frames").read_text() == (dirs["slurm"] / "utt2num_frames").read_text()
    for i in (1, 2):  # per-job logs where the local backend writes them, and Slurm's task files beside
        log = (dirs["slurm"] / "log" / f"make_fbank_d.{i}.log").read_text().splitlines()
        assert log[1].startswith("# Started at ") and "Slurm" in log[1]
        assert log[-1].startswith("# Ended (code 0)")
        assert (dirs["slurm"] / "log" / "q" / f"make_fbank_d.{i}.status").read_text().strip() == "0"


@pytest.fixture
def tiny_exp_and_feats(tmp_path):
    import torch
    from extract_fixtures import make_feats_data_dir, make_tiny_exp

    torch.set_num_threads(1)
    return make_tiny_exp(tmp_path / "exp"), make_feats_data_dir(tmp_path / "data", [37, 120, 64, 18, 97, 155])


@pytest.mark.slurm
@pytest.mark.slow
def test_extract_embeddings_through_slurm_equals_local(tmp_path, slurm, tiny_exp_and_feats):
    exp, data = tiny_exp_and_feats
    for backend in ("local", "slurm"):
        run_script(["steps/extract_embeddings.sh", "--nj", "2", "--cmd", backend, "--device", "cpu", str(exp),
                    str(data), str(tmp_path / f"emb_{backend}")], timeout=300)
    for name in ("xvector.scp", "spk_xvector.scp"):
        _assert_same_tables(tmp_path / "emb_local" / name, tmp_path / "emb_slurm" / name)
    assert (tmp_path / "emb_slurm" / "log" / "q" / "extract.2.status").is_file()


@pytest.mark.slurm
@pytest.mark.slow
def test_a_failing_slurm_job_fails_the_stage_naming_its_log(tmp_path, slurm, tiny_exp_and_feats):
    import re

    exp, data = tiny_exp_and_feats
    lines = (data / "feats.scp").read_text().splitlines()
    bad_utt = lines[4].split()[0]  # in the second job of two (per-utterance split)
    lines[4] = f"{bad_utt} {tmp_path}/missing.ark:12"
    (data / "feats.scp").write_text("\n".join(lines) + "\n")
    emb = tmp_path / "emb"
    out = run_script(["steps/extract_embeddings.sh", "--nj", "2", "--cmd", "slurm", "--device", "cpu",
                      str(exp), str(data), str(emb)], check=False, timeout=300)
    assert out.returncode != 0
    m = re.search(r"1 of 2 jobs failed: job 2 \(exit \d+\): see (\S+)", out.stderr)
    assert m, out.stderr[-2000:]
    assert m.group(1) == f"{emb}/log/extract.2.log"
    log = Path(m.group(1)).read_text()
    assert bad_utt in log and log.splitlines()[-1].startswith("# Ended (code ")
    assert not (emb / "xvector.scp").exists()
