"""The directory watcher (watcher.files.FileProvider): first snapshot, changes, coalescing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from watcher.files import FileProvider
from watcher.objects import ObjectKey, ObjectSnapshot

DEADLINE = 5.0  # seconds any awaited snapshot may take before the test fails


class Clock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 22, 3, 13, 40, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


@dataclass
class Watch:
    """A running provider, the snapshots it published, and a way to wait for one."""

    task: asyncio.Task[None]
    queue: asyncio.Queue[ObjectSnapshot]
    seen: list[ObjectSnapshot] = field(default_factory=list)

    async def until(self, predicate: Callable[[ObjectSnapshot], bool]) -> ObjectSnapshot:
        """The first published snapshot matching ``predicate``, within DEADLINE seconds."""
        async with asyncio.timeout(DEADLINE):
            while True:
                snapshot = await self._next()
                if predicate(snapshot):
                    return snapshot

    async def _next(self) -> ObjectSnapshot:
        getter = asyncio.ensure_future(self.queue.get())
        try:
            await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getter.cancel()
        if not getter.done() or getter.cancelled():
            self.task.result()  # raises what stopped the provider
            raise AssertionError("the provider stopped")
        self.seen.append(getter.result())
        return self.seen[-1]


@contextlib.asynccontextmanager
async def _watching(root: Path, **options: Any) -> AsyncIterator[Watch]:
    queue: asyncio.Queue[ObjectSnapshot] = asyncio.Queue()
    provider = FileProvider(root, poll_interval=0.01, now=Clock(), **options)
    watch = Watch(asyncio.create_task(provider.run(queue.put_nowait)), queue)
    try:
        yield watch
    finally:
        watch.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch.task
    versions = [snapshot.version for snapshot in watch.seen]
    assert versions == list(range(1, len(versions) + 1)), "versions count up from 1"


def _run(root: Path, scenario: Callable[[Watch], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with _watching(root, **options) as watch:
            await scenario(watch)

    asyncio.run(main())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _service(name: str, port: int = 80) -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{port}]}}\n"


def _key(name: str) -> ObjectKey:
    return ObjectKey("Service", "default", name)


def _has(name: str, port: int | None = None) -> Callable[[ObjectSnapshot], bool]:
    def check(snapshot: ObjectSnapshot) -> bool:
        body = snapshot.objects.get(_key(name))
        return body is not None and (port is None or body["spec"]["ports"] == [port])

    return check


def test_first_snapshot_of_an_empty_directory(tmp_path: Path) -> None:
    """An empty directory still gives a first snapshot, version 1, with nothing in it."""

    async def scenario(watch: Watch) -> None:
        first = await watch.until(lambda _: True)
        assert (first.version, dict(first.objects), first.errors) == (1, {}, ())

    _run(tmp_path, scenario)


def test_first_snapshot_despite_a_bad_file(tmp_path: Path) -> None:
    """A bad file does not stop the first snapshot: good objects are in, the error is listed."""
    _write(tmp_path / "bad.yaml", "kind: [\n")
    _write(tmp_path / "good.yaml", _service("good"))

    async def scenario(watch: Watch) -> None:
        first = await watch.until(lambda _: True)
        assert list(first.objects) == [_key("good")]
        assert [error.source for error in first.errors] == [str(tmp_path / "bad.yaml")]

    _run(tmp_path, scenario)


def test_missing_directory_is_reported_until_it_appears(tmp_path: Path) -> None:
    """A config dir that does not exist yet is an error, then is loaded once created."""
    root = tmp_path / "config"

    async def scenario(watch: Watch) -> None:
        first = await watch.until(lambda _: True)
        assert [(e.source, e.message) for e in first.errors] == [
            (str(root), "no such file or directory")
        ]
        _write(root / "s.yaml", _service("s"))
        later = await watch.until(_has("s"))
        assert later.errors == ()

    _run(root, scenario)


def test_create_edit_delete_in_new_nested_directories(tmp_path: Path) -> None:
    """A file created in new subdirectories, edited, deleted and recreated: a snapshot each."""
    path = tmp_path / "team/a/b/c/svc.yaml"

    async def scenario(watch: Watch) -> None:
        await watch.until(lambda _: True)
        _write(path, _service("s", 80))
        meta = _meta(await watch.until(_has("s")), "s")
        assert meta["generation"] == 1
        _write(path, _service("s", 81))
        edited = _meta(await watch.until(_has("s", 81)), "s")
        assert (edited["uid"], edited["generation"]) == (meta["uid"], 2)
        assert edited["creationTimestamp"] == meta["creationTimestamp"]
        path.unlink()
        await watch.until(lambda snapshot: _key("s") not in snapshot.objects)
        _write(path, _service("s", 81))
        again = _meta(await watch.until(_has("s")), "s")
        assert again["uid"] != meta["uid"]
        assert again["generation"] == 1
        assert again["creationTimestamp"] > meta["creationTimestamp"]

    _run(tmp_path, scenario)


def test_label_change_keeps_generation(tmp_path: Path) -> None:
    """Editing only labels publishes a new body with the same generation and uid."""
    path = tmp_path / "s.yaml"
    _write(path, _service("s"))

    async def scenario(watch: Watch) -> None:
        meta = _meta(await watch.until(_has("s")), "s")
        _write(path, _service("s").replace("{name: s}", "{name: s, labels: {a: b}}"))
        labelled = await watch.until(lambda snapshot: "labels" in _meta(snapshot, "s"))
        after = _meta(labelled, "s")
        assert (after["uid"], after["generation"]) == (meta["uid"], 1)
        assert int(after["resourceVersion"]) > int(meta["resourceVersion"])

    _run(tmp_path, scenario)


def test_broken_save_keeps_the_last_good_objects(tmp_path: Path) -> None:
    """A file that stops parsing keeps its objects and reports why; fixing it clears the error."""
    path = tmp_path / "two.yaml"
    _write(path, _service("a") + "---\n" + _service("b"))
    _write(tmp_path / "other.yaml", _service("c"))

    async def scenario(watch: Watch) -> None:
        good = await watch.until(lambda _: True)
        assert len(good.objects) == 3
        _write(path, _service("a") + "---\nkind: [\n")
        broken = await watch.until(lambda snapshot: bool(snapshot.errors))
        assert broken.objects == good.objects
        (error,) = broken.errors
        assert error.source == str(path)
        assert error.message.startswith("invalid YAML at line 7, column 1:")
        assert error.message.endswith("keeping the 2 object(s) from its last version that parsed")
        _write(path, _service("a", 8080))
        fixed = await watch.until(lambda snapshot: not snapshot.errors)
        assert sorted(name for _, _, name in fixed.objects) == ["a", "c"]
        assert fixed.objects[_key("a")]["spec"] == {"ports": [8080]}

    _run(tmp_path, scenario)


def test_a_burst_of_writes_is_coalesced(tmp_path: Path) -> None:
    """Twenty files written at once give fewer snapshots than writes; the last has all twenty."""

    async def scenario(watch: Watch) -> None:
        await watch.until(lambda _: True)
        for number in range(20):
            _write(tmp_path / f"d{number % 3}/s{number}.yaml", _service(f"s{number}"))
        await watch.until(lambda snapshot: len(snapshot.objects) == 20)
        assert 2 <= len(watch.seen) <= 3  # the first snapshot, then one (rarely two) more

    _run(tmp_path, scenario, debounce=0.3, max_delay=2.0)


def test_max_delay_bounds_the_wait_while_writes_continue(tmp_path: Path) -> None:
    """Writes that never pause for ``debounce`` still publish after at most ``max_delay``."""

    async def writer() -> None:
        for number in range(1000):  # 1000 writes at 10 ms take far longer than DEADLINE
            _write(tmp_path / f"s{number}.yaml", _service(f"s{number}"))
            await asyncio.sleep(0.01)

    async def scenario(watch: Watch) -> None:
        await watch.until(lambda _: True)
        writing = asyncio.create_task(writer())
        try:
            published = await watch.until(lambda snapshot: len(snapshot.objects) > 0)
            assert not writing.done(), "published while writes were still arriving"
            assert len(published.objects) < 1000
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing

    _run(tmp_path, scenario, debounce=60.0, max_delay=0.3)


def test_nothing_published_when_nothing_changed(tmp_path: Path) -> None:
    """Rewriting the same bytes, or the same objects differently spelled, publishes nothing."""
    path = tmp_path / "s.yaml"
    _write(path, _service("s"))
    provider = FileProvider(tmp_path, now=Clock())
    first = provider.reload()
    assert first is not None
    assert first.version == 1
    _write(path, _service("s"))
    assert provider.reload() is None
    _write(
        path,
        "# same object\nkind: Service\napiVersion: v1\nmetadata:\n  name: s\n"
        "spec:\n  ports: [80]\n",
    )
    assert provider.reload() is None
    _write(tmp_path / "t.yaml", _service("t"))
    second = provider.reload()
    assert second is not None
    assert second.version == 2
    assert second.objects[_key("s")] is first.objects[_key("s")]


def test_each_error_is_logged_once(tmp_path: Path) -> None:
    """An error is logged when it appears, not again at each later snapshot."""
    bad = tmp_path / "bad.yaml"
    _write(bad, "kind: [\n")
    provider = FileProvider(tmp_path, now=Clock())
    with capture_logs() as logs:
        for number in range(3):
            _write(tmp_path / f"s{number}.yaml", _service(f"s{number}"))
            assert provider.reload() is not None
    assert [(log["event"], log["source"]) for log in logs] == [("config.load_error", str(bad))]


@pytest.mark.parametrize(
    "options",
    [{"poll_interval": 0}, {"debounce": -1}, {"max_delay": -0.5}],
    ids=["poll", "debounce", "max-delay"],
)
def test_rejects_impossible_timings(tmp_path: Path, options: dict[str, Any]) -> None:
    """A zero poll interval or a negative delay is refused at construction."""
    with pytest.raises(ValueError, match="poll_interval"):
        FileProvider(tmp_path, **options)


def _meta(snapshot: ObjectSnapshot, name: str) -> Any:
    return snapshot.objects[_key(name)]["metadata"]
