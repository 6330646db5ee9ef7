"""What the command line does when the machine, not the user, gets in the way.

- a file that cannot be written (a full disk): one line naming it, why, and which
  checkpoint is still good (`write_failed`);
- standard output closed by its reader (`... | head`): a quiet end, as Unix tools do
  (`closed_stdout`);
- two runs writing into one folder: the second is refused (`FolderLock`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys

from . import checkpoint
from .settings import UsageError

SIGPIPE_STATUS = 128 + 13  # a shell's status for a process ended by SIGPIPE
LOCK_FILE = ".makemore-jax.lock"  # in --out while a run writes there; removed when it ends


# ----------------------------------------------------------------------------- a full disk


def write_failed(error: OSError) -> str:
    """The one line for a failed write: the file, the reason, and the checkpoint still good beside it.

    A WriteError names the file (every write into --out raises one: checkpoints, metrics.jsonl,
    the lock, TensorBoard's events, reports); any other failed write is standard output's.
    """
    path = error.path if isinstance(error, checkpoint.WriteError) else error.filename
    if path is None:
        return f"cannot write standard output: {error.strerror or error}"
    line = f"cannot write {path}: {error.strerror or error}"
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    step = checkpoint.saved_step(folder)
    if step is not None:
        return f"{line}; the last checkpoint, {os.path.join(folder, checkpoint.CHECKPOINT)} (step {step:,}), is intact"
    if os.path.basename(path) in RUN_FILES:
        return f"{line}; no checkpoint was saved in {folder} yet"
    return line


RUN_FILES = (checkpoint.CHECKPOINT, checkpoint.META, "metrics.jsonl", LOCK_FILE)  # a run's own files in --out


def is_write_failure(error: OSError) -> bool:
    """A WriteError, or a write to standard output that failed for lack of room."""
    return isinstance(error, checkpoint.WriteError) or error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# ----------------------------------------------------------------------------- a closed pipe


def closed_stdout() -> int:
    """Standard output's reader has gone: point fd 1 at /dev/null (so the final flush cannot fail) and
    return 128 + SIGPIPE, the status a shell shows for a tool ended by the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_STATUS


# ----------------------------------------------------------------------------- one writer per folder


class FolderLock:
    """An exclusive flock on `out`/LOCK_FILE, held while a run writes into `out`.

    The kernel drops a flock when its process ends, however it ends, so a crashed or killed
    run leaves no lock behind (at most the file, which then holds none). The file holds the
    holder's pid, host and command, for the refusal. Removing the file on release could let
    a waiting process lock the removed file, so `acquire` checks that the file it locked is
    still the one at the path, and tries again if not.

    Raises (acquire):
        UsageError: another process holds the lock.
    """

    def __init__(self, out: str):
        self.out, self.path, self.fd = out, os.path.join(out, LOCK_FILE), None

    def acquire(self) -> FolderLock:
        while True:
            try:
                os.makedirs(self.out, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise checkpoint.write_error(self.path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise UsageError(f"{self.out}: another run is writing there ({holder}); wait for it to end, "
                                 f"or choose another folder".replace("{", "{{").replace("}", "}}")) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was removed by its last holder after we opened it: lock the new one
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(holder) + "\n").encode())
        except OSError as e:  # a full disk: named by the lock file (its run's checkpoint is untouched)
            os.close(fd)
            raise checkpoint.write_error(self.path, e) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {holder['pid']} on {holder['host']}: {holder['command']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not said which yet"
