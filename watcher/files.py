"""The file provider: Kubernetes YAML/JSON files on disk become ``ObjectSnapshot`` values.

Two entry points:

- ``load_paths(paths)``: one snapshot from files and directories, for the offline
  ``xdsctl translate -f PATH``;
- ``FileProvider(root).run(publish)``: for ``xdsctl serve --config-dir DIR``; publishes a first
  snapshot at once, then a new one whenever files under ``root`` are created, edited or
  deleted, at any depth. ``FileProvider.reload()`` does one such step synchronously.

How files are found: a path given explicitly is read whatever its name; directories are
searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``, skipping names that start with
a dot (editor temporaries, ``.git``, the ``..data`` links of a Kubernetes ConfigMap volume).
Symbolic links are followed. Files are merged in sorted path order (``watcher.documents``
parses and merges; ``watcher.metadata`` adds uid, generation, creationTimestamp and
resourceVersion as an API server would).

How the provider watches: ``watcher.file_tree`` tells it, every ``poll_interval`` seconds
(at once when inotify has events), which files may have changed: from inotify events on
Linux, else by comparing ``os.scandir`` stat results (mtime, ctime, size, inode) of the
whole tree; in a worker thread so the event loop stays free. It reads those files again; a
file whose bytes did not change is not parsed again. After a change it waits until nothing
has changed for ``debounce`` seconds, but never more than ``max_delay`` after the first
change, and publishes once, only if objects or errors differ from the last snapshot.
Versions count up from 1. The time from detecting a change to publishing its snapshot is
observed in ``watcher.metrics.DEBOUNCE_SECONDS``.

What a change costs: only changed files are merged again (``watcher.file_merge``), metadata
is filled only for objects whose body changed (``observe_changes``), and the next snapshot's
mapping is the last one's copied with those entries replaced. Every unchanged object keeps
the very same body object from snapshot to snapshot (the incremental translator relies on
it); ``objects`` lists new objects after the others, in no meaningful order
(``ObjectSnapshot.bodies()`` sorts).

What it must not do: crash or drop good objects because of bad input. A file that no longer
parses keeps its last good objects (an editor may have saved half of it) and reports the
error; every error is logged once when it appears (``config.load_error``), not at every poll.
It never imports the translator, never mutates a published snapshot, and never blocks the
event loop on file I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat as stat_module
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from watcher import metrics
from watcher.documents import FileContent, merge, read_documents
from watcher.file_merge import FileMerge
from watcher.file_tree import FileStat, FileTree, merge_order, os_reason, walk
from watcher.metadata import Clock, History, observe, observe_changes, utc_now
from watcher.objects import LoadError, ObjectKey, ObjectSnapshot

# The event loop wakes at most this often for inotify events (a busy log file in the tree
# must not spin it); changes are still seen at once after a quiet spell.
_MIN_GAP = 0.01

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Scan:
    """The files found under some paths, in merge order, and the paths that could not be read."""

    files: dict[str, FileStat]
    errors: tuple[LoadError, ...] = ()


def scan_paths(paths: Iterable[Path]) -> Scan:
    """Find the files to load: each path in turn, directories expanded in sorted order."""
    files: dict[str, FileStat] = {}
    errors: list[LoadError] = []
    for path in paths:
        name = str(path)
        try:
            result = os.stat(name)
        except OSError as exc:
            errors.append(LoadError(name, os_reason(exc)))
            continue
        if not stat_module.S_ISDIR(result.st_mode):
            files.setdefault(name, FileStat.of(result))
            continue
        found = walk(name, (result.st_dev, result.st_ino), {})
        order = merge_order(name)
        errors.extend(found.errors[directory] for directory in sorted(found.errors, key=order))
        for file in sorted(found.files, key=order):
            files.setdefault(file, found.files[file])
    return Scan(files, tuple(errors))


def load_paths(paths: Sequence[Path], *, now: Clock = utc_now) -> ObjectSnapshot:
    """One snapshot (version 1) of everything in ``paths``; errors are in the snapshot."""
    scan = scan_paths(paths)
    contents: list[FileContent] = []
    for path in scan.files:
        data = _read(path)
        if isinstance(data, LoadError):
            contents.append(FileContent(data.source, errors=(data,), parsed=False))
        else:
            contents.append(read_documents(data, path, is_json=_is_json(path)))
    objects, errors = merge(contents)
    history = observe(History(), objects, now)
    snapshot = ObjectSnapshot(1, history.bodies(), scan.errors + errors)
    _log_new(snapshot.errors, frozenset())
    return snapshot


@dataclass(frozen=True, slots=True)
class _CachedFile:
    """One file as last read: a digest of its bytes (None: unreadable), and what it yielded."""

    digest: bytes | None
    content: FileContent


class FileProvider:
    """Watches a directory tree and publishes a snapshot of its objects whenever it changes."""

    def __init__(
        self,
        root: Path,
        *,
        poll_interval: float = 0.05,
        debounce: float = 0.02,
        max_delay: float = 0.5,
        now: Clock = utc_now,
        events: bool = True,
        rescan_interval: float = 10.0,
    ) -> None:
        if poll_interval <= 0 or debounce < 0 or max_delay < 0:
            raise ValueError("poll_interval must be > 0; debounce and max_delay >= 0")
        self._root = root
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._max_delay = max_delay
        self._now = now
        self._tree = FileTree(str(root), events=events, rescan_interval=rescan_interval)
        self._merge = FileMerge(self._tree.order)
        self._files: dict[str, _CachedFile] = {}
        self._pending: set[str] = set()  # files whose content changed since the last build
        self._scan_errors: tuple[LoadError, ...] = ()
        self._history = History()
        self._published: ObjectSnapshot | None = None
        self._logged: frozenset[LoadError] = frozenset()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def uses_events(self) -> bool:
        """True while inotify tells what changed; False while every poll walks the tree."""
        return self._tree.uses_events

    def close(self) -> None:
        """Stop watching with inotify (later reloads poll); also done at garbage collection."""
        self._tree.close()

    async def run(self, publish: Callable[[ObjectSnapshot], None]) -> None:
        """Publish the first snapshot, then one per settled change, until cancelled."""
        await asyncio.to_thread(self._refresh)
        await self._publish(publish, first=True)
        loop = asyncio.get_running_loop()
        while True:
            await self._next_poll(loop)
            if await asyncio.to_thread(self._refresh):
                detected = loop.time()
                await self._settle()
                if await self._publish(publish):
                    metrics.DEBOUNCE_SECONDS.observe(loop.time() - detected)

    def reload(self) -> ObjectSnapshot | None:
        """Read what changed on disk now: the next snapshot, or None when nothing changed.

        For callers without an event loop (and tests); never call it while ``run`` runs.
        """
        self._refresh()
        return self._build()

    async def _next_poll(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sleep ``poll_interval``, or less when inotify has events (but at least _MIN_GAP)."""
        fd = self._tree.fileno()
        if fd is None:
            await asyncio.sleep(self._poll_interval)
            return
        await asyncio.sleep(min(_MIN_GAP, self._poll_interval))
        readable: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait({readable}, timeout=max(0.0, self._poll_interval - _MIN_GAP))
        finally:
            loop.remove_reader(fd)
            readable.cancel()

    async def _settle(self) -> None:
        """Wait for quiet: ``debounce`` without change, at most ``max_delay`` in all."""
        loop = asyncio.get_running_loop()
        first = last = loop.time()
        while True:
            deadline = min(last + self._debounce, first + self._max_delay)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self._poll_interval))
            if await asyncio.to_thread(self._refresh):
                last = loop.time()

    async def _publish(
        self, publish: Callable[[ObjectSnapshot], None], *, first: bool = False
    ) -> bool:
        """Build and publish the next snapshot; False when nothing changed."""
        snapshot = await asyncio.to_thread(self._build)
        if snapshot is None and first:
            snapshot = self._published  # reload() already built it; run() still starts with it
        if snapshot is None:
            return False
        publish(snapshot)
        return True

    def _refresh(self) -> bool:
        """Re-read what may have changed; True when any file's content or the file set changed."""
        touched = self._tree.refresh()
        changed = self._tree.errors != self._scan_errors
        self._scan_errors = self._tree.errors
        for path in touched:
            old = self._files.get(path)
            new = _read_file(path, old) if path in self._tree.files else None
            if new is None:
                if self._files.pop(path, None) is not None:
                    self._pending.add(path)
                    changed = True
                continue
            self._files[path] = new
            if old is None or new.content is not old.content:
                self._pending.add(path)
                changed = True
        return changed

    def _build(self) -> ObjectSnapshot | None:
        """The next snapshot, or None when objects and errors are what was last published."""
        files = self._files
        changes = {
            path: cached.content if (cached := files.get(path)) is not None else None
            for path in self._pending
        }
        self._pending = set()
        loaded = self._merge.apply(changes)
        self._history, published = observe_changes(self._history, loaded, self._now)
        errors = self._scan_errors + self._merge.errors()
        last = self._published
        if last is not None and not published and errors == last.errors:
            return None
        objects = _replaced(last.objects if last is not None else {}, published)
        snapshot = ObjectSnapshot((last.version if last else 0) + 1, objects, errors)
        self._published = snapshot
        self._logged = _log_new(errors, self._logged)
        return snapshot


def _replaced(
    objects: Mapping[ObjectKey, Mapping[str, Any]],
    changes: Mapping[ObjectKey, Mapping[str, Any] | None],
) -> dict[ObjectKey, Mapping[str, Any]]:
    """A copy of ``objects`` with ``changes`` applied (None: removed)."""
    result = dict(objects)
    for key, body in changes.items():
        if body is None:
            result.pop(key, None)
        else:
            result[key] = body
    return result


def _read_file(path: str, old: _CachedFile | None) -> _CachedFile | None:
    """The file's new cache entry (``old`` itself when its bytes are the same); None if gone."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        error = LoadError(path, os_reason(exc))
        content = FileContent(error.source, errors=(error,), parsed=False)
        return _CachedFile(None, _keep_last_good(content, old))
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if old is not None and old.digest == digest:
        return old
    content = read_documents(data, path, is_json=_is_json(path))
    return _CachedFile(digest, _keep_last_good(content, old))


def _keep_last_good(content: FileContent, old: _CachedFile | None) -> FileContent:
    """A file that stopped parsing keeps the objects it had, and says so in its error."""
    if content.parsed or old is None or not old.content.objects:
        return content
    count = len(old.content.objects)
    note = f"; keeping the {count} object(s) from its last version that parsed"
    errors = tuple(LoadError(error.source, error.message + note) for error in content.errors)
    return replace(content, objects=old.content.objects, errors=errors)


def _read(path: str) -> bytes | LoadError:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        return LoadError(path, os_reason(exc))


def _is_json(path: str) -> bool:
    return path.lower().endswith(".json")


def _log_new(errors: Sequence[LoadError], logged: frozenset[LoadError]) -> frozenset[LoadError]:
    """Log the errors not logged last time; return the set to remember."""
    for error in errors:
        if error not in logged:
            log.warning("config.load_error", source=error.source, message=error.message)
    return frozenset(errors)
