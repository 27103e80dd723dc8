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

How the provider watches: it polls ``os.scandir`` stat results (mtime, ctime, size, inode)
every ``poll_interval`` seconds, in a worker thread so the event loop stays free, and
re-reads only files whose stat changed (or whose mtime is too recent to trust, since two
writes in one clock tick can leave the same stat). A file whose bytes did not change is not
parsed again. After a change it waits until nothing has changed for ``debounce`` seconds, but
never more than ``max_delay`` after the first change, and publishes once, only if objects or
errors differ from the last snapshot. Versions count up from 1.

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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import structlog

from watcher.documents import FileContent, merge, read_documents
from watcher.metadata import Clock, History, observe, utc_now
from watcher.objects import LoadError, ObjectSnapshot

SUFFIXES = (".yaml", ".yml", ".json")

# A file modified this recently may change again without changing its stat (same size, same
# coarse mtime tick), so it is read again at each poll until it is older than this.
_RACY_NS = 2_000_000_000

log = structlog.get_logger(__name__)


class FileStat(NamedTuple):
    """What a poll compares to decide whether a file must be read again."""

    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, result: os.stat_result) -> FileStat:
        return cls(result.st_mtime_ns, result.st_ctime_ns, result.st_size, result.st_ino)


@dataclass(frozen=True, slots=True)
class Scan:
    """The files found under some paths, in merge order, and the paths that could not be read."""

    files: Mapping[Path, FileStat]
    errors: tuple[LoadError, ...] = ()


def scan_paths(paths: Iterable[Path]) -> Scan:
    """Find the files to load: each path in turn, directories expanded in sorted order."""
    files: dict[Path, FileStat] = {}
    errors: list[LoadError] = []
    for path in paths:
        try:
            result = path.stat()
        except OSError as exc:
            errors.append(LoadError(str(path), _os_reason(exc)))
            continue
        if not stat_module.S_ISDIR(result.st_mode):
            files.setdefault(path, FileStat.of(result))
            continue
        found, problems = _scan_tree(path, (result.st_dev, result.st_ino))
        errors.extend(problems)
        for file, file_stat in found:
            files.setdefault(file, file_stat)
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
            contents.append(read_documents(data, str(path), is_json=_is_json(path)))
    objects, errors = merge(contents)
    history = observe(History(), objects, now)
    snapshot = ObjectSnapshot(1, history.bodies(), scan.errors + errors)
    _log_new(snapshot.errors, frozenset())
    return snapshot


@dataclass(frozen=True, slots=True)
class _CachedFile:
    """One file as last read: its stat, a digest of its bytes, and what it yielded."""

    stat: FileStat
    digest: bytes | None
    content: FileContent
    racy: bool


class FileProvider:
    """Watches a directory tree and publishes a snapshot of its objects whenever it changes."""

    def __init__(
        self,
        root: Path,
        *,
        poll_interval: float = 0.05,
        debounce: float = 0.05,
        max_delay: float = 0.5,
        now: Clock = utc_now,
    ) -> None:
        if poll_interval <= 0 or debounce < 0 or max_delay < 0:
            raise ValueError("poll_interval must be > 0; debounce and max_delay >= 0")
        self._root = root
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._max_delay = max_delay
        self._now = now
        self._files: dict[Path, _CachedFile] = {}
        self._scan_errors: tuple[LoadError, ...] = ()
        self._history = History()
        self._published: ObjectSnapshot | None = None
        self._logged: frozenset[LoadError] = frozenset()

    @property
    def root(self) -> Path:
        return self._root

    async def run(self, publish: Callable[[ObjectSnapshot], None]) -> None:
        """Publish the first snapshot, then one per settled change, until cancelled."""
        await asyncio.to_thread(self._refresh)
        await self._publish(publish, first=True)
        while True:
            await asyncio.sleep(self._poll_interval)
            if await asyncio.to_thread(self._refresh):
                await self._settle()
                await self._publish(publish)

    def reload(self) -> ObjectSnapshot | None:
        """Read what changed on disk now: the next snapshot, or None when nothing changed.

        For callers without an event loop (and tests); never call it while ``run`` runs.
        """
        self._refresh()
        return self._build()

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
    ) -> None:
        snapshot = await asyncio.to_thread(self._build)
        if snapshot is None and first:
            snapshot = self._published  # reload() already built it; run() still starts with it
        if snapshot is not None:
            publish(snapshot)

    def _refresh(self) -> bool:
        """Scan, re-read what changed; True when any file's content or the file set changed."""
        scan = scan_paths([self._root])
        now_ns = time.time_ns()
        changed = scan.errors != self._scan_errors
        files: dict[Path, _CachedFile] = {}
        for path, file_stat in scan.files.items():
            old = self._files.get(path)
            new = _refresh_file(path, file_stat, old, now_ns)
            if new is None:
                continue
            files[path] = new
            changed = changed or old is None or new.content is not old.content
        changed = changed or len(files) != len(self._files)
        self._files, self._scan_errors = files, scan.errors
        return changed

    def _build(self) -> ObjectSnapshot | None:
        """The next snapshot, or None when objects and errors are what was last published."""
        objects, errors = merge(cached.content for cached in self._files.values())
        errors = self._scan_errors + errors
        self._history = observe(self._history, objects, self._now)
        bodies = self._history.bodies()
        last = self._published
        if last is not None and errors == last.errors and bodies == last.objects:
            return None
        snapshot = ObjectSnapshot((last.version if last else 0) + 1, bodies, errors)
        self._published = snapshot
        self._logged = _log_new(errors, self._logged)
        return snapshot


def _refresh_file(
    path: Path, file_stat: FileStat, old: _CachedFile | None, now_ns: int
) -> _CachedFile | None:
    """The file's new cache entry (``old`` itself when untouched); None if it vanished."""
    if old is not None and old.stat == file_stat and not old.racy:
        return old
    racy = now_ns - file_stat.mtime_ns < _RACY_NS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        error = LoadError(str(path), _os_reason(exc))
        content = FileContent(error.source, errors=(error,), parsed=False)
        return _CachedFile(file_stat, None, _keep_last_good(content, old), racy)
    digest = hashlib.blake2b(data, digest_size=16).digest()
    if old is not None and old.digest == digest:
        return replace(old, stat=file_stat, racy=racy)
    content = read_documents(data, str(path), is_json=_is_json(path))
    return _CachedFile(file_stat, digest, _keep_last_good(content, old), racy)


def _keep_last_good(content: FileContent, old: _CachedFile | None) -> FileContent:
    """A file that stopped parsing keeps the objects it had, and says so in its error."""
    if content.parsed or old is None or not old.content.objects:
        return content
    count = len(old.content.objects)
    note = f"; keeping the {count} object(s) from its last version that parsed"
    errors = tuple(LoadError(error.source, error.message + note) for error in content.errors)
    return replace(content, objects=old.content.objects, errors=errors)


def _scan_tree(
    root: Path, identity: tuple[int, int]
) -> tuple[list[tuple[Path, FileStat]], list[LoadError]]:
    """Every YAML/JSON file under ``root`` (device and inode ``identity``), sorted by path."""
    found: list[tuple[tuple[str, ...], Path, FileStat]] = []
    errors: list[LoadError] = []
    seen = {identity}
    pending: list[tuple[Path, tuple[str, ...]]] = [(root, ())]
    while pending:
        directory, parts = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    _scan_entry(entry, parts, seen, found, pending)
        except FileNotFoundError:
            continue  # removed while we looked; the next poll sees the rest
        except OSError as exc:
            errors.append(LoadError(str(directory), _os_reason(exc, "list directory")))
    found.sort(key=lambda item: item[0])
    return [(path, file_stat) for _, path, file_stat in found], errors


def _scan_entry(
    entry: os.DirEntry[str],
    parts: tuple[str, ...],
    seen: set[tuple[int, int]],
    found: list[tuple[tuple[str, ...], Path, FileStat]],
    pending: list[tuple[Path, tuple[str, ...]]],
) -> None:
    """File one directory entry: a file to load, a directory to descend into, or nothing."""
    if entry.name.startswith("."):
        return
    try:
        if entry.is_dir():
            result = entry.stat()
            identity = (result.st_dev, result.st_ino)
            if identity not in seen:  # a symbolic link loop is walked once
                seen.add(identity)
                pending.append((Path(entry.path), (*parts, entry.name)))
        elif entry.name.lower().endswith(SUFFIXES) and entry.is_file():
            found.append(((*parts, entry.name), Path(entry.path), FileStat.of(entry.stat())))
    except OSError:
        return  # vanished, or a dangling link: nothing to load


def _read(path: Path) -> bytes | LoadError:
    try:
        return path.read_bytes()
    except OSError as exc:
        return LoadError(str(path), _os_reason(exc))


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _os_reason(exc: OSError, doing: str = "read") -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return f"cannot {doing}: {exc.strerror or exc}"


def _log_new(errors: Sequence[LoadError], logged: frozenset[LoadError]) -> frozenset[LoadError]:
    """Log the errors not logged last time; return the set to remember."""
    for error in errors:
        if error not in logged:
            log.warning("config.load_error", source=error.source, message=error.message)
    return frozenset(errors)
