"""A lock on a ``log_dir``: one run writes its TensorBoard files and checkpoints at a time.

Two runs writing to one directory would delete each other's checkpoints and interleave their
event files. A run therefore creates ``log_dir/.calcil-lock`` (``O_CREAT | O_EXCL``, atomic on
local file systems) holding the owner's host, process id and start time, and removes it when
it ends. A second run finds the file and raises a ``ValueError`` that names the holder. A lock
left by a process that no longer exists on this host (a killed run) is stale and taken over.

Example:
    >>> import tempfile
    >>> from calcil.solvers._lock import DirectoryLock
    >>> d = tempfile.mkdtemp()
    >>> with DirectoryLock(d, "GradientSolver"):
    ...     try:
    ...         DirectoryLock(d, "another run").acquire()
    ...     except ValueError as err:
    ...         print("is in use" in str(err))
    True
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

__all__ = ["LOCK_NAME", "DirectoryLock"]

LOCK_NAME = ".calcil-lock"
_UNREADABLE_GRACE_S = 10.0  # a lock file this new may still be being written by its owner


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    return True


class DirectoryLock:
    """Exclusive use of ``directory`` by one run (a context manager)."""

    def __init__(self, directory, owner: str):
        self.path = Path(directory) / LOCK_NAME
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "owner": owner,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "token": uuid.uuid4().hex,
        }
        self.held = False

    def acquire(self) -> DirectoryLock:
        for _ in range(3):  # a stale lock is removed, then the creation is tried again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and self._stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                raise ValueError(self._busy_message(holder)) from None
            with os.fdopen(fd, "w") as f:
                json.dump(self.record, f)
            self.held = True
            return self
        raise ValueError(self._busy_message(self._holder()))

    def release(self) -> None:
        """Remove the lock file if it is still this run's."""
        if not self.held:
            return
        self.held = False
        holder = self._holder()
        if holder is not None and holder.get("token") == self.record["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    # ------------------------------------------------------------------ internals
    def _holder(self) -> dict | None:
        """The lock file's record; ``{}`` if it cannot be read; ``None`` if it is gone."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _stale(self, holder: dict) -> bool:
        if not holder:  # unreadable: its writer died before finishing, unless it is brand new
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            return age > _UNREADABLE_GRACE_S
        if holder.get("host") != self.record["host"]:
            return False  # another machine's process: cannot be checked from here
        pid = holder.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and not _alive(pid)

    def _busy_message(self, holder: dict | None) -> str:
        if holder:
            who = (
                f"{holder.get('owner', 'a run')} in process {holder.get('pid')} on "
                f"{holder.get('host')}, started {holder.get('started')}"
            )
        else:
            who = "another run"
        return (
            f"log_dir {str(self.path.parent)!r} is in use by {who}: two runs in one directory "
            "would overwrite each other's checkpoints and logs. Wait for that run to finish, "
            f"or choose another log_dir. If that run is gone, delete {str(self.path)!r}."
        )
