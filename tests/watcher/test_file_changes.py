"""Changes under a watched tree (watcher.files.FileProvider.reload), with inotify and polling.

Every snapshot is checked against a fresh ``load_paths`` of the same tree (same objects and
errors, apart from the metadata the provider fills in), and every published snapshot must
still equal what it was when it was published (snapshots are never mutated).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.files import FileProvider, load_paths
from watcher.inotify import Inotify
from watcher.objects import ObjectKey, ObjectSnapshot

FILLED = ("uid", "generation", "creationTimestamp", "resourceVersion")


class Clock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 22, 3, 13, 40, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


class Watched:
    """A provider on ``root`` whose every snapshot is checked as it is published."""

    def __init__(self, root: Path, events: bool, **options: Any) -> None:
        self.root = root
        self.provider = FileProvider(root, now=Clock(), events=events, **options)
        self.published: list[tuple[ObjectSnapshot, dict[ObjectKey, Any]]] = []

    def reload(self) -> ObjectSnapshot | None:
        snapshot = self.provider.reload()
        if snapshot is not None:
            assert _unfilled(snapshot) == _unfilled(load_paths([self.root]))
            assert snapshot.errors == load_paths([self.root]).errors
            self.published.append((snapshot, copy.deepcopy(dict(snapshot.objects))))
        return snapshot

    def changed(self) -> ObjectSnapshot:
        snapshot = self.reload()
        assert snapshot is not None, "the change was not seen"
        return snapshot

    def check_never_mutated(self) -> None:
        for snapshot, objects in self.published:
            assert dict(snapshot.objects) == objects


@pytest.fixture(params=[True, False], ids=["inotify", "polling"])
def events(request: pytest.FixtureRequest) -> bool:
    if request.param:
        available = Inotify.open()
        if available is None:
            pytest.skip("inotify is not available here")
        available.close()
    return bool(request.param)


@pytest.fixture
def watched(tmp_path: Path, events: bool) -> Iterator[Watched]:
    root = tmp_path / "config"
    root.mkdir()
    watch = Watched(root, events)
    yield watch
    assert watch.provider.uses_events == events
    watch.check_never_mutated()
    watch.provider.close()


def _unfilled(snapshot: ObjectSnapshot) -> dict[ObjectKey, Any]:
    """The objects without the metadata the provider fills in (uid, generation, ...)."""
    result: dict[ObjectKey, Any] = {}
    for key, body in snapshot.objects.items():
        metadata = {k: v for k, v in body["metadata"].items() if k not in FILLED}
        result[key] = {**body, "metadata": metadata}
    return result


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _service(name: str, port: int = 80) -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{port}]}}\n"


def _key(name: str) -> ObjectKey:
    return ObjectKey("Service", "default", name)


def _port(snapshot: ObjectSnapshot, name: str) -> int:
    port: int = snapshot.objects[_key(name)]["spec"]["ports"][0]
    return port


def _meta(snapshot: ObjectSnapshot, name: str) -> Mapping[str, Any]:
    metadata: Mapping[str, Any] = snapshot.objects[_key(name)]["metadata"]
    return metadata


def test_same_object_in_two_files_edited_and_deleted(watched: Watched) -> None:
    """The first file in path order wins; editing the other changes nothing; deleting moves it."""
    first_path, second_path = watched.root / "a/z.yaml", watched.root / "b.yaml"
    _write(first_path, _service("s", 80))
    _write(second_path, _service("s", 90))
    first = watched.changed()
    assert _port(first, "s") == 80
    assert [error.source for error in first.errors] == [str(second_path)]
    _write(second_path, _service("s", 91))
    assert watched.reload() is None, "the losing copy changed: nothing to publish"
    _write(first_path, _service("s", 81))
    edited = watched.changed()
    assert (_port(edited, "s"), _meta(edited, "s")["generation"]) == (81, 2)
    first_path.unlink()
    moved = watched.changed()
    assert (_port(moved, "s"), moved.errors) == (91, ())
    assert _meta(moved, "s")["uid"] == _meta(first, "s")["uid"]
    assert _meta(moved, "s")["generation"] == 3
    _write(first_path, _service("s", 82))
    back = watched.changed()
    assert _port(back, "s") == 82
    assert [error.source for error in back.errors] == [str(second_path)]


def test_file_replaced_by_a_directory_and_back(watched: Watched) -> None:
    """A file turned into a directory of the same name is walked; turned back, it is read."""
    path = watched.root / "x.yaml"
    _write(path, _service("x"))
    assert set(watched.changed().objects) == {_key("x")}
    path.unlink()
    _write(path / "inner.yaml", _service("inner"))
    assert set(watched.changed().objects) == {_key("inner")}
    shutil.rmtree(path)
    _write(path, _service("x"))
    assert set(watched.changed().objects) == {_key("x")}


def test_deep_directories_created_edited_renamed_and_removed(watched: Watched) -> None:
    """Files deep in new directories are seen; a renamed tree keeps its objects' bodies."""
    deep = watched.root / "team/a/b/c/d/e/s1.yaml"
    _write(deep, _service("s1", 80))
    watched.changed()
    _write(deep, _service("s1", 81))
    assert _port(watched.changed(), "s1") == 81
    _write(watched.root / "team/a/b/x/y/z/s2.yaml", _service("s2"))
    both = watched.changed()
    assert set(both.objects) == {_key("s1"), _key("s2")}
    os.rename(watched.root / "team", watched.root / "renamed")
    assert watched.reload() is None, "the same objects, from other paths"
    moved = watched.root / "renamed/a/b/c/d/e/s1.yaml"
    _write(moved, _service("s1", 82))
    edited = watched.changed()
    assert _port(edited, "s1") == 82
    assert edited.objects[_key("s2")] is both.objects[_key("s2")]
    shutil.rmtree(watched.root / "renamed")
    assert dict(watched.changed().objects) == {}


def test_unchanged_bodies_keep_their_identity(watched: Watched) -> None:
    """One edit among thirty files: the other 29 bodies are the very same objects."""
    for number in range(30):
        _write(watched.root / f"d{number % 4}/s{number}.yaml", _service(f"s{number}"))
    first = watched.changed()
    _write(watched.root / "d1/s5.yaml", _service("s5", 8080))
    second = watched.changed()
    assert second.objects is not first.objects
    same = [key for key in first.objects if second.objects[key] is first.objects[key]]
    assert sorted(same) == sorted(set(first.objects) - {_key("s5")})
    assert _port(first, "s5") == 80, "the earlier snapshot is untouched"
    assert _port(second, "s5") == 8080


def test_symbolic_links_outside_the_tree_are_followed(watched: Watched, tmp_path: Path) -> None:
    """Edits of a linked file's target, in a linked directory, and a re-pointed link are seen."""
    outside = tmp_path / "outside"
    _write(outside / "file.yaml", _service("f"))
    _write(outside / "dir/d.yaml", _service("d"))
    _write(outside / "dir2/e.yaml", _service("e"))
    os.symlink(outside / "file.yaml", watched.root / "link.yaml")
    os.symlink(outside / "dir", watched.root / "linked")
    assert set(watched.changed().objects) == {_key("f"), _key("d")}
    _write(outside / "file.yaml", _service("f", 81))
    assert _port(watched.changed(), "f") == 81
    _write(outside / "dir/d.yaml", _service("d", 82))
    assert _port(watched.changed(), "d") == 82
    os.symlink(outside / "dir2", watched.root / ".linked.tmp")
    os.replace(watched.root / ".linked.tmp", watched.root / "linked")
    assert set(watched.changed().objects) == {_key("f"), _key("e")}


def test_dot_names_are_ignored_until_renamed(watched: Watched) -> None:
    """Writes to dot files and dot directories publish nothing; renaming into view does."""
    _write(watched.root / "keep.yaml", _service("keep"))
    watched.changed()
    _write(watched.root / ".s.yaml.tmp", _service("s"))
    _write(watched.root / ".git/s.yaml", _service("git"))
    assert watched.reload() is None
    os.replace(watched.root / ".s.yaml.tmp", watched.root / "s.yaml")
    assert set(watched.changed().objects) == {_key("keep"), _key("s")}


def test_root_removed_and_recreated(watched: Watched) -> None:
    """Removing the watched directory empties the snapshot with an error; recreating loads it."""
    _write(watched.root / "sub/s.yaml", _service("s"))
    watched.changed()
    shutil.rmtree(watched.root)
    gone = watched.changed()
    assert (dict(gone.objects), [e.message for e in gone.errors]) == (
        {},
        ["no such file or directory"],
    )
    _write(watched.root / "t.yaml", _service("t"))
    back = watched.changed()
    assert (set(back.objects), back.errors) == ({_key("t")}, ())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_directory_is_an_error_until_readable(watched: Watched) -> None:
    """A directory that cannot be listed is reported; once readable again it is loaded."""
    locked = watched.root / "locked"
    _write(locked / "s.yaml", _service("s"))
    watched.changed()
    locked.chmod(0)
    try:
        hidden = watched.changed()
        assert [error.source for error in hidden.errors] == [str(locked)]
        assert hidden.errors[0].message.startswith("cannot list directory")
    finally:
        locked.chmod(0o755)
    assert set(watched.changed().objects) == {_key("s")}


def test_lost_events_are_recovered_by_a_rescan(tmp_path: Path) -> None:
    """When the inotify queue overflows (events lost), the next reload walks the whole tree."""
    watch = Watched(tmp_path, events=True)
    _write(tmp_path / "s.yaml", _service("s", 80))
    watch.changed()
    if not watch.provider.uses_events:
        pytest.skip("inotify is not available here")
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    with open(tmp_path / "noise-a.txt", "wb") as a, open(tmp_path / "noise-b.txt", "wb") as b:
        for _ in range(limit // 2 + 100):  # alternating, so the kernel cannot merge them
            a.write(b"x")
            a.flush()
            b.write(b"x")
            b.flush()
    _write(tmp_path / "s.yaml", _service("s", 81))  # its events are lost: the queue is full
    assert _port(watch.changed(), "s") == 81
    watch.provider.close()


def test_periodic_rescan_sees_what_events_cannot(tmp_path: Path) -> None:
    """An in-place edit through a hard link outside the tree is seen by the periodic rescan."""
    outside = tmp_path / "outside.yaml"
    root = tmp_path / "config"
    _write(outside, _service("h", 80))
    root.mkdir()
    os.link(outside, root / "h.yaml")
    watch = Watched(root, events=True, rescan_interval=0.0)
    watch.changed()
    with open(outside, "r+") as file:  # the same inode: no event in the watched directory
        file.write(_service("h", 81))
    assert _port(watch.changed(), "h") == 81
    watch.provider.close()


@pytest.mark.parametrize("events_on", [True, False], ids=["inotify", "polling"])
def test_run_publishes_edits(tmp_path: Path, events_on: bool) -> None:
    """``run`` publishes the first snapshot and each edit, with inotify and by polling."""
    path = tmp_path / "s.yaml"
    _write(path, _service("s", 80))

    async def main() -> None:
        queue: asyncio.Queue[ObjectSnapshot] = asyncio.Queue()
        provider = FileProvider(tmp_path, poll_interval=0.01, events=events_on, now=Clock())
        task = asyncio.create_task(provider.run(queue.put_nowait))
        try:
            async with asyncio.timeout(5):
                assert _port(await queue.get(), "s") == 80
                _write(path, _service("s", 81))
                assert _port(await queue.get(), "s") == 81
                path.unlink()
                assert dict((await queue.get()).objects) == {}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_inotify_wakes_the_provider_before_the_poll_interval(tmp_path: Path) -> None:
    """With inotify, an edit is published at once, not at the next (one minute) poll."""
    if Inotify.open() is None:
        pytest.skip("inotify is not available here")

    async def main() -> None:
        queue: asyncio.Queue[ObjectSnapshot] = asyncio.Queue()
        provider = FileProvider(tmp_path, poll_interval=60, debounce=0, max_delay=0, now=Clock())
        task = asyncio.create_task(provider.run(queue.put_nowait))
        try:
            async with asyncio.timeout(5):
                assert dict((await queue.get()).objects) == {}
                _write(tmp_path / "s.yaml", _service("s"))
                assert set((await queue.get()).objects) == {_key("s")}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
