"""The objects of many files merged in path order, kept up to date one changed file at a time.

Who calls it: ``watcher.files.FileProvider``, with the files whose content changed since its
last snapshot. The result is always what ``watcher.documents.merge`` would give for every
file in path order (tests compare the two): the first definition of an object wins, and each
file's errors are its own followed by one per object it defines again::

    apply({path: content or None})  -> the objects whose winning body changed (None: gone)
    objects                            every object's winning body (read-only for callers)
    errors()                        -> every file's errors, files in path order

Only the objects the changed files define (before or after the change) are looked at again,
and only the files that define those same objects have their errors recomputed, so one
edited file among thousands costs about as much as that file.

What it must not do: touch the file system, copy bodies, or mutate the contents it is given.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any

from watcher.documents import FileContent
from watcher.objects import LoadError, ObjectKey

OrderKey = Callable[[str], tuple[str, ...]]


class FileMerge:
    """Every file's content, and the merged objects and errors, in the order ``order_key`` says."""

    def __init__(self, order_key: OrderKey) -> None:
        self._order_key = order_key
        self._keys: dict[str, tuple[str, ...]] = {}  # path -> order key, computed once
        self._contents: dict[str, FileContent] = {}
        self._definers: dict[ObjectKey, list[str]] = {}  # one entry per definition, in order
        self.objects: dict[ObjectKey, Mapping[str, Any]] = {}
        self._file_errors: dict[str, tuple[LoadError, ...]] = {}  # only files with errors
        self._errors: tuple[LoadError, ...] | None = ()

    def apply(
        self, changes: Mapping[str, FileContent | None]
    ) -> dict[ObjectKey, Mapping[str, Any] | None]:
        """Take new contents (None: the file is gone); the objects whose body changed."""
        touched: dict[ObjectKey, int] = {}  # key -> how many definitions it had before
        recheck = set(changes)
        for path in sorted(changes, key=self._order):
            old, new = self._contents.get(path), changes[path]
            if old is new:
                continue
            if old is not None:
                self._undefine(path, old, touched)
                del self._contents[path]
            if new is not None:
                self._contents[path] = new
                self._define(path, new, touched)
        changed: dict[ObjectKey, Mapping[str, Any] | None] = {}
        for key, before in touched.items():
            definers = self._definers.get(key)
            body = self._winner(key, definers)
            if body is not self.objects.get(key):
                changed[key] = body
                if body is None:
                    del self.objects[key]
                else:
                    self.objects[key] = body
            if definers and (before > 1 or len(definers) > 1):
                recheck.update(definers)
        for path in recheck:
            self._set_file_errors(path)
        for path in changes:
            if path not in self._contents:
                self._keys.pop(path, None)
        return changed

    def errors(self) -> tuple[LoadError, ...]:
        """Every file's errors, in path order."""
        if self._errors is None:
            ordered = sorted(self._file_errors, key=self._order)
            self._errors = tuple(error for path in ordered for error in self._file_errors[path])
        return self._errors

    def _order(self, path: str) -> tuple[str, ...]:
        key = self._keys.get(path)
        if key is None:
            key = self._keys[path] = self._order_key(path)
        return key

    def _undefine(self, path: str, content: FileContent, touched: dict[ObjectKey, int]) -> None:
        for key in {loaded.key for loaded in content.objects}:
            definers = self._definers[key]
            touched.setdefault(key, len(definers))
            if len(definers) == 1:
                del self._definers[key]
            else:
                self._definers[key] = [other for other in definers if other != path]

    def _define(self, path: str, content: FileContent, touched: dict[ObjectKey, int]) -> None:
        for loaded in content.objects:
            definers = self._definers.get(loaded.key)
            touched.setdefault(loaded.key, len(definers) if definers else 0)
            if definers is None:
                self._definers[loaded.key] = [path]
            else:
                bisect.insort_right(definers, path, key=self._order)

    def _winner(self, key: ObjectKey, definers: list[str] | None) -> Mapping[str, Any] | None:
        """The body of the first definition of ``key`` in path order, or None."""
        if not definers:
            self._definers.pop(key, None)
            return None
        for loaded in self._contents[definers[0]].objects:
            if loaded.key == key:
                return loaded.body
        raise AssertionError(f"{key} has no definition in {definers[0]}")  # pragma: no cover

    def _set_file_errors(self, path: str) -> None:
        """A file's own errors, then one per object it defines that is defined earlier."""
        self._errors = None
        content = self._contents.get(path)
        if content is None:
            self._file_errors.pop(path, None)
            return
        errors = list(content.errors)
        firsts: dict[ObjectKey, str] = {}
        for loaded in content.objects:
            first = firsts.get(loaded.key)
            if first is None:
                winner = self._definers[loaded.key][0]
                if winner == path:  # the definition that wins; later ones here refer to it
                    firsts[loaded.key] = f"{content.source} ({loaded.where})"
                    continue
                first = firsts[loaded.key] = self._where(winner, loaded.key)
            message = f"{loaded.where}: {loaded.key} is already defined in {first}; ignored here"
            errors.append(LoadError(content.source, message))
        if errors:
            self._file_errors[path] = tuple(errors)
        else:
            self._file_errors.pop(path, None)

    def _where(self, path: str, key: ObjectKey) -> str:
        content = self._contents[path]
        where = next(loaded.where for loaded in content.objects if loaded.key == key)
        return f"{content.source} ({where})"
