"""Parsing one file into objects and errors, and merging files (watcher.documents)."""

from __future__ import annotations

import json

import pytest

from watcher.documents import FileContent, merge, read_documents
from watcher.objects import LoadError, ObjectKey

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
spec:
  hostnames: [example.com]
"""


def _yaml(text: str, source: str = "f.yaml") -> FileContent:
    return read_documents(text.encode(), source, is_json=False)


def _keys(content: FileContent) -> list[ObjectKey]:
    return [loaded.key for loaded in content.objects]


def test_multi_document_yaml_skips_empty_documents() -> None:
    """Every document of a multi-document file is read, in order; empty ones are skipped."""
    text = "---\n" + ROUTE.format(name="a") + "---\n---\n# only a comment\n---\n"
    text += ROUTE.format(name="b")
    content = _yaml(text)
    assert content.parsed
    assert content.errors == ()
    assert _keys(content) == [
        ObjectKey("HTTPRoute", "default", "a"),
        ObjectKey("HTTPRoute", "default", "b"),
    ]
    assert content.objects[1].body["spec"] == {"hostnames": ["example.com"]}


def test_json_single_object() -> None:
    """A JSON file holds one object."""
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"}}
    content = read_documents(json.dumps(body).encode(), "s.json", is_json=True)
    assert _keys(content) == [ObjectKey("Service", "x", "s")]
    assert content.objects[0].body == body


@pytest.mark.parametrize("is_json", [True, False], ids=["json", "yaml"])
def test_list_kind_items_are_objects(is_json: bool) -> None:
    """A kind: List yields its items, each numbered in messages."""
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
            {"apiVersion": "v1", "kind": "Secret"},
        ],
    }
    content = read_documents(json.dumps(listing).encode(), "l", is_json=is_json)
    assert _keys(content) == [
        ObjectKey("Secret", "default", "tls"),
        ObjectKey("Namespace", "", "apps"),
    ]
    assert content.errors == (LoadError("l", "document 1, item 3: Secret has no metadata.name"),)


def test_namespace_defaults_and_cluster_scope() -> None:
    """Namespaced kinds default to "default"; cluster-scoped kinds have namespace ""."""
    content = _yaml(
        ROUTE.format(name="r")
        + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"
        + "metadata: {name: gc, namespace: ignored}\n"
    )
    route, gateway_class = content.objects
    assert route.key == ObjectKey("HTTPRoute", "default", "r")
    assert route.body["metadata"] == {"name": "r", "namespace": "default"}
    assert gateway_class.key == ObjectKey("GatewayClass", "", "gc")
    assert gateway_class.body["metadata"] == {"name": "gc"}


def test_timestamps_stay_strings() -> None:
    """YAML timestamps are kept as the strings Kubernetes JSON would hold."""
    content = _yaml(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
        "  creationTimestamp: 2026-11-22T03:13:40Z\n"
    )
    assert content.objects[0].body["metadata"]["creationTimestamp"] == "2026-11-22T03:13:40Z"


def test_bad_yaml_reports_line_and_yields_nothing() -> None:
    """A file that does not parse yields no objects and one error with the line number."""
    content = _yaml(ROUTE.format(name="ok") + "---\nkind: Service\n  oops: 1\nmore: x\n")
    assert not content.parsed
    assert content.objects == ()
    assert content.errors == (
        LoadError(
            "f.yaml",
            "invalid YAML at line 9, column 7: mapping values are not allowed in this context",
        ),
    )


def test_bad_json_reports_line() -> None:
    """Invalid JSON is reported with its line and column."""
    content = read_documents(b'{\n  "kind": "Service",\n  oops\n}', "s.json", is_json=True)
    assert not content.parsed
    assert content.errors == (
        LoadError(
            "s.json",
            "invalid JSON at line 3, column 3: Expecting property name enclosed in double quotes",
        ),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "document 1: expected an object (a mapping), found a list"),
        ("just text\n", "document 1: expected an object (a mapping), found a string"),
        ("apiVersion: v1\nmetadata: {name: x}\n", "document 1: missing kind"),
        ("kind: Service\nmetadata: {name: x}\n", "document 1: Service is missing apiVersion"),
        ("apiVersion: v1\nkind: Service\n", "document 1: Service has no metadata.name"),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {}\n",
            "document 1: Service has no metadata.name",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: [a]}\n",
            "document 1: Service x: metadata.namespace must be a string",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: !!binary aGk=\n",
            "document 1: Secret cannot be represented as JSON: "
            "Object of type bytes is not JSON serializable",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: {}\n",
            "document 1: List items must be a list, found a value of type dict",
        ),
    ],
    ids=[
        "list",
        "scalar",
        "no-kind",
        "no-apiversion",
        "no-metadata",
        "no-name",
        "bad-namespace",
        "binary",
        "bad-list",
    ],
)
def test_invalid_document_is_skipped_with_error(text: str, message: str) -> None:
    """A document that is not a usable object is skipped, naming its index; the rest is kept."""
    content = _yaml(text + "---\n" + ROUTE.format(name="kept"))
    assert content.parsed
    assert content.errors == (LoadError("f.yaml", message),)
    assert _keys(content) == [ObjectKey("HTTPRoute", "default", "kept")]


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deployment"),
        ("v1", "ConfigMap"),
        ("example.com/v1", "Service"),
        ("v1", "HTTPRoute"),
        ("gateway.networking.k8s.io/v1", "List2"),
    ],
    ids=["deployment", "configmap", "service-wrong-group", "route-core-group", "unknown"],
)
def test_kinds_not_watched_are_ignored(api_version: str, kind: str) -> None:
    """Kinds (or API groups) gateway-xds does not read are skipped with an explanation."""
    content = _yaml(f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\n")
    expected = f"document 1: ignored: kind {kind} ({api_version}) is not one gateway-xds reads"
    assert content.errors == (LoadError("f.yaml", expected),)
    assert content.objects == ()


@pytest.mark.parametrize("is_json", [True, False], ids=["json", "yaml"])
def test_empty_file_is_empty(is_json: bool) -> None:
    """An empty (or blank) file yields nothing and no error."""
    assert read_documents(b" \n", "e", is_json=is_json) == FileContent("e")


def test_merge_first_definition_wins_and_names_both_files() -> None:
    """The same object in two files: the first file's copy is kept, the other is an error."""
    first = _yaml(ROUTE.format(name="r") + "---\n" + ROUTE.format(name="r"), "a.yaml")
    second = _yaml(ROUTE.format(name="other") + "---\n" + ROUTE.format(name="r"), "b.yaml")
    objects, errors = merge([first, second])
    key = ObjectKey("HTTPRoute", "default", "r")
    assert list(objects) == [key, ObjectKey("HTTPRoute", "default", "other")]
    assert objects[key] is first.objects[0].body
    assert errors == (
        LoadError(
            "a.yaml",
            "document 2: HTTPRoute default/r is already defined in a.yaml (document 1); "
            "ignored here",
        ),
        LoadError(
            "b.yaml",
            "document 2: HTTPRoute default/r is already defined in a.yaml (document 1); "
            "ignored here",
        ),
    )
