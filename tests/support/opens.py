"""Count the opens of files in some folders with the kernel's inotify (IN_OPEN): no wrapper, every reader counts."""

from __future__ import annotations

import ctypes
import os
import struct

IN_ACCESS = 0x00000001
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
# the kernel merges an event with the unread one before it when they are the same: watching reads and closes too
# puts something between two opens of a file, so each counts
_MASK = IN_OPEN | IN_ACCESS | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
IN_NONBLOCK = 0o4000
_HEADER = struct.Struct("iIII")


class Opens:
    """`with Opens([folder, ...]) as opens: ...` then `opens.of(name)`: how often a file of that name was opened in
    the folders while the block ran."""

    def __init__(self, folders):
        self.folders = [os.fspath(f) for f in folders]
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "Opens":
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for folder in self.folders:
            if self._libc.inotify_add_watch(self._fd, folder.encode(), _MASK) < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        return self

    def __exit__(self, *exc) -> None:
        self._drain()
        os.close(self._fd)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            at = 0
            while at < len(data):
                _, mask, _, size = _HEADER.unpack_from(data, at)
                name = data[at + _HEADER.size : at + _HEADER.size + size].rstrip(b"\0").decode()
                at += _HEADER.size + size
                if mask & IN_OPEN and name:
                    self.counts[name] = self.counts.get(name, 0) + 1

    def of(self, *names: str) -> int:
        self._drain()
        return sum(self.counts.get(n, 0) for n in names)
