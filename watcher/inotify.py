"""Linux inotify through ctypes: which directory entries changed, without looking at every file.

``watcher.file_tree`` opens one ``Inotify`` per watched tree, adds a watch on each directory
it walks and reads the events at each poll to learn which names to look at again. Nothing
here decides what an event means for the tree; this module only talks to the kernel::

    Inotify.open()      -> Inotify, or None where inotify is unavailable (not Linux, no libc
                           symbol, too many instances): the caller polls instead
    add_watch(path)     -> watch descriptor; OSError (ENOSPC when the user's watch limit is
                           reached, ENOENT, EACCES, ENOTDIR) is the caller's to handle
    remove_watch(wd)       forgets a watch; a watch the kernel already dropped is no error
    read()              -> every queued Event, never blocks (the descriptor is non-blocking)
    fileno(), close()      for an event loop's add_reader; closed at garbage collection too

Events of a watched directory name the entry that changed (``name``); events about the
directory itself (deleted, moved, its watch dropped) have an empty name. ``Q_OVERFLOW``
(wd -1) means events were lost and only a full rescan is safe.

What it must not do: block, raise on a kernel without inotify, or leak the descriptor.
"""

from __future__ import annotations

import ctypes
import os
import struct
import weakref
from typing import NamedTuple

MODIFY = 0x00000002
ATTRIB = 0x00000004
CLOSE_WRITE = 0x00000008
MOVED_FROM = 0x00000040
MOVED_TO = 0x00000080
CREATE = 0x00000100
DELETE = 0x00000200
DELETE_SELF = 0x00000400
MOVE_SELF = 0x00000800
UNMOUNT = 0x00002000
Q_OVERFLOW = 0x00004000
IGNORED = 0x00008000
_ONLYDIR = 0x01000000
_EXCL_UNLINK = 0x04000000

# Everything that can change what a directory holds or what its files contain.
DIRECTORY_MASK = (
    MODIFY
    | ATTRIB
    | CLOSE_WRITE
    | MOVED_FROM
    | MOVED_TO
    | CREATE
    | DELETE
    | DELETE_SELF
    | MOVE_SELF
    | _ONLYDIR
    | _EXCL_UNLINK
)

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
_BUFFER = 64 * 1024


class Event(NamedTuple):
    """One inotify event: the watch it came from, what happened, and the entry's name."""

    wd: int
    mask: int
    name: str


class Inotify:
    """One inotify instance (a file descriptor) and its watches."""

    def __init__(self, fd: int, libc: ctypes.CDLL) -> None:
        self._fd = fd
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._add.restype = ctypes.c_int
        self._remove = libc.inotify_rm_watch
        self._remove.argtypes = (ctypes.c_int, ctypes.c_int)
        self._remove.restype = ctypes.c_int
        self._closer = weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls) -> Inotify | None:
        """A new non-blocking instance, or None when this system cannot give one."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init = libc.inotify_init1
        except (OSError, AttributeError):
            return None
        init.argtypes = (ctypes.c_int,)
        init.restype = ctypes.c_int
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None  # EMFILE: the user's instance limit (fs.inotify.max_user_instances)
        return cls(fd, libc)

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def add_watch(self, path: str) -> int:
        """Watch the directory ``path`` (symbolic links followed); the same inode, the same wd."""
        wd = int(self._add(self._fd, os.fsencode(path), DIRECTORY_MASK))
        if wd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), path)
        return wd

    def remove_watch(self, wd: int) -> None:
        self._remove(self._fd, wd)  # EINVAL when the kernel already dropped it: nothing to do

    def read(self) -> list[Event]:
        """Every event queued now; an empty list when there is none."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self._fd, _BUFFER)
            except BlockingIOError:
                return events
            events.extend(_parse(data))

    def close(self) -> None:
        self._closer()


def _parse(data: bytes) -> list[Event]:
    events: list[Event] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        wd, mask, _, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        raw = data[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        events.append(Event(wd, mask, os.fsdecode(raw)))
    return events
