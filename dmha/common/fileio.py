"""Small file helpers shared by every stage: atomic writes and Kaldi key-value text files.

Atomic writes matter because a stage may be killed at any moment; a reader must then see either the
old complete file or nothing, never a truncated file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Union

from dmha.common.errors import UserError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the final file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    """The process umask (os.umask can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_kv(path: PathLike, *, multi: bool = False) -> dict[str, str] | dict[str, list[str]]:
    """Read a Kaldi ``key value...`` text file (utt2spk, wav.scp, spk2utt, ...), keeping file order.

    With ``multi`` the rest of the line is split into a list (spk2utt); otherwise the rest of the line is
    kept as one string (wav.scp entries may contain spaces, e.g. pipes). Duplicate keys are an error.
    """
    out: dict = {}
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            key = parts[0]
            rest = parts[1] if len(parts) > 1 else ""
            if key in out:
                raise UserError(f"{path}:{lineno}: duplicate key '{key}'; run utils/fix_data_dir.sh")
            out[key] = rest.split() if multi else rest
    return out


def write_kv(path: PathLike, items: Iterable[tuple[str, object]], *, sort: bool = True) -> None:
    """Atomically write ``key value`` lines; lists are joined with spaces; keys sorted (C locale)."""
    rows = list(items.items()) if isinstance(items, dict) else list(items)
    if sort:
        rows.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_open(path) as f:
        for key, value in rows:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")
