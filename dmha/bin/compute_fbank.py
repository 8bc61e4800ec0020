"""One feature job of stage 1: log-mel features of every utterance of a wav.scp into an ark/scp pair.

  python -m dmha.bin.compute_fbank [--config YAML] [--device cpu] <wav.scp> <out.ark> <out.scp>

Utterances with bad audio (missing/empty/undecodable file, failing pipe, NaN/Inf samples, shorter
than one frame) are skipped and listed in the --bad-utts file as `utt reason`; stereo is mixed down
and other sample rates are resampled (listed in --notes). The ark and scp are written under temporary
names; the ark is renamed into place and the scp written last, so an existing <out.scp> always means a
finished job. Before the scp, the job writes the ark's CMN side table (<out>.cmn.npy, see
dmha.features.cmn_table) so that training can read only each crop's rows. A job whose outputs are
already complete for this wav.scp is skipped (resume after a kill). A lock on <out.scp>.lock stops
two jobs (e.g. an orphan of a killed run) writing the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.common.errors import UserError

log = logging.getLogger("compute_fbank")


@contextlib.contextmanager
def _job_lock(path: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock released automatically when the process dies."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another job is writing {path.with_suffix('')} (lock {path}); wait for it to "
                            "finish or kill it, then rerun") from None
        yield
    finally:
        os.close(fd)


def _clean(line: str) -> str:
    return " ".join(line.split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="compute_fbank", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML with the feature settings (features: section); default: paper's")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    p.add_argument("--num-threads", type=int, default=1,
                   help="torch threads (default 1: parallelism comes from the number of jobs)")
    p.add_argument("--storage", default="float32",
                   help="float32 (default), cm2 (Kaldi 2-byte compression: half the disk) or cm3 (1 byte)")
    p.add_argument("--bad-utts", required=True, help="output: `utt reason` lines of unusable utterances")
    p.add_argument("--notes", required=True, help="output: `utt note` lines (mixed down, resampled)")
    p.add_argument("--utt2num-frames", required=True, help="output: `utt frames` lines")
    p.add_argument("wav_scp")
    p.add_argument("ark")
    p.add_argument("scp")
    a = p.parse_args(argv)

    import kaldiio
    import torch
    from tqdm import tqdm

    from dmha.common.device import resolve_device
    from dmha.common.fileio import read_kv, write_kv
    from dmha.features.audio import AudioError, load_audio
    from dmha.features.cmn_table import table_path, write_table
    from dmha.features.fbank import compute_fbank, utterance_mean
    from dmha.features.stage import STORAGES, JobFiles, check_storage, job_is_complete, load_fbank_config

    torch.set_num_threads(max(1, a.num_threads))
    cfg = load_fbank_config(a.config)
    compression = STORAGES[check_storage(a.storage)]
    device = resolve_device(a.device)
    files = JobFiles(Path(os.path.abspath(a.ark)), Path(os.path.abspath(a.scp)), Path(a.bad_utts),
                     Path(a.notes), Path(a.utt2num_frames))
    files.scp.parent.mkdir(parents=True, exist_ok=True)
    wavs = read_kv(a.wav_scp)

    with _job_lock(Path(f"{files.scp}.lock")):
        if job_is_complete(files, a.wav_scp):
            log.info("%s is complete for %s; skipping this job", files.scp, a.wav_scp)
            return 0
        files.scp.unlink(missing_ok=True)  # from now on this job is "not finished"
        # A job killed while atomic_open wrote one of its files leaves that file's temporary copy
        # (.<name>.XXXX.tmp); under the job lock nobody else writes them, so the rerun removes them.
        for out in (table_path(files.ark), files.bad, files.notes, files.frames, files.scp):
            for stale in out.parent.glob(f".{out.name}.*.tmp"):
                stale.unlink(missing_ok=True)
        ark_tmp = Path(f"{files.ark}.tmp")
        scp_tmp = Path(f"{files.scp}.tmp")
        bad: dict[str, str] = {}
        notes: dict[str, str] = {}
        frames: dict[str, int] = {}
        means = {}
        log.info("%d utterances from %s -> %s (device %s)", len(wavs), a.wav_scp, files.ark, device)
        with kaldiio.WriteHelper(f"ark,scp:{ark_tmp},{scp_tmp}", compression_method=compression) as writer:
            for utt, entry in tqdm(wavs.items(), total=len(wavs), desc=files.scp.name, file=sys.stderr,
                                   mininterval=10.0, ascii=True):
                utt_notes: list[str] = []
                try:
                    wave, _ = load_audio(entry, cfg.sample_rate, name=utt, notes=utt_notes)
                    feats = compute_fbank(torch.from_numpy(wave), cfg, device=device)
                except AudioError as e:
                    bad[utt] = _clean(str(e))
                except UserError as e:  # e.g. shorter than one frame
                    bad[utt] = _clean(str(e))
                else:
                    stored = feats.cpu().numpy()
                    writer(utt, stored)
                    frames[utt] = feats.shape[0]
                    means[utt] = utterance_mean(stored)
                if utt in bad:
                    log.warning("bad audio: %s %s", utt, bad[utt])
                if utt_notes:
                    notes[utt] = _clean("; ".join(utt_notes))
        write_kv(files.bad, bad)
        write_kv(files.notes, notes)
        write_kv(files.frames, frames)
        # Point the scp at the final ark name, move the ark into place, then publish the scp.
        lines = []
        with open(scp_tmp, encoding="utf-8") as f:
            for line in f:
                utt, loc = line.rstrip("\n").split(" ", 1)
                lines.append((utt, f"{files.ark}:{loc.rsplit(':', 1)[1]}"))
        os.replace(ark_tmp, files.ark)
        # Compressed storage: the means must be those of the values as read back (write_table reads them).
        write_table(files.ark, [(utt, int(loc.rsplit(":", 1)[1])) for utt, loc in lines],
                    means if compression is None else None)
        write_kv(files.scp, lines)
        scp_tmp.unlink()
    log.info("done: %d utterances written, %d bad, %d fixed (mixed down/resampled)",
             len(frames), len(bad), len(notes))
    return 0


if __name__ == "__main__":
    run_main(main)
