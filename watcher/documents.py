"""Turn the bytes of one YAML or JSON file into Kubernetes objects, and merge many files.

``watcher.files`` calls ``read_documents`` for every file it (re)reads and ``merge`` to put
the files together in path order. Both are pure: no file system, no clock, no logging; the
caller reads the bytes, keeps the results per file and decides what to log.

What a file may hold:

- YAML, one or more documents (``---``), read with the C safe loader; timestamps stay strings
  (as Kubernetes' YAML-to-JSON conversion keeps them). Empty documents are skipped.
- JSON, a single value.
- In either, a ``kind: List`` whose ``items`` are objects (as ``kubectl get -o yaml`` prints).

Errors are values (``LoadError``), never exceptions; a bad document never hides a good one::

    file does not parse          -> FileContent(parsed=False), one LoadError with line/column
    document is not a mapping,   -> LoadError "document N: ...", that document skipped
      lacks kind / apiVersion /
      metadata.name
    kind not in KINDS, or an     -> LoadError "document N: ignored: kind K (apiVersion) ...",
      API group not allowed         skipped
    same ObjectKey twice         -> the first (in path order) wins, LoadError on the other

Documents are numbered from 1 in messages; items of a List are "document N, item M".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from watcher.objects import CLUSTER_SCOPED, KINDS, LoadError, ObjectKey

DEFAULT_NAMESPACE = "default"


class _Loader(yaml.CSafeLoader):
    """The C safe loader, except that timestamps stay strings, as they are in Kubernetes JSON."""


def _timestamp_as_string(loader: _Loader, node: yaml.Node) -> str:
    return str(loader.construct_yaml_str(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


@dataclass(frozen=True, slots=True)
class LoadedObject:
    """One object read from a file: its identity, its body, and where in the file it was."""

    key: ObjectKey
    body: Mapping[str, Any]
    where: str


@dataclass(frozen=True, slots=True)
class FileContent:
    """Everything one file yielded. ``parsed`` is False when the file as a whole was unreadable."""

    source: str
    objects: tuple[LoadedObject, ...] = ()
    errors: tuple[LoadError, ...] = ()
    parsed: bool = True


def read_documents(data: bytes, source: str, *, is_json: bool) -> FileContent:
    """Parse ``data`` (the bytes of the file ``source``) into objects and errors."""
    try:
        documents = _parse_json(data) if is_json else list(yaml.load_all(data, Loader=_Loader))
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return FileContent(source, errors=(LoadError(source, _parse_message(exc)),), parsed=False)
    objects: list[LoadedObject] = []
    errors: list[LoadError] = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        for item in _load_document(document, f"document {number}", source):
            if isinstance(item, LoadError):
                errors.append(item)
            else:
                objects.append(item)
    return FileContent(source, tuple(objects), tuple(errors))


def merge(
    files: Iterable[FileContent],
) -> tuple[dict[ObjectKey, Mapping[str, Any]], tuple[LoadError, ...]]:
    """Put files together in the order given; the first definition of an object wins."""
    objects: dict[ObjectKey, Mapping[str, Any]] = {}
    origins: dict[ObjectKey, str] = {}
    errors: list[LoadError] = []
    for content in files:
        errors.extend(content.errors)
        for loaded in content.objects:
            first = origins.get(loaded.key)
            if first is None:
                objects[loaded.key] = loaded.body
                origins[loaded.key] = f"{content.source} ({loaded.where})"
                continue
            message = f"{loaded.where}: {loaded.key} is already defined in {first}; ignored here"
            errors.append(LoadError(content.source, message))
    return objects, tuple(errors)


def _parse_json(data: bytes) -> list[Any]:
    if not data.strip():
        return []
    return [json.loads(data)]


def _parse_message(exc: BaseException) -> str:
    """A one-line reason, with line and column (counted from 1) when the parser knows them."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        context = f" ({exc.context})" if exc.context else ""
        return f"invalid YAML at {where}: {exc.problem}{context}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 text: {exc.reason} at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "invalid document: nested too deeply"
    kind = "YAML" if isinstance(exc, yaml.YAMLError) else "document"
    return f"invalid {kind}: {' '.join(str(exc).split())}"


def _load_document(document: object, where: str, source: str) -> Iterator[LoadedObject | LoadError]:
    """Check one document (or List item) and yield the object, or the reason it is skipped."""
    if not isinstance(document, Mapping):
        yield LoadError(source, f"{where}: expected an object (a mapping), found {_noun(document)}")
        return
    kind = document.get("kind")
    if not isinstance(kind, str) or not kind:
        yield LoadError(source, f"{where}: missing kind")
        return
    if kind == "List":
        yield from _load_list(document, where, source)
        return
    api_version = document.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        yield LoadError(source, f"{where}: {kind} is missing apiVersion")
        return
    if api_version.rpartition("/")[0] not in KINDS.get(kind, frozenset()):
        message = f"{where}: ignored: kind {kind} ({api_version}) is not one gateway-xds reads"
        yield LoadError(source, message)
        return
    problem = _json_problem(document)
    if problem is not None:
        yield LoadError(source, f"{where}: {kind} cannot be represented as JSON: {problem}")
        return
    yield _identify(document, kind, where, source)


def _load_list(
    document: Mapping[Any, Any], where: str, source: str
) -> Iterator[LoadedObject | LoadError]:
    items = document.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        yield LoadError(source, f"{where}: List items must be a list, found {_noun(items)}")
        return
    for number, item in enumerate(items, start=1):
        yield from _load_document(item, f"{where}, item {number}", source)


def _identify(
    document: Mapping[Any, Any], kind: str, where: str, source: str
) -> LoadedObject | LoadError:
    """Key the object; default its namespace as ``kubectl apply`` would."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        return LoadError(source, f"{where}: {kind} has no metadata.name")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return LoadError(source, f"{where}: {kind} has no metadata.name")
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        return LoadError(source, f"{where}: {kind} {name}: metadata.namespace must be a string")
    fixed = dict(metadata)
    if kind in CLUSTER_SCOPED:
        fixed.pop("namespace", None)
        namespace = ""
    else:
        namespace = namespace or DEFAULT_NAMESPACE
        fixed["namespace"] = namespace
    return LoadedObject(ObjectKey(kind, namespace, name), {**document, "metadata": fixed}, where)


def _json_problem(document: Mapping[Any, Any]) -> str | None:
    """Why the document is not plain JSON (binary values, sets, cycles), or None."""
    try:
        json.dumps(document)
    except (TypeError, ValueError, RecursionError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _noun(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a value of type {type(value).__name__}"
