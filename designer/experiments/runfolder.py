"""Run folders: one writer at a time (an exclusive lock) and no new run over an old run's files.

A run writes ``log.csv``, ``checkpoint.pt``, ``solved.pt`` and ``tb/`` into its folder. While it does, it holds an
exclusive ``flock`` on ``<folder>/run.lock`` (the file holds the writer's pid, host and start time, so a second
writer's error names it). The kernel drops the lock when the holder's process ends, however it ends (exit, crash,
``kill -9``), so a stale lock cannot block a folder. Sweeps lock their own folder the same way (``sweep.lock``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["RUN_FILES", "RunFolderLocked", "RunLock", "check_new_run", "claim_run_folder"]

RUN_FILES = ("checkpoint.pt", "log.csv", "solved.pt", "tb")
"""What a run writes into its folder (a new run in a folder holding any of them needs ``overwrite``)."""
_TEMP_FILES = ("checkpoint.pt.tmp", "solved.pt.tmp", "log.csv.tmp")


class RunFolderLocked(RuntimeError):
    """Another writer (another process, or another trainer in this one) holds the folder's lock."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>/<name>``; a context manager.

    :meth:`acquire` raises :class:`RunFolderLocked` at once, naming the holder, when someone else has it. The lock
    file is never deleted (deleting a lock file another process has open would let two writers in).
    """

    def __init__(self, folder: str | os.PathLike[str], name: str = "run.lock") -> None:
        self.path = Path(folder) / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:  # pragma: no cover
            warnings.warn(f"no flock on this platform: {self.path.parent} is not protected against a second writer",
                          RuntimeWarning, stacklevel=2)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                os.close(fd)
                raise RunFolderLocked(
                    f"{self.path.parent} is being written by {holder or 'another writer (not named yet)'}: "
                    f"a run folder has one writer at a time; wait for it to end or use another folder "
                    f"(lock: {self.path})"
                ) from None
        os.ftruncate(fd, 0)
        command = " ".join(sys.argv)[:300]
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
                      f"({command})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)  # while still holding it: nobody reads a finished writer's name
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:  # a dropped trainer must not keep its folder locked
        try:
            self.release()
        except OSError:  # pragma: no cover
            pass


def _existing(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def check_new_run(folder: str | os.PathLike[str], overwrite: bool, flag: str = "overwrite=True") -> None:
    """Raise ``FileExistsError`` if ``folder`` holds a run's files and ``overwrite`` is off (``flag`` says how
    to turn it on)."""
    found = _existing(Path(folder))
    if found and not overwrite:
        raise FileExistsError(
            f"{folder} already holds a run ({', '.join(found)}): resume its checkpoint.pt to continue it, pass "
            f"{flag} to replace it, or choose another folder"
        )


def claim_run_folder(folder: Path, source: Path | None, overwrite: bool) -> None:
    """Check, under the folder's lock, that a run may write ``folder``; with ``overwrite``, clear what it replaces.

    ``source`` is the checkpoint a resumed run was loaded from (None: a new run). Resuming the folder's own
    ``checkpoint.pt`` is the run continuing; resuming another file of the folder (e.g. ``solved.pt``) would roll
    the run back and needs ``overwrite``; a new run needs an empty folder or ``overwrite`` (which deletes the old
    run's ``log.csv``, checkpoints and TensorBoard events first).
    """
    ckpt = folder / "checkpoint.pt"
    if source is None:
        check_new_run(folder, overwrite)
        for name in (*RUN_FILES, *_TEMP_FILES):
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif ckpt.exists() and source.resolve() != ckpt.resolve() and not overwrite:
        raise FileExistsError(
            f"resuming {source.name} would replace {ckpt}, the run's latest checkpoint, and its log rows after "
            f"{source.name}: resume checkpoint.pt to continue the run, copy {source.name} into a new folder to "
            "branch from it, or pass overwrite=True (CLI: --overwrite) to roll the run back"
        )
