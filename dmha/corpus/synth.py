"""Drive espeak-ng + MBROLA from a project-local tree, without installing anything system-wide.

espeak-ng looks for an MBROLA database ``<db>`` at ``<data-home>/espeak-ng-data/mbrola/<db>``, where
``<data-home>`` comes from the ``ESPEAK_DATA_PATH`` environment variable, and runs the ``mbrola``
program found on ``PATH``. So we build a private ``espeak-ng-data`` folder: symbolic links to every
entry of the real espeak-ng data (the system's, or the one unpacked from Debian's ``espeak-ng-data``) plus
an ``mbrola/`` folder linking the databases unpacked from the ``mbrola-<db>`` packages. A system
espeak-ng is used when present (with its own data); otherwise the unpacked one runs with
``LD_LIBRARY_PATH`` pointing at the unpacked libraries.

MBROLA voices are synthesised in two steps, ``espeak-ng --pho`` (phonemes, durations, pitch) and then
``mbrola`` on that file, not through espeak-ng's own pipe to mbrola: through the pipe some voices give a
different waveform at every call (nz1 on one English sentence: 3 lengths in 5 calls; two builds of the
mini corpus differed in 219 of 2,740 training utterances), while the two steps are bit-identical.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from dmha.common.errors import UserError

SAMPLE_RATE = 16000


@dataclass
class Espeak:
    """How to run espeak-ng with the private MBROLA voices."""

    binary: str
    env: dict[str, str] = field(default_factory=dict)
    mbrola: str = ""   # the mbrola program: "mb-<db>" voices are run in two steps (module docstring)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, amplitude: int = 100,
                   tmpdir: str | None = None) -> tuple[np.ndarray, int]:
        """Synthesize ``text``; returns (float32 mono waveform, sample rate). Empty output is an error."""
        if voice.startswith("mb-") and self.mbrola:
            return self._synthesize_mbrola(text, voice, rate, pitch, amplitude, tmpdir)
        with tempfile.TemporaryDirectory(dir=tmpdir) as work:
            out = Path(work) / "out.wav"
            cmd = [self.binary, "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)),
                   "-a", str(int(amplitude)), "-w", str(out), "--", text]
            return run_to_wav(cmd, out, self.env, f"espeak-ng -v {voice} failed")


    def _synthesize_mbrola(self, text: str, voice: str, rate: int, pitch: int, amplitude: int,
                           tmpdir: str | None) -> tuple[np.ndarray, int]:
        """espeak-ng writes the phoneme file, mbrola renders it (deterministic, unlike the pipe)."""
        cmd = [self.binary, "-q", "--pho", "-v", voice, "-s", str(int(rate)), "-p", str(int(pitch)),
               "--", text]
        pho = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if pho.returncode != 0 or not pho.stdout.strip():
            raise RuntimeError(f"espeak-ng --pho -v {voice} failed (rc {pho.returncode}): "
                               f"{pho.stderr.strip()[:300]}")
        db = voice.split("-")[1]
        db_path = Path(self.env["ESPEAK_DATA_PATH"]) / "espeak-ng-data" / "mbrola" / db
        with tempfile.TemporaryDirectory(dir=tmpdir) as work:
            pho_file, wav_file = Path(work) / "in.pho", Path(work) / "out.wav"
            pho_file.write_text(pho.stdout)
            # -e: skip unknown diphones, as espeak-ng's own mbrola driver does. Volume: mbrola's ratio
            # amplitude/60 gives espeak-ng's level for -a within 3% (us1: RMS 0.078 vs 0.080 at -a 60).
            cmd = [self.mbrola, "-e", "-v", f"{amplitude / 60:.4f}", str(db_path), str(pho_file),
                   str(wav_file)]
            return run_to_wav(cmd, wav_file, self.env, f"mbrola {db} (voice {voice}) failed")


def run_to_wav(cmd: list[str], wav_file: Path, env: dict[str, str], failure: str,
               text_input: str | None = None, cwd: str | Path | None = None) -> tuple[np.ndarray, int]:
    """Run a synthesizer that writes ``wav_file``; returns (float32 mono waveform, sample rate).

    Synthesizers exit 0 even when they could not write (RHVoice), so a missing file or one holding
    only a header is an error too: RuntimeError ``"<failure> (rc N): <end of stderr, else of stdout>"``
    (Festival reports its errors on stdout), which the corpus builder logs and skips that utterance on.
    """
    proc = subprocess.run(cmd, input=text_input, env=env, capture_output=True, text=True, errors="replace",
                          cwd=cwd)
    if proc.returncode != 0 or not wav_file.is_file() or wav_file.stat().st_size <= 44:
        said = proc.stderr.strip() or proc.stdout.strip()
        raise RuntimeError(f"{failure} (rc {proc.returncode}): {said[-300:]}")
    wave, sr = sf.read(wav_file, dtype="float32", always_2d=False)
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    return wave, sr

def with_tree_libraries(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``env`` with the library folders of a tree unpacked by ``local/fetch_debs.sh`` first on
    ``LD_LIBRARY_PATH``, so that the programs fetched into it run without being installed."""
    old = [env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []
    return dict(env, LD_LIBRARY_PATH=":".join(_multiarch_lib_dirs(tree) + old))


def tree_program(tree: Path, name: str, packages: str) -> str:
    """The program ``name`` unpacked in ``tree`` (``usr/bin``), else the system's; a UserError saying how
    to fetch ``packages`` when neither exists."""
    local = tree / "usr/bin" / name
    if os.access(local, os.X_OK):
        return str(local)
    system = shutil.which(name)
    if system:
        return system
    raise UserError(f"{name} not found in {tree}/usr/bin nor on PATH; run local/fetch_debs.sh --with-deps "
                    f"true {tree} {packages} (needs Debian's apt)")


def _multiarch_lib_dirs(root: Path) -> list[str]:
    dirs = []
    for pattern in ("usr/lib/*-linux-gnu*", "lib/*-linux-gnu*", "usr/lib/*-linux-gnu*/pulseaudio", "usr/lib"):
        dirs += [d for d in sorted(glob.glob(str(root / pattern))) if os.path.isdir(d)]
    return dirs


def _system_data_dir(binary: str) -> Path | None:
    """Data folder of a system espeak-ng, from ``espeak-ng --version`` ("... Data at: <dir>")."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Data at:\s*(\S+)", out)
    return Path(m.group(1)) if m else None


def setup_espeak(tools_dir: str | Path, mbrola_dir: str | Path, home: str | Path,
                 dbs: list[str]) -> Espeak:
    """Build the private espeak-ng data home at ``home`` and return an :class:`Espeak` runner.

    ``tools_dir``: where ``local/fetch_debs.sh`` unpacked espeak-ng/mbrola (used for whatever is not on
    PATH); ``mbrola_dir``: where the ``mbrola-<db>`` packages were unpacked; ``dbs``: the databases to link.
    """
    tools_dir, mbrola_dir, home = Path(tools_dir).resolve(), Path(mbrola_dir).resolve(), Path(home).resolve()
    env = dict(os.environ)
    path = env.get("PATH", "")
    system_espeak = shutil.which("espeak-ng")
    if system_espeak:
        binary = system_espeak
        data_dir = _system_data_dir(binary)
    else:
        binary = str(tools_dir / "usr/bin/espeak-ng")
        found = sorted(glob.glob(str(tools_dir / "usr/lib/*/espeak-ng-data")))
        data_dir = Path(found[0]) if found else None
        env = with_tree_libraries(env, tools_dir)
    if not os.access(binary, os.X_OK):
        raise UserError(f"espeak-ng not found on PATH nor in {tools_dir}; run local/fetch_debs.sh "
                        f"--with-deps true {tools_dir} espeak-ng mbrola (needs Debian's apt) "
                        "or install espeak-ng")
    if data_dir is None or not (data_dir / "phontab").is_file():
        raise UserError(f"espeak-ng data folder not found for {binary} (looked for phontab); "
                        "reinstall espeak-ng-data")
    if not shutil.which("mbrola"):
        if not os.access(tools_dir / "usr/bin/mbrola", os.X_OK):
            raise UserError(f"mbrola not found on PATH nor in {tools_dir}; run local/fetch_debs.sh "
                            f"--with-deps true {tools_dir} mbrola (needs Debian's apt)")
        path = f"{tools_dir / 'usr/bin'}:{path}"
    env["PATH"] = path

    # Private data home: links to the real data + mbrola/<db> links; rebuilt each time (cheap).
    data_home = home / "espeak-ng-data"
    if data_home.exists():
        shutil.rmtree(data_home)
    (data_home / "mbrola").mkdir(parents=True)
    for entry in sorted(data_dir.iterdir()):
        if entry.name != "mbrola":
            (data_home / entry.name).symlink_to(entry)
    for db in dbs:
        src = mbrola_dir / "usr/share/mbrola" / db / db
        if not src.is_file():
            raise UserError(f"MBROLA database {src} missing; "
                            f"run local/fetch_debs.sh {mbrola_dir} mbrola-{db}")
        (data_home / "mbrola" / db).symlink_to(src)
    env["ESPEAK_DATA_PATH"] = str(home)
    return Espeak(binary, env, mbrola=shutil.which("mbrola", path=path) or "")


def to_16k(wave: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz with a polyphase filter (22.05 kHz voices, 8 kHz prompts)."""
    if sr == SAMPLE_RATE:
        return wave.astype(np.float32)
    g = gcd(SAMPLE_RATE, int(sr))
    return resample_poly(wave, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)


def trim_silence(wave: np.ndarray, sr: int, threshold: float = 1e-3, margin_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing near-silence, keeping ``margin_s`` of it on each side."""
    active = np.flatnonzero(np.abs(wave) > threshold)
    if len(active) == 0:
        return wave[:0]
    m = int(margin_s * sr)
    return wave[max(0, active[0] - m):min(len(wave), active[-1] + m + 1)]
