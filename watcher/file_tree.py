"""Which YAML/JSON files exist under a root, and which of them may have changed since last time.

Who calls it: ``watcher.files``: ``FileProvider`` keeps one ``FileTree`` for its root and asks
``refresh()`` at each poll which paths to read again; ``load_paths`` uses ``walk`` once.
Paths are plain strings as ``os.scandir`` gives them (no ``Path`` objects: a tree of 10,000
files is looked at every 50 ms).

What is found: directories are searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``,
skipping names that start with a dot; symbolic links are followed, and a directory reached
twice (a link loop) is walked once, at the first path in sorted order.

How changes are found, one of two ways::

    inotify (Linux)   every walked directory has a watch, added before it is listed; an
                      event names the entry to look at again (a file is read again, a
                      directory walked again); files that are symbolic links are stat'ed at
                      each poll (an edit of the link's target raises no event here); a
                      full rescan on queue overflow, when the root itself changes, and every
                      ``rescan_interval`` seconds, heals anything events cannot show
                      (hard links edited elsewhere, network file systems)
    polling           no inotify (another system, instance or watch limits reached): a full
                      walk at each poll, comparing (mtime, ctime, size, inode)

A file whose stat cannot be trusted because it was modified in the last two seconds (two
writes in one clock tick can leave the same stat) is reported again at each poll while it
is that recent, unless inotify watches it (every write then raises an event).

What it must not do: read file contents (the provider does), raise on a missing or
unreadable path (those are ``errors``), or walk a directory twice.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

import structlog

from watcher import inotify
from watcher.inotify import Event, Inotify
from watcher.objects import LoadError

SUFFIXES = (".yaml", ".yml", ".json")

# A file modified this recently may change again without changing its stat (same size, same
# coarse mtime tick), so it is read again at each poll until it is older than this.
RACY_NS = 2_000_000_000

Identity = tuple[int, int]  # (st_dev, st_ino) of a directory

log = structlog.get_logger(__name__)

_by_name = attrgetter("name")
_GIVE_UP = frozenset({errno.ENOSPC, errno.ENOMEM, errno.EMFILE, errno.EBADF})


class FileStat(NamedTuple):
    """What a poll compares to decide whether a file must be read again."""

    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, result: os.stat_result) -> FileStat:
        return cls(result.st_mtime_ns, result.st_ctime_ns, result.st_size, result.st_ino)


@dataclass(slots=True)
class Walk:
    """What walking one directory found: files, the links among them, directories, errors."""

    files: dict[str, FileStat] = field(default_factory=dict)
    links: set[str] = field(default_factory=set)
    dirs: dict[str, Identity] = field(default_factory=dict)
    errors: dict[str, LoadError] = field(default_factory=dict)


def walk(
    top: str,
    identity: Identity,
    seen: dict[Identity, str],
    before_listing: Callable[[str], None] | None = None,
) -> Walk:
    """Every YAML/JSON file under the directory ``top``; directories in ``seen`` are skipped.

    ``seen`` (identity -> path) gains every directory walked, ``top`` included;
    ``before_listing(path)`` is called before each directory is listed.
    """
    found = Walk()
    seen[identity] = top
    found.dirs[top] = identity
    pending = [top]
    while pending:
        directory = pending.pop()
        if before_listing is not None:
            before_listing(directory)
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except FileNotFoundError:
            continue  # removed while we looked; the next poll sees the rest
        except OSError as exc:
            found.errors[directory] = LoadError(directory, os_reason(exc, "list directory"))
            continue
        subdirs = [entry for entry in entries if _visit(entry, seen, found)]
        subdirs.sort(key=_by_name, reverse=True)  # popped in name order: the first path wins
        pending.extend(entry.path for entry in subdirs)
    return found


def _visit(entry: os.DirEntry[str], seen: dict[Identity, str], found: Walk) -> bool:
    """Note a file to load; True for a directory not seen yet (to walk)."""
    name = entry.name
    if name.startswith("."):
        return False
    try:
        if entry.is_dir():
            result = entry.stat()
            identity = (result.st_dev, result.st_ino)
            if identity in seen:
                return False  # a symbolic link loop, or a directory linked twice
            seen[identity] = entry.path
            found.dirs[entry.path] = identity
            return True
        if name.lower().endswith(SUFFIXES) and entry.is_file():
            found.files[entry.path] = FileStat.of(entry.stat())
            if entry.is_symlink():
                found.links.add(entry.path)
    except OSError:
        pass  # vanished, or a dangling link: nothing to load
    return False


def merge_order(root: str) -> Callable[[str], tuple[str, ...]]:
    """The key that sorts paths under ``root`` in merge order: their parts below the root."""
    prefix = os.path.join(root, "")

    def order(path: str) -> tuple[str, ...]:
        return tuple(path[len(prefix) :].split("/")) if path.startswith(prefix) else ()

    return order


def os_reason(exc: OSError, doing: str = "read") -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return f"cannot {doing}: {exc.strerror or exc}"


class FileTree:
    """The files under ``root`` and their stats, refreshed from inotify events or by polling."""

    def __init__(self, root: str, *, events: bool = True, rescan_interval: float = 10.0) -> None:
        self.root = root
        self.files: dict[str, FileStat] = {}
        self.errors: tuple[LoadError, ...] = ()
        self.order = merge_order(root)
        self._rescan_interval = rescan_interval
        self._next_rescan = 0.0
        self._links: set[str] = set()
        self._dirs: dict[str, Identity] = {}
        self._owners: dict[Identity, str] = {}
        self._dir_errors: dict[str, LoadError] = {}
        self._root_error: LoadError | None = None
        self._inotify = Inotify.open() if events else None
        if events and self._inotify is None:
            log.info("config.watch_polling", reason="inotify is not available")
        self._wds: dict[str, int] = {}  # directory -> watch descriptor
        self._watched: dict[int, str] = {}  # watch descriptor -> directory

    @property
    def uses_events(self) -> bool:
        """True while inotify watches the root (False: every refresh walks the whole tree)."""
        return self._inotify is not None and self.root in self._wds

    def fileno(self) -> int | None:
        """The inotify descriptor (readable when events are queued), or None when polling."""
        return self._inotify.fileno() if self._inotify is not None else None

    def close(self) -> None:
        """Stop watching; later refreshes poll."""
        if self._inotify is not None:
            self._inotify.close()
        self._inotify = None
        self._wds.clear()
        self._watched.clear()

    def refresh(self) -> set[str]:
        """Paths to read again (or to forget: those no longer in ``files``)."""
        now_ns = time.time_ns()
        events = self._read_events()
        dirty = self._dirty(events)
        if dirty is None or not self.uses_events or time.monotonic() >= self._next_rescan:
            touched = self._rescan(now_ns)
        else:
            touched = self._poll_links(now_ns, dirty)
            if dirty:
                touched |= self._update(dirty)
        self._set_errors()
        return touched

    def _read_events(self) -> list[Event]:
        if self._inotify is None:
            return []
        try:
            return self._inotify.read()
        except OSError as exc:
            log.warning("config.watch_polling", reason=os_reason(exc, "read inotify events"))
            self.close()
            return []

    def _dirty(self, events: Iterable[Event]) -> set[str] | None:
        """The paths the events name; None when only a full rescan will do."""
        dirty: set[str] = set()
        for event in events:
            if event.mask & inotify.Q_OVERFLOW:
                return None
            directory = self._watched.get(event.wd)
            if directory is None:
                continue  # a watch we already dropped
            if event.mask & inotify.IGNORED:
                del self._watched[event.wd]
                if self._wds.get(directory) == event.wd:
                    del self._wds[directory]
            if not event.name:
                dirty.add(directory)  # the directory itself: deleted, moved, changed
            elif not event.name.startswith("."):
                dirty.add(os.path.join(directory, event.name))
        return None if self.root in dirty else dirty

    def _rescan(self, now_ns: int) -> set[str]:
        """Walk the whole tree; what changed since the last look."""
        self._next_rescan = time.monotonic() + self._rescan_interval
        old_files, old_wds = self.files, dict(self._wds)
        found = Walk()
        self._owners = {}
        self._root_error = None
        try:
            result = os.stat(self.root)
        except OSError as exc:
            self._root_error = LoadError(self.root, os_reason(exc))
        else:
            if stat_module.S_ISDIR(result.st_mode):
                identity = (result.st_dev, result.st_ino)
                found = walk(self.root, identity, self._owners, self._watch)
            else:  # a file given as the root is read whatever its name
                found.files[self.root] = FileStat.of(result)
        self.files, self._links = found.files, found.links
        self._dirs, self._dir_errors = found.dirs, found.errors
        self._forget_watches(old_wds)
        touched = old_files.keys() - self.files.keys()
        polled = not self.uses_events
        for path, file_stat in self.files.items():
            if old_files.get(path) != file_stat or (
                (polled or path in self._links) and now_ns - file_stat.mtime_ns < RACY_NS
            ):
                touched.add(path)
        return touched

    def _poll_links(self, now_ns: int, dirty: set[str]) -> set[str]:
        """Files that are symbolic links, by stat; those no longer files go to ``dirty``."""
        touched: set[str] = set()
        for path in self._links:
            try:
                result = os.stat(path)
            except OSError:
                dirty.add(path)
                continue
            if not stat_module.S_ISREG(result.st_mode):
                dirty.add(path)
                continue
            file_stat = FileStat.of(result)
            if self.files.get(path) != file_stat or now_ns - file_stat.mtime_ns < RACY_NS:
                self.files[path] = file_stat
                touched.add(path)
        return touched

    def _update(self, dirty: set[str]) -> set[str]:
        """Look again at each dirty path: forget what was there, then take what is there now."""
        ordered = sorted(dirty, key=self.order)  # parents before their children
        old_files: dict[str, FileStat] = {}
        old_wds: dict[str, int] = {}
        for path in ordered:
            self._drop(path, old_files, old_wds)
        added: dict[str, FileStat] = {}
        for path in ordered:
            self._add(path, added)
        self._forget_watches(old_wds)
        touched = old_files.keys() - added.keys()
        touched.update(
            path for path, file_stat in added.items() if old_files.get(path) != file_stat
        )
        # A file an event names is read again even if its stat looks the same.
        touched.update(path for path in dirty if path in added or path in old_files)
        return touched

    def _drop(self, path: str, files: dict[str, FileStat], wds: dict[str, int]) -> None:
        """Forget ``path``, a file or a whole directory; what was there goes to files and wds."""
        if path in self.files:
            files[path] = self.files.pop(path)
            self._links.discard(path)
        if path not in self._dirs:
            return
        prefix = os.path.join(path, "")
        for directory in [d for d in self._dirs if d == path or d.startswith(prefix)]:
            self._owners.pop(self._dirs.pop(directory), None)
            self._dir_errors.pop(directory, None)
            if directory in self._wds:
                wds[directory] = self._wds[directory]
        for file in [f for f in self.files if f.startswith(prefix)]:
            files[file] = self.files.pop(file)
            self._links.discard(file)

    def _add(self, path: str, added: dict[str, FileStat]) -> None:
        """Take what is at ``path`` now (in a directory we walk, and not taken yet)."""
        if path in self.files or path in self._dirs or os.path.dirname(path) not in self._dirs:
            return
        try:
            result = os.stat(path)
        except OSError:
            return  # gone, or a dangling link: nothing to load
        if stat_module.S_ISDIR(result.st_mode):
            identity = (result.st_dev, result.st_ino)
            if identity in self._owners:
                return
            found = walk(path, identity, self._owners, self._watch)
            self._dirs.update(found.dirs)
            self._dir_errors.update(found.errors)
            self.files.update(found.files)
            self._links.update(found.links)
            added.update(found.files)
        elif stat_module.S_ISREG(result.st_mode) and path.lower().endswith(SUFFIXES):
            self.files[path] = added[path] = FileStat.of(result)
            if os.path.islink(path):
                self._links.add(path)

    def _watch(self, directory: str) -> None:
        """Add an inotify watch on ``directory`` (before listing it, so no change slips by)."""
        if self._inotify is None:
            return
        try:
            wd = self._inotify.add_watch(directory)
        except OSError as exc:
            if exc.errno in _GIVE_UP:
                log.warning("config.watch_polling", reason=os_reason(exc, "watch directory"))
                self.close()
            return  # vanished or unreadable: the listing reports it
        self._wds[directory] = wd
        self._watched[wd] = directory

    def _forget_watches(self, old: dict[str, int]) -> None:
        """Remove the watches of directories no longer walked (one inode, one watch)."""
        for directory, wd in old.items():
            in_use = self._watched.get(wd) == directory
            if in_use and self._wds.get(directory) == wd and directory in self._dirs:
                continue
            if in_use:
                del self._watched[wd]
                if self._inotify is not None:
                    self._inotify.remove_watch(wd)
            if self._wds.get(directory) == wd:
                del self._wds[directory]

    def _set_errors(self) -> None:
        errors = [self._dir_errors[path] for path in sorted(self._dir_errors, key=self.order)]
        if self._root_error is not None:
            errors.insert(0, self._root_error)
        if tuple(errors) != self.errors:
            self.errors = tuple(errors)
