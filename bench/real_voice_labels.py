"""Check the speaker labels of the real-speech sources with a peer encoder we did not train (Resemblyzer).

Why: labels taken from folders, file prefixes and credits are leads. A wrong label (two people under
one id, or one person under two ids) teaches the model the wrong thing and corrupts trials, so every
raw label is embedded (up to --per-label clips of >= 1 s, a seeded choice) and compared:
  within  = mean cosine of a clip to its label's centroid computed without it (leave one out),
  nearest = the label whose centroid is most similar, and that centroid cosine.
A label whose clips sit no closer to their own centroid than to another label's is not one voice;
two labels with centroid cosine near the within-label level are candidates for one person.
The peer's embeddings are never used for training.

    python bench/real_voice_labels.py downloads/real/usr/share exp/real_labels --packages all

Synthetic voices (one folder of wavs per speaker, e.g. a build's mini_audio/festival/clean) are checked the
same way against the corpus's other speakers (folders, or the utterances of Kaldi data dirs):

    python bench/real_voice_labels.py --speaker-dirs data/mini_audio/festival/clean data/mini_audio/clean \
        --data-dirs data/real_test --per-label 8 exp/festival_labels
"""

from __future__ import annotations

import argparse
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.corpus import real_sources  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("share", type=Path, nargs="?",
                   help="the unpacked usr/share folder of the fetched packages")
    p.add_argument("out_dir", type=Path, help="writes embeddings.npz and report.txt here")
    p.add_argument("--speaker-dirs", type=Path, nargs="+", default=[],
                   help="instead of packages: folders holding one sub-folder of wavs per speaker")
    p.add_argument("--data-dirs", type=Path, nargs="+", default=[],
                   help="with --speaker-dirs: Kaldi data dirs (wav.scp of files, utt2spk) whose speakers "
                        "join")
    p.add_argument("--packages", default="all", help="comma-separated packages (default all)")
    p.add_argument("--per-label", type=int, default=16, help="clips embedded per raw label (16)")
    p.add_argument("--max-sec", type=float, default=8.0, help="first seconds of a clip used (8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mapped", action="store_true",
                   help="group by the speaker ids of LABEL_MAP, not raw labels")
    return p


def cosine_report(emb: np.ndarray, labels: list[str]) -> list[str]:
    """Lines: per label n, within (leave-one-out), nearest other centroid; then the closest pairs."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    names = sorted(set(labels))
    lab = np.array(labels)
    sums = {n: x[lab == n].sum(0) for n in names}
    counts = {n: int((lab == n).sum()) for n in names}
    cent = np.stack([sums[n] / np.linalg.norm(sums[n]) for n in names])
    cc = cent @ cent.T
    from sklearn.cluster import KMeans

    lines = [f"{'label':<22} {'n':>3} {'within':>6} {'nearest':<22} {'cos':>5}  {'utt->other':>10}  "
             "2-means (sizes, centroid cos)"]
    for i, n in enumerate(names):
        idx = np.where(lab == n)[0]
        if counts[n] >= 2:
            loo = np.stack([(sums[n] - x[k]) for k in idx])
            loo /= np.linalg.norm(loo, axis=1, keepdims=True)
            within = float(np.mean(np.sum(loo * x[idx], axis=1)))
        else:
            within = float("nan")
        row = cc[i].copy()
        row[i] = -2
        j = int(np.argmax(row))
        # mean cosine of this label's clips to the nearest other centroid: compare with "within"
        other = float(np.mean(x[idx] @ cent[j]))
        # two voices under one label show as two clusters of several clips with a low centroid cosine
        two = ""
        if counts[n] >= 6:
            km = KMeans(2, n_init=10, random_state=0).fit(x[idx])
            c2 = [x[idx][km.labels_ == k].mean(0) for k in (0, 1)]
            cos2 = float(c2[0] @ c2[1] / np.linalg.norm(c2[0]) / np.linalg.norm(c2[1]))
            two = f"{np.bincount(km.labels_).tolist()} {cos2:.3f}"
        lines.append(f"{n:<22} {counts[n]:>3} {within:>6.3f} {names[j]:<22} {row[j]:>5.3f}  "
                     f"{other:>10.3f}  {two}")
    lines.append("")
    lines.append("closest centroid pairs:")
    pairs = [(cc[i, j], names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    for c, a, b in sorted(pairs, reverse=True)[:40]:
        lines.append(f"  {c:.3f}  {a} ~ {b}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder, preprocess_wav
    torch.set_num_threads(1)
    enc = VoiceEncoder("cpu", verbose=False)
    embs, labels, keys = [], [], []
    if args.speaker_dirs:
        for label, files in _speaker_files(args.speaker_dirs, args.data_dirs).items():
            rng = np.random.default_rng([args.seed, zlib.crc32(label.encode())])
            for k in rng.permutation(len(files))[:args.per_label]:
                y, sr = sf.read(files[k], dtype="float32", always_2d=False)
                embs.append(enc.embed_utterance(preprocess_wav(y[:int(args.max_sec * sr)], source_sr=sr)))
                labels.append(label)
                keys.append(files[k])
        return _write(args.out_dir, np.stack(embs), labels, keys)
    if args.share is None:
        raise SystemExit("give the unpacked usr/share folder, or --speaker-dirs")
    pkgs = list(real_sources.LISTERS) if args.packages == "all" else args.packages.split(",")
    clips = real_sources.list_clips(args.share, pkgs)
    for raw, group in real_sources.iter_labels(clips):
        label_of = real_sources.LABEL_MAP.get(raw, raw) if args.mapped else raw
        if label_of is None:
            continue
        rng = np.random.default_rng([args.seed, zlib.crc32(raw.encode())])
        order = rng.permutation(len(group))
        got = 0
        for k in order:
            if got >= args.per_label:
                break
            y = real_sources.read_clip(args.share, group[k])
            if len(y) < 16000:
                continue
            y = y[:int(args.max_sec * 16000)]
            w = preprocess_wav(y, source_sr=16000)
            if len(w) < 8000:
                continue
            embs.append(enc.embed_utterance(w))
            labels.append(label_of)
            keys.append(group[k].path)
            got += 1
        print(f"{raw}: {got} clips of {len(group)}", file=sys.stderr, flush=True)
    return _write(args.out_dir, np.stack(embs), labels, keys)


def _speaker_files(speaker_dirs: list[Path], data_dirs: list[Path]) -> dict[str, list[str]]:
    """Speaker -> sorted wav paths, from per-speaker folders and from Kaldi data dirs."""
    out: dict[str, list[str]] = {}
    for root in speaker_dirs:
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            out.setdefault(d.name, []).extend(sorted(str(f) for f in d.glob("*.wav")))
    for d in data_dirs:
        utt2spk = dict(line.split(maxsplit=1) for line in (d / "utt2spk").read_text().splitlines())
        for line in sorted((d / "wav.scp").read_text().splitlines()):
            utt, path = line.split(maxsplit=1)
            out.setdefault(utt2spk[utt].strip(), []).append(path.strip())
    return {k: v for k, v in out.items() if v}


def _write(out_dir: Path, emb: np.ndarray, labels: list[str], keys: list[str]) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "embeddings.npz", emb=emb, labels=np.array(labels), keys=np.array(keys))
    lines = cosine_report(emb, labels)
    (out_dir / "report.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
