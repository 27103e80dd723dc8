"""Incremental merging (watcher.file_merge.FileMerge) gives what merging every file gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.documents import FileContent, LoadedObject, merge
from watcher.file_merge import FileMerge
from watcher.file_tree import merge_order
from watcher.objects import LoadError, ObjectKey

ROOT = "/config"
ORDER = merge_order(ROOT)
# Names chosen so that sorting by path parts differs from sorting the strings ("a/z" first).
PATHS = [f"{ROOT}/{name}" for name in ("a.yaml", "a/z.yaml", "a-b.yaml", "b.yaml", "x/y/c.yaml")]
KEYS = [ObjectKey("Service", "default", name) for name in "pqr"] + [ObjectKey("Namespace", "", "p")]


def _content(path: str, keys: list[ObjectKey], with_error: bool) -> FileContent:
    objects = tuple(
        LoadedObject(key, {"kind": key.kind, "spec": {"from": path, "n": n}}, f"document {n + 1}")
        for n, key in enumerate(keys)
    )
    errors = (LoadError(path, "document 9: missing kind"),) if with_error else ()
    return FileContent(path, objects, errors)


@st.composite
def _changes(draw: st.DrawFn) -> dict[str, FileContent | None]:
    """One to three files, each set to new content (duplicates likely) or removed."""
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True))
    changes: dict[str, FileContent | None] = {}
    for path in paths:
        if draw(st.integers(0, 4)) == 0:
            changes[path] = None
        else:
            keys = draw(st.lists(st.sampled_from(KEYS), max_size=3))
            changes[path] = _content(path, keys, draw(st.booleans()))
    return changes


def _full_merge(
    contents: Mapping[str, FileContent],
) -> tuple[dict[ObjectKey, Mapping[str, Any]], tuple[LoadError, ...]]:
    return merge(contents[path] for path in sorted(contents, key=ORDER))


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(_changes(), min_size=1, max_size=10), st.data())
def test_random_changes_merge_as_a_full_merge_does(
    steps: list[dict[str, FileContent | None]], data: st.DataObject
) -> None:
    """After each change: the same objects (the very bodies), errors, and changed keys."""
    merged = FileMerge(ORDER)
    contents: dict[str, FileContent] = {}
    before: dict[ObjectKey, Mapping[str, Any]] = {}
    for drawn in steps:
        changes = dict(drawn)
        if contents and data.draw(st.booleans()):  # a file given again, unchanged
            same = data.draw(st.sampled_from(sorted(contents)))
            changes[same] = contents[same]
        for path, content in changes.items():
            if content is None:
                contents.pop(path, None)
            else:
                contents[path] = content
        changed = merged.apply(changes)
        objects, errors = _full_merge(contents)
        assert merged.objects == objects
        assert all(merged.objects[key] is body for key, body in objects.items())
        assert merged.errors() == errors
        expected = {
            key: objects.get(key)
            for key in before.keys() | objects.keys()
            if before.get(key) is not objects.get(key)
        }
        assert changed == expected
        before = objects


def test_editing_the_losing_definition_changes_nothing_merged() -> None:
    """An object defined in two files: editing the later file's copy keeps the first's body."""
    merged = FileMerge(ORDER)
    first = _content(PATHS[0], [KEYS[0]], with_error=False)
    merged.apply({PATHS[0]: first, PATHS[3]: _content(PATHS[3], [KEYS[0]], with_error=False)})
    body = merged.objects[KEYS[0]]
    assert merged.apply({PATHS[3]: _content(PATHS[3], [KEYS[0], KEYS[0]], False)}) == {}
    assert merged.objects[KEYS[0]] is body
    assert [error.message for error in merged.errors()] == [
        f"document {n}: Service default/p is already defined in {PATHS[0]} (document 1); "
        "ignored here"
        for n in (1, 2)
    ]
    changed = merged.apply({PATHS[0]: None})
    assert changed[KEYS[0]] is merged.objects[KEYS[0]]
    assert merged.objects[KEYS[0]]["spec"]["from"] == PATHS[3]
    assert [error.message for error in merged.errors()] == [
        f"document 2: Service default/p is already defined in {PATHS[3]} (document 1); ignored here"
    ]
