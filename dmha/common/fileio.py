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


def write_text_if_changed(path: PathLike, text: str) -> bool:
    """Atomically write ``text`` unless ``path`` already holds exactly it; True if written.

    Why: stage 4's up-to-date stamps key on file sizes and mtimes, so rewriting an identical file (a
    resumed training's config.yaml) would make every later stage redo its work.
    """
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    with atomic_open(path) as f:
        f.write(text)
    return True


@contextlib.contextmanager
def exclusive_lock(path: PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) while the block runs; UserError if another
    process holds it.

    Why: two trainings started in one exp dir (a second run.sh, a bench started twice) would both
    resume from the same checkpoint and overwrite each other's files. The kernel drops the lock when
    its process dies (kill -9 included), so a stale lock never blocks a resume. The holder's pid is
    written into the file for the message. On a file system without locks (ENOLCK) nothing is held.
    """
    import errno
    import fcntl

    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno == errno.ENOLCK:
                locked = False
            elif e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                raise UserError(f"{what}: another process (pid {holder}) holds {path}; wait for it to "
                                "finish or stop it, then run again (the work resumes)") from None
            else:
                raise
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
