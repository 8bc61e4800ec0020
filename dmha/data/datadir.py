"""Kaldi data directories: load, validate, fix, subset, split and combine.

A data dir ``data/<set>/`` holds one-line-per-utterance files (``utt2spk``, ``wav.scp``, and once
features exist ``feats.scp`` / ``utt2num_frames``), the derived ``spk2utt``, and optionally ``trials``
and ``bad_utts`` (``utt reason...`` lines written by the feature stage for utterances it could not
process). Every stage reads and writes these files only, so every stage must leave a dir that
:func:`validate_data_dir` accepts: keys unique and sorted in C (byte) order, the same utterance set in
every per-utterance file, ``spk2utt`` equal to what ``utt2spk`` implies.

Behaviour of the optional files:

* ``trials`` is checked by validation (every trial utterance in ``utt2spk``, labels valid). ``fix``
  never edits it (a trial list is an evaluation protocol, not ours to rewrite) but reports how many
  trials name utterances the fixed dir no longer has. subset/split/combine do not copy it.
* ``bad_utts`` is checked for format only by validation. ``fix`` drops the utterances it lists (that is
  what the feature stage wants after some utterances failed) and keeps the file as the record of why.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open, read_kv, write_kv

log = logging.getLogger(__name__)

#: Files with exactly one line per utterance; subset/split/combine/fix carry whichever are present.
PER_UTT_FILES = ("utt2spk", "wav.scp", "feats.scp", "utt2num_frames", "utt2dur")
#: Stage 1's record of the settings feats.scp was computed with (dmha.features.stage writes and checks it).
FEATURE_SETTINGS = "fbank.yaml"
#: Per-utterance files whose value must be a positive integer / positive number.
_POSITIVE_INT_FILES = ("utt2num_frames",)
_POSITIVE_FLOAT_FILES = ("utt2dur",)
_TRIAL_LABELS = ("target", "nontarget", "1", "0")


def c_sort_key(key: str) -> bytes:
    """Sort key of the C locale (byte order): what ``LC_ALL=C sort`` and Kaldi expect."""
    return key.encode("utf-8")


# --------------------------------------------------------------------------------------------------
# loading


@dataclass
class DataDir:
    """A loaded data dir: per-utterance maps keyed by utterance id (``files['utt2spk']`` always set)."""

    path: Path
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def utt2spk(self) -> dict[str, str]:
        return self.files["utt2spk"]

    @property
    def utts(self) -> list[str]:
        """Utterance ids in C order."""
        return sorted(self.utt2spk, key=c_sort_key)

    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker -> utterances, both in C order (derived from ``utt2spk``)."""
        return utt2spk_to_spk2utt((u, self.utt2spk[u]) for u in self.utts)

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()), key=c_sort_key)


def load_data_dir(path: PathLike) -> DataDir:
    """Load ``utt2spk`` and whichever other per-utterance files exist (strict: duplicate keys fail).

    Only structural problems that make the dir unusable raise here; for a full check use
    :func:`validate_data_dir`.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: data dir not found")
    if not (path / "utt2spk").is_file():
        raise UserError(f"{path}/utt2spk not found; is {path} a Kaldi data dir?")
    dd = DataDir(path)
    for name in PER_UTT_FILES:
        if (path / name).is_file():
            dd.files[name] = read_kv(path / name)
    for utt, spk in dd.utt2spk.items():
        if not spk or len(spk.split()) != 1:
            raise UserError(f"{path}/utt2spk: line for '{utt}' must be 'utt spk'; "
                            "run utils/validate_data_dir.sh for all problems")
    return dd


def utt2spk_to_spk2utt(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group ``(utt, spk)`` pairs by speaker, keeping first-appearance order (Kaldi's .pl does too)."""
    out: dict[str, list[str]] = {}
    for utt, spk in pairs:
        out.setdefault(spk, []).append(utt)
    return out


def spk2utt_to_utt2spk(pairs: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """Invert ``spk -> [utts]``; an utterance listed under two speakers is an error."""
    out: dict[str, str] = {}
    for spk, utts in pairs:
        for utt in utts:
            if utt in out and out[utt] != spk:
                raise UserError(f"utterance '{utt}' is listed under speakers '{out[utt]}' and '{spk}'")
            out[utt] = spk
    return out


def write_data_dir(dd: DataDir, dest: PathLike, utts: Iterable[str] | None = None) -> Path:
    """Write the per-utterance files of ``dd`` restricted to ``utts`` (default all), plus ``spk2utt``.

    Every file is written atomically and sorted; ``spk2utt`` is regenerated so it always agrees.
    """
    dest = Path(dest)
    keep = dd.utts if utts is None else sorted(set(utts), key=c_sort_key)
    if not keep:
        raise UserError(f"{dest}: refusing to write an empty data dir (no utterances selected)")
    dest.mkdir(parents=True, exist_ok=True)
    for name, mapping in dd.files.items():
        write_kv(dest / name, ((u, mapping[u]) for u in keep))
    write_kv(dest / "spk2utt", utt2spk_to_spk2utt((u, dd.utt2spk[u]) for u in keep))
    # A per-utterance file that the source lacks must not linger from an earlier, different dir.
    for name in PER_UTT_FILES:
        if name not in dd.files and (dest / name).exists():
            (dest / name).unlink()
    return dest


# --------------------------------------------------------------------------------------------------
# validation


@dataclass
class _Line:
    lineno: int
    key: str
    rest: str


def _read_lines(path: Path) -> list[_Line]:
    """Read ``key rest`` lines tolerantly (duplicates, missing values kept) so validation sees all."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            out.append(_Line(lineno, parts[0], parts[1] if len(parts) > 1 else ""))
    return out


class _Problems:
    """Collects problem messages, capping each (file, kind) so a huge dir stays readable."""

    def __init__(self, max_per_kind: int):
        self.max_per_kind = max_per_kind
        self.messages: list[str] = []
        self._counts: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, fname: str, kind: str, msg: str) -> None:
        self._counts[(fname, kind)] += 1
        if self.max_per_kind <= 0 or self._counts[(fname, kind)] <= self.max_per_kind:
            self.messages.append(msg)

    def finish(self) -> list[str]:
        out = list(self.messages)
        for (fname, kind), n in self._counts.items():
            if 0 < self.max_per_kind < n:
                out.append(f"{fname}: ... and {n - self.max_per_kind} more problems of this kind ({kind})")
        return out


def _check_file_keys(path: Path, lines: list[_Line], probs: _Problems, *,
                     ncols: int | None) -> dict[str, str]:
    """Check sortedness, uniqueness and column count; return the first value seen for each key."""
    seen: dict[str, int] = {}
    values: dict[str, str] = {}
    prev: str | None = None
    for ln in lines:
        where = f"{path}:{ln.lineno}"
        if ln.key in seen:
            probs.add(path.name, "dup", f"{where}: duplicate key '{ln.key}' (first on line {seen[ln.key]})")
        else:
            seen[ln.key] = ln.lineno
            values[ln.key] = ln.rest
        if prev is not None and c_sort_key(ln.key) < c_sort_key(prev):
            probs.add(path.name, "sort", f"{where}: key '{ln.key}' comes after '{prev}'; "
                                         "file is not sorted in C (byte) order")
        prev = ln.key
        if not ln.rest:
            probs.add(path.name, "cols", f"{where}: key '{ln.key}' has no value")
        elif ncols is not None and len(ln.rest.split()) != ncols - 1:
            probs.add(path.name, "cols", f"{where}: expected {ncols} fields, got {1 + len(ln.rest.split())}")
    return values


def _check_same_keys(ref_name: str, ref: dict, path: Path, other: dict, probs: _Problems,
                     bad: dict[str, str]) -> None:
    for utt in ref:
        if utt not in other:
            hint = f" (listed in bad_utts: {bad[utt]})" if utt in bad else ""
            probs.add(path.name, "missing", f"{path}: utterance '{utt}' of {ref_name} is missing{hint}")
    for utt in other:
        if utt not in ref:
            probs.add(path.name, "extra", f"{path}: utterance '{utt}' is not in {ref_name}")


def validate_data_dir(path: PathLike, *, check_wav: bool = True, check_feats: bool = True,
                      check_trials: bool = True, max_per_kind: int = 20) -> list[str]:
    """Return one message per problem found in the data dir (empty list: the dir is valid).

    ``wav.scp`` is required unless ``check_wav`` is False; ``feats.scp``/``utt2num_frames``/``trials``
    are checked when present unless switched off. At most ``max_per_kind`` messages are kept for each
    (file, kind of problem), followed by a count of the rest (0 keeps all).
    """
    path = Path(path)
    probs = _Problems(max_per_kind)
    if not path.is_dir():
        return [f"{path}: data dir not found"]
    if not (path / "utt2spk").is_file():
        return [f"{path}/utt2spk: not found"]

    utt2spk = _check_file_keys(path / "utt2spk", _read_lines(path / "utt2spk"), probs, ncols=2)

    bad: dict[str, str] = {}
    if (path / "bad_utts").is_file():
        bad = _check_file_keys(path / "bad_utts", _read_lines(path / "bad_utts"), probs, ncols=None)

    # spk2utt must be exactly what utt2spk implies.
    expected = utt2spk_to_spk2utt((u, utt2spk[u]) for u in sorted(utt2spk, key=c_sort_key))
    sp = path / "spk2utt"
    if not sp.is_file():
        probs.add("spk2utt", "missing", f"{sp}: not found; run utils/fix_data_dir.sh {path}")
    else:
        lines = _read_lines(sp)
        got = _check_file_keys(sp, lines, probs, ncols=None)
        for spk, rest in got.items():
            utts = rest.split()
            if spk not in expected:
                probs.add("spk2utt", "spk", f"{sp}: speaker '{spk}' has no utterance in utt2spk")
            elif utts != expected[spk]:
                missing = sorted(set(expected[spk]) - set(utts))
                extra = sorted(set(utts) - set(expected[spk]))
                detail = []
                if missing:
                    detail.append(f"lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}")
                if extra:
                    detail.append(f"has extra {extra[:3]}{' ...' if len(extra) > 3 else ''}")
                if not detail:
                    detail.append("utterances not in C order")
                probs.add("spk2utt", "spk",
                          f"{sp}: speaker '{spk}' disagrees with utt2spk: {', '.join(detail)}")
        for spk in expected:
            if spk not in got:
                probs.add("spk2utt", "spk", f"{sp}: speaker '{spk}' of utt2spk is missing")

    # Utterance ids must start with their speaker id, so that sorting by utterance groups speakers
    # (Kaldi convention; split by speaker and spk2utt rely on it).
    for utt, spk in utt2spk.items():
        if spk and not (utt == spk or utt.startswith(spk + "-") or utt.startswith(spk + "_")):
            probs.add("utt2spk", "prefix", f"{path}/utt2spk: utterance '{utt}' does not start with its "
                                           f"speaker id '{spk}-'; prefix utterance ids with the speaker id")

    if check_wav:
        wav = path / "wav.scp"
        if not wav.is_file():
            probs.add("wav.scp", "missing", f"{wav}: not found (use --no-wav for a dir without audio)")
        else:
            wavs = _check_file_keys(wav, _read_lines(wav), probs, ncols=None)
            _check_same_keys("utt2spk", utt2spk, wav, wavs, probs, bad)

    if check_feats:
        feats_ref = utt2spk
        fs = path / "feats.scp"
        if fs.is_file():
            feats = _check_file_keys(fs, _read_lines(fs), probs, ncols=2)
            _check_same_keys("utt2spk", utt2spk, fs, feats, probs, bad)
            feats_ref = feats
        nf = path / "utt2num_frames"
        if nf.is_file():
            frames = _check_file_keys(nf, _read_lines(nf), probs, ncols=2)
            _check_same_keys("feats.scp" if fs.is_file() else "utt2spk", feats_ref, nf, frames, probs, bad)
            for utt, v in frames.items():
                if v and not _is_positive_int(v):
                    probs.add(nf.name, "value",
                              f"{nf}: utterance '{utt}' has '{v}' frames; expected a positive integer")
        elif fs.is_file():
            probs.add("utt2num_frames", "missing", f"{nf}: not found although feats.scp exists")

    if check_trials and (path / "trials").is_file():
        _check_trials(path / "trials", utt2spk, probs)

    return probs.finish()


def _is_positive_int(v: str) -> bool:
    return v.isdigit() and int(v) > 0


def _is_positive_float(v: str) -> bool:
    try:
        return float(v) > 0
    except ValueError:
        return False


def _check_trials(tr: Path, utt2spk: dict[str, str], probs: _Problems) -> None:
    n_labelled = n_lines = 0
    with open(tr, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{tr}:{lineno}"
            if len(parts) not in (2, 3):
                probs.add("trials", "format",
                          f"{where}: expected 'enroll test [target|nontarget]', got {line.strip()!r}")
                continue
            n_lines += 1
            if len(parts) == 3:
                n_labelled += 1
                if parts[2] not in _TRIAL_LABELS:
                    probs.add("trials", "label",
                              f"{where}: label must be target or nontarget, got '{parts[2]}'")
            for utt in parts[:2]:
                if utt not in utt2spk:
                    probs.add("trials", "utt", f"{where}: utterance '{utt}' is not in utt2spk")
    if n_labelled not in (0, n_lines):
        probs.add("trials", "mixed",
                  f"{tr}: {n_labelled} of {n_lines} trials have a label; label all or none")


# --------------------------------------------------------------------------------------------------
# fixing


@dataclass
class FixReport:
    """What :func:`fix_data_dir` did: counts of kept and dropped utterances, and why."""

    n_before: int
    n_kept: int
    dropped: dict[str, int]  # reason -> number of utterances dropped for it
    trials_unknown: int = 0  # trials naming an utterance the fixed dir does not have
    files: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"kept {self.n_kept} of {self.n_before} utterances seen in {', '.join(self.files)}"]
        out += [f"dropped {n} utterances: {why}" for why, n in self.dropped.items() if n]
        if self.trials_unknown:
            out.append(f"warning: {self.trials_unknown} trials name utterances not in the fixed dir "
                       "(trials are not edited; fix the trial list or the data)")
        return out


def fix_data_dir(path: PathLike, *, backup: bool = True) -> FixReport:
    """Make a data dir valid in place: sort, dedupe, keep the utterances present in every file.

    Drops (and counts, by reason) utterances with conflicting duplicate lines, malformed lines, invalid
    ``utt2num_frames``/``utt2dur`` values, those listed in ``bad_utts``, and those missing from any
    per-utterance file present; regenerates ``spk2utt``. Originals go to ``<dir>/.backup/`` first.
    ``trials`` is left unchanged; trials naming dropped utterances are counted in the report.
    """
    path = Path(path)
    if not (path / "utt2spk").is_file():
        raise UserError(f"{path}/utt2spk not found; is {path} a Kaldi data dir?")
    names = [n for n in PER_UTT_FILES if (path / n).is_file()]
    dropped: dict[str, int] = {}
    bad_keys: dict[str, set[str]] = {}  # reason -> utterances
    maps: dict[str, dict[str, str]] = {}
    for name in names:
        values: dict[str, str] = {}
        conflict: set[str] = set()
        malformed: set[str] = set()
        for ln in _read_lines(path / name):
            rest = " ".join(ln.rest.split()) if name != "wav.scp" else ln.rest
            ok = bool(rest)
            if name in ("utt2spk", "feats.scp", "utt2num_frames", "utt2dur"):
                ok = ok and len(rest.split()) == 1
            if ok and name in _POSITIVE_INT_FILES:
                ok = _is_positive_int(rest)
            if ok and name in _POSITIVE_FLOAT_FILES:
                ok = _is_positive_float(rest)
            if not ok:
                malformed.add(ln.key)
            elif ln.key in values and values[ln.key] != rest:
                conflict.add(ln.key)
            else:
                values.setdefault(ln.key, rest)
        bad_keys[f"conflicting duplicate lines in {name}"] = conflict
        bad_keys[f"malformed or invalid value in {name}"] = malformed
        maps[name] = values
    if (path / "bad_utts").is_file():
        bad_keys["listed in bad_utts"] = {ln.key for ln in _read_lines(path / "bad_utts")}

    all_utts: set[str] = set()
    for m in maps.values():
        all_utts |= set(m)
    for name in names:
        all_utts |= bad_keys[f"malformed or invalid value in {name}"]
    keep = set(all_utts)
    for why, utts in bad_keys.items():
        hit = keep & utts
        dropped[why] = len(hit)
        keep -= hit
    for name in names:
        hit = keep - set(maps[name])
        dropped[f"missing from {name}"] = len(hit)
        keep -= hit
    n_before = len(all_utts)
    if not keep:
        raise UserError(f"{path}: no utterance is present and valid in all of {', '.join(names)}; "
                        "nothing would be left (fix the files by hand)")

    if backup:
        bdir = path / ".backup"
        bdir.mkdir(exist_ok=True)
        for name in [*names, "spk2utt"]:
            if (path / name).is_file():
                shutil.copy2(path / name, bdir / name)
    dd = DataDir(path, maps)
    write_data_dir(dd, path, keep)

    trials_unknown = 0
    if (path / "trials").is_file():
        with open(path / "trials", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and (parts[0] not in keep or parts[1] not in keep):
                    trials_unknown += 1
    return FixReport(n_before=n_before, n_kept=len(keep), dropped=dropped,
                     trials_unknown=trials_unknown, files=names)


# --------------------------------------------------------------------------------------------------
# subset / split / combine


def _read_list(path: PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: list file not found")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.split()]


def subset_data_dir(src: PathLike, dest: PathLike, *, utt_list: PathLike | Iterable[str] | None = None,
                    spk_list: PathLike | Iterable[str] | None = None, first: int | None = None,
                    random_n: int | None = None, seed: int = 0) -> DataDir:
    """Write a subset of ``src`` to ``dest``; exactly one selection mode must be given.

    ``utt_list``/``spk_list`` (a file of ids, first column, or an iterable): those utterances / all
    utterances of those speakers; ids absent from ``src`` are skipped with a warning. ``first``: the
    first N utterances in C order. ``random_n``: N utterances drawn without replacement with ``seed``
    (same seed, same subset). ``trials`` and ``bad_utts`` are not copied.
    """
    modes = [m for m in (utt_list, spk_list, first, random_n) if m is not None]
    if len(modes) != 1:
        raise UserError("subset_data_dir: give exactly one of --utt-list, --spk-list, --first, --random")
    if Path(src).resolve() == Path(dest).resolve():
        raise UserError(f"{dest}: destination must differ from the source data dir")
    dd = load_data_dir(src)
    utts = dd.utts
    if utt_list is not None or spk_list is not None:
        given = utt_list if utt_list is not None else spk_list
        ids = _read_list(given) if isinstance(given, (str, os.PathLike)) else list(given)
        if utt_list is not None:
            wanted = set(ids)
            unknown = wanted - set(utts)
            sel = [u for u in utts if u in wanted]
        else:
            wanted = set(ids)
            unknown = wanted - set(dd.utt2spk.values())
            sel = [u for u in utts if dd.utt2spk[u] in wanted]
        if unknown:
            log.warning("%d of %d listed ids are not in %s (e.g. '%s'); skipped", len(unknown), len(wanted),
                        src, sorted(unknown)[0])
    elif first is not None:
        if first <= 0:
            raise UserError(f"--first must be positive, got {first}")
        if first > len(utts):
            raise UserError(f"--first {first}: {src} has only {len(utts)} utterances")
        sel = utts[:first]
    else:
        assert random_n is not None
        if random_n <= 0 or random_n > len(utts):
            raise UserError(f"--random {random_n}: must be between 1 and the {len(utts)} utterances of {src}")
        sel = random.Random(seed).sample(utts, random_n)
    if not sel:
        raise UserError(f"no utterance of {src} matches the selection; {dest} not written")
    write_data_dir(dd, dest, sel)
    carry_feature_settings(dest, [src])  # the subset's features are the source's
    return load_data_dir(dest)


def _split_points(sizes: list[int], n: int) -> list[int]:
    """Contiguous partition of items with ``sizes`` into n non-empty parts of near-equal total size.

    Returns n+1 boundaries (indices into ``sizes``). Contiguous, so part i holds consecutive ids.
    """
    total = sum(sizes)
    cum = [0]
    for s in sizes:
        cum.append(cum[-1] + s)
    bounds = [0]
    for k in range(1, n):
        target = total * k / n
        # the boundary whose cumulative size is closest to the target, keeping every part non-empty
        lo, hi = bounds[-1] + 1, len(sizes) - (n - k)
        best = min(range(lo, hi + 1), key=lambda i: (abs(cum[i] - target), i))
        bounds.append(best)
    bounds.append(len(sizes))
    return bounds


def _split_fingerprint(path: Path, per_utt: bool) -> str:
    parts = [f"per_utt={per_utt}"]
    for name in (*PER_UTT_FILES, "spk2utt"):
        p = path / name
        if p.is_file():
            st = p.stat()
            parts.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(parts) + "\n"


def split_data(path: PathLike, n: int, *, per_utt: bool = False) -> list[Path]:
    """Split a data dir into ``<dir>/split<n>/{1..n}/``, each a valid data dir; return their paths.

    By speaker (default: no speaker is cut across parts, parts balanced by utterance count) or by
    utterance (``per_utt``). Every per-utterance file present (incl. feats.scp, utt2num_frames) is split.
    A stamp ``split<n>/.split_info`` records the mode and the source files' sizes and mtimes; when it
    matches, the existing split is reused (so parallel stages can call this cheaply). The split is
    built in a temporary dir and renamed into place, so a killed run leaves no partial split.
    """
    path = Path(path)
    if n < 1:
        raise UserError(f"number of splits must be >= 1, got {n}")
    dd = load_data_dir(path)
    out = path / f"split{n}"
    parts = [out / str(i) for i in range(1, n + 1)]
    stamp = out / ".split_info"
    fingerprint = _split_fingerprint(path, per_utt)
    if stamp.is_file() and stamp.read_text() == fingerprint and all((p / "utt2spk").is_file() for p in parts):
        log.info("%s is up to date; not re-splitting", out)
        return parts

    utts = dd.utts
    if per_utt:
        if n > len(utts):
            raise UserError(f"{path}: cannot split {len(utts)} utterances into {n} parts; use fewer jobs")
        bounds = _split_points([1] * len(utts), n)
        groups = [utts[bounds[i]:bounds[i + 1]] for i in range(n)]
    else:
        spk2utt = dd.spk2utt()
        spks = sorted(spk2utt, key=c_sort_key)
        if n > len(spks):
            raise UserError(f"{path}: cannot split {len(spks)} speakers into {n} parts; use fewer jobs "
                            "or --per-utt")
        bounds = _split_points([len(spk2utt[s]) for s in spks], n)
        groups = [[u for s in spks[bounds[i]:bounds[i + 1]] for u in spk2utt[s]] for i in range(n)]

    tmp = Path(tempfile.mkdtemp(prefix=f".split{n}.", dir=path))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the split is as shared as the data dir
    try:
        for i, g in enumerate(groups, 1):
            write_data_dir(dd, tmp / str(i), g)
        with atomic_open(tmp / ".split_info") as f:
            f.write(fingerprint)
        if out.exists():
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            # Another process split the same dir meanwhile; its result is as good as ours if it is
            # for the same mode and source files.
            if not (stamp.is_file() and stamp.read_text() == fingerprint):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return parts


def combine_data(dest: PathLike, srcs: Sequence[PathLike]) -> DataDir:
    """Write the union of the ``srcs`` data dirs to ``dest``.

    A per-utterance file is combined only if every source has it (otherwise it is left out, with a
    warning, since the result would fail validation). A key appearing in two sources with different
    values is an error naming both; identical duplicates are merged. ``trials`` are not combined.
    """
    if not srcs:
        raise UserError("combine_data: give at least one source data dir")
    dest = Path(dest)
    dirs = [load_data_dir(s) for s in srcs]
    if any(Path(s).resolve() == dest.resolve() for s in srcs):
        raise UserError(f"{dest}: destination must not be one of the sources")
    names = [n for n in PER_UTT_FILES if all(n in d.files for d in dirs)]
    for n in PER_UTT_FILES:
        if n not in names and any(n in d.files for d in dirs):
            lacking = [str(d.path) for d in dirs if n not in d.files]
            log.warning("%s not combined: missing in %s", n, ", ".join(lacking))
    if any((d.path / "trials").is_file() for d in dirs):
        log.warning("trials files are not combined; write the combined trial list yourself")
    merged: dict[str, dict[str, str]] = {n: {} for n in names}
    origin: dict[str, Path] = {}
    for d in dirs:
        for n in names:
            m = merged[n]
            for utt, v in d.files[n].items():
                if utt in m and m[utt] != v:
                    raise UserError(f"{n}: utterance '{utt}' is '{m[utt]}' in {origin[utt]} but '{v}' in "
                                    f"{d.path}; rename one of them before combining")
                m[utt] = v
        for utt in d.utt2spk:
            origin.setdefault(utt, d.path)
    dd = DataDir(dest, merged)
    write_data_dir(dd, dest)
    if "feats.scp" in names:
        carry_feature_settings(dest, [d.path for d in dirs])
    return load_data_dir(dest)


#: Speaker-keyed files that a copy carries over (renamed with the speakers).
PER_SPK_FILES = ("spk2gender", "spk2domain")


def copy_data_dir(src: PathLike, dest: PathLike, *, utt_prefix: str = "", utt_suffix: str = "",
                  spk_prefix: str = "", spk_suffix: str = "") -> DataDir:
    """Copy ``src`` to ``dest`` with renamed utterances and speakers (Kaldi's copy_data_dir.sh).

    Why: the same audio or features under new ids, so that combine_data can add them to the original
    again - oversampling a part of the training data (e.g. the real speakers of a mostly synthetic
    corpus) - or keep two versions of a corpus apart. Utterance ``u`` of speaker ``s`` becomes
    ``utt_prefix + u + utt_suffix`` of speaker ``spk_prefix + s + spk_suffix``; values (wav.scp
    commands, feats.scp offsets) are kept, so copies share their files. Utterance ids must keep starting
    with their speaker id (Kaldi's sorting rule, utils/validate_data_dir.sh) where they did: a renaming
    that breaks it is refused (e.g. ``utt_prefix`` without the same ``spk_prefix``).
    ``spk2gender``/``spk2domain`` and the features' ``fbank.yaml`` are carried; ``trials`` are not.
    """
    src, dest = Path(src), Path(dest)
    if src.resolve() == dest.resolve():
        raise UserError(f"{dest}: destination must differ from the source data dir")
    if not (utt_prefix or utt_suffix or spk_prefix or spk_suffix):
        raise UserError("copy_data_dir: give a prefix or suffix; an unchanged copy is `cp -r`")
    dd = load_data_dir(src)
    new_utt = {u: f"{utt_prefix}{u}{utt_suffix}" for u in dd.utt2spk}
    new_spk = {s: f"{spk_prefix}{s}{spk_suffix}" for s in dd.speakers}
    for u, s in dd.utt2spk.items():
        if u.startswith(s) and not new_utt[u].startswith(new_spk[s]):
            raise UserError(f"utterance '{new_utt[u]}' would not start with its speaker id '{new_spk[s]}' "
                            "(Kaldi's sorting rule): give --utt-prefix and --spk-prefix together, or suffixes "
                            "to utterances only")
    files = {name: {new_utt[u]: v for u, v in mapping.items() if u in new_utt}
             for name, mapping in dd.files.items() if name != "utt2spk"}
    files["utt2spk"] = {new_utt[u]: new_spk[s] for u, s in dd.utt2spk.items()}
    write_data_dir(DataDir(dest, files), dest)
    for name in PER_SPK_FILES:
        (dest / name).unlink(missing_ok=True)
        if (src / name).is_file():
            write_kv(dest / name, ((new_spk[s], v) for s, v in read_kv(src / name).items() if s in new_spk))
    carry_feature_settings(dest, [src])
    return load_data_dir(dest)


def carry_feature_settings(dest: PathLike, srcs: Sequence[PathLike]) -> None:
    """Give ``dest`` (a combined data dir, a lists dir) the sources' ``fbank.yaml`` when they all have the
    same one, so that training and extraction can still check its features against the model's config;
    otherwise none, with a warning if some source had one (features that differ between sources cannot
    be described by one record). A record ``dest`` had before is replaced or removed."""
    dest, srcs = Path(dest), [Path(s) for s in srcs]
    stamps = [(s / FEATURE_SETTINGS).read_text(encoding="utf-8") if (s / FEATURE_SETTINGS).is_file() else None
              for s in srcs]
    (dest / FEATURE_SETTINGS).unlink(missing_ok=True)
    if stamps[0] is not None and all(t == stamps[0] for t in stamps):
        with atomic_open(dest / FEATURE_SETTINGS) as f:
            f.write(stamps[0])
    elif any(t is not None for t in stamps):
        log.warning("%s not combined: the sources' feature settings differ or are missing in some (%s)",
                    FEATURE_SETTINGS, ", ".join(str(s) for s, t in zip(srcs, stamps) if t != stamps[0]))
