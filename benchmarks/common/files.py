"""Writing results safely, written once: atomic replacement, appends that never leave half a row, write errors
as one line, and the advisory locks that give every run and sweep folder a single writer.

* ``atomic_write_bytes`` (and its text, JSON and torch forms): a temporary file beside the target, written,
  fsync'd and renamed over it, then the directory fsync'd. A reader sees the old file or the new one. When the
  write fails (a full disk, a quota, an I/O error) the temporary file is removed and ``WriteError`` is raised:
  the old file is intact.
* ``AppendFile``: rows appended to a CSV through one unbuffered descriptor; a failed append is cut back to the
  file's last good size, so a file never ends in half a row.
* ``WriteError``: one line naming the file, the error and the free space left where it was written. The CLI
  prints it and exits with code 1.
* ``FileLock``: an exclusive ``flock`` on a lock file, held for a writer's lifetime and released by the OS
  when the process ends, however it ends (a killed run never leaves a stale lock). The file holds the PID
  of the holder, for the message a second writer gets.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import time
from typing import Any

from algorithms.base import UserError


class WriteError(Exception):
    """A write that did not reach the disk. One line: the file, the reason, the free space there."""

    def __init__(self, path: str, err: OSError):
        self.path, self.errno = path, err.errno
        free = free_bytes(path)
        room = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
        super().__init__(f"cannot write {path}: {err.strerror or err} ({room} on its filesystem)")


def free_bytes(path: str) -> int | None:
    """Bytes available to this user on the filesystem of ``path`` (or of its nearest existing parent)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: str, data: bytes) -> int:
    """Replace ``path`` by ``data`` atomically (see the module doc); returns the bytes written."""
    tmp = f"{path}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise WriteError(path, e) from None
    fsync_dir(os.path.dirname(path))
    return len(data)


def atomic_write_text(path: str, text: str) -> int:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str, obj: Any, indent: int | None = 2) -> int:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str) -> int:
    """``torch.save`` into memory, then ``atomic_write_bytes``: a full disk gives ``WriteError``, not torch's
    serializer error, and never a partial file."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


class AppendFile:
    """A file that grows by whole blocks of bytes (CSV rows): a failed append is truncated away."""

    def __init__(self, path: str, truncate_to: int | None = None, create: bool = False):
        self.path = path
        flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = None
        try:
            self.fd = os.open(path, flags, 0o644)
            if truncate_to is not None:
                os.ftruncate(self.fd, truncate_to)
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as e:
            self.close()
            raise WriteError(path, e) from None

    def append(self, data: bytes) -> None:
        try:
            _write_all(self.fd, data)
        except OSError as e:
            try:
                os.ftruncate(self.fd, self.size)  # no half row: back to the last good end
                os.lseek(self.fd, self.size, os.SEEK_SET)
            except OSError:
                pass
            raise WriteError(self.path, e) from None
        self.size += len(data)

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise WriteError(self.path, e) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @property
    def closed(self) -> bool:
        return self.fd is None


# -- one writer ---------------------------------------------------------------------------------------------
class Locked(Exception):
    """Another live process holds the lock."""

    def __init__(self, path: str, pid: int | None):
        self.path, self.pid = path, pid
        super().__init__(f"{path} is held by PID {pid if pid is not None else '?'}")


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None


class FileLock:
    """An exclusive advisory lock on ``path`` for as long as this object holds it (see the module doc).

    Acquiring it retries for ``wait_s`` (a momentary probe by ``lock_holder`` is not a holder) and raises
    ``Locked`` with the holder's PID when another process keeps it."""

    def __init__(self, path: str, wait_s: float = 0.5):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(wait_s)
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.release()  # never a descriptor (and so a lock) left open by a failed acquisition
            raise

    def _acquire(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise Locked(self.path, _read_pid(self.fd)) from None
                time.sleep(0.05)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(path: str) -> int | None:
    """The PID holding the lock at ``path`` (0 if the PID is unreadable), or None when nobody holds it. Reads
    only: a lock file that does not exist is not created."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            return pid if pid is not None else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def exclusive(path: str, busy: str, where: str, error: type[UserError] = UserError, hint: str = "") -> FileLock:
    """The lock at ``path`` for this process, or one line: ``error("<busy> (PID n): not started<hint>")`` when another
    live process holds it, a UserError when ``where`` cannot be written."""
    try:
        return FileLock(path)
    except Locked as e:
        raise error(f"{busy} (PID {e.pid}): not started{hint}") from None
    except OSError as e:
        raise UserError(f"cannot write to '{where}': {e.strerror}") from None
