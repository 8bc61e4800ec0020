"""A fake VoxCeleb tree in the official layout (tiny: a few speakers, 1-2 s files) for the recipe tests.

VoxCeleb2 files are real AAC .m4a made by ffmpeg (one ffmpeg call for all of them, to stay fast);
VoxCeleb1 files are 16 kHz wav. Each speaker gets its own tone frequency plus noise, so the audio is
distinguishable; video ids contain '-' and '_' as real YouTube ids do.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
VOX2_SPK = ["id00012", "id00015", "id00017", "id00019", "id00020", "id00021"]
VOX1_DEV_SPK = ["id10001", "id10002", "id10003"]
VOX1_TEST_SPK = ["id10270", "id10271", "id10272"]
VIDEOS = ["x6u-Yqm_x31", "8jEAjG6SegY"]
SEGS = ["00001", "00002"]

#: An utterance the lists name but the tree lacks (a "failed download").
MISSING = "id10272/8jEAjG6SegY/00009.wav"


def tone(spk_index: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120.0 + 35.0 * spk_index
    x = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(2 * np.pi * 2.7 * f0 * t)
         + 0.05 * rng.standard_normal(len(t)))
    return x.astype(np.float32)


@dataclass
class FakeVox:
    vox1: Path
    vox2: Path
    lists: dict[str, list[str]] = field(default_factory=dict)  # list file name -> lines

    def vox1_relpaths(self) -> list[str]:
        return sorted(str(p.relative_to(p.parents[2])) for p in self.vox1.rglob("*.wav"))


def _trial_lines(rel: list[str], n: int, seed: int) -> list[str]:
    """``n`` official-format lines over ``rel`` (half target), deterministic."""
    rng = np.random.default_rng(seed)
    lines: set[str] = set()
    while len(lines) < n:
        a, b = rng.choice(len(rel), 2, replace=False)
        lines.add(f"{int(rel[a].split('/')[0] == rel[b].split('/')[0])} {rel[a]} {rel[b]}")
    return sorted(lines)


def make_fake_voxceleb(root: Path, *, m4a: bool = True, merged_vox1: bool = False,
                       secs: float = 1.2) -> FakeVox:
    """Write the tree under ``root``; m4a=False writes VoxCeleb2 as converted wav (dev/wav)."""
    vox1, vox2 = root / "voxceleb1", root / "voxceleb2"
    k = 0
    for part, spks in (("dev", VOX1_DEV_SPK), ("test", VOX1_TEST_SPK)):
        base = vox1 / "wav" if merged_vox1 else vox1 / part / "wav"
        for si, spk in enumerate(spks):
            for v in VIDEOS:
                for s in SEGS:
                    p = base / spk / v / f"{s}.wav"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    sf.write(p, tone(si + (10 if part == "test" else 0), secs + 0.1 * (k % 3), k), SR,
                             subtype="PCM_16")
                    k += 1
    jobs: list[tuple[Path, Path]] = []
    tmp = root / "vox2_src"
    for si, spk in enumerate(VOX2_SPK):
        for v in VIDEOS:
            for s in SEGS:
                src = tmp / f"{spk}_{v}_{s}.wav"
                src.parent.mkdir(parents=True, exist_ok=True)
                sf.write(src, tone(20 + si, secs, k), SR, subtype="PCM_16")
                k += 1
                ext = "m4a" if m4a else "wav"
                sub = "aac" if m4a else "wav"
                dest = vox2 / "dev" / sub / spk / v / f"{s}.{ext}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                jobs.append((src, dest))
    if m4a:
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
        for src, _ in jobs:
            cmd += ["-i", str(src)]
        for i, (_, dest) in enumerate(jobs):
            cmd += ["-map", f"{i}:a", "-c:a", "aac", "-b:a", "64k", str(dest)]
        subprocess.run(cmd, check=True)
    else:
        for src, dest in jobs:
            shutil.copy(src, dest)
    shutil.rmtree(tmp)

    fv = FakeVox(vox1, vox2)
    rel_all = fv.vox1_relpaths()
    rel_test = [r for r in rel_all if r.split("/")[0] in VOX1_TEST_SPK]
    o = _trial_lines(rel_test, 20, 1)
    o.append(f"1 {VOX1_TEST_SPK[2]}/{VIDEOS[0]}/{SEGS[0]}.wav {MISSING}")  # one missing utterance
    fv.lists = {
        "veri_test2.txt": o,
        "veri_test.txt": o + _trial_lines(rel_test, 22, 2)[:2],
        "list_test_all.txt": _trial_lines(rel_all, 60, 3),
        "list_test_all2.txt": _trial_lines(rel_all, 58, 3),
        "list_test_hard.txt": _trial_lines(rel_all, 40, 4),
        "list_test_hard2.txt": _trial_lines(rel_all, 39, 4),
    }
    for name, lines in fv.lists.items():
        (vox1 / name).write_text("\n".join(lines) + "\n")
    return fv
