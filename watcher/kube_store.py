"""Fold list and watch results into the objects a snapshot holds; find the Secrets to read.

``watcher.kubernetes`` keeps one ``KindStore`` per list+watch and feeds it what
``watcher.kube_watch`` delivers: ``replace`` for a (re)list, ``apply`` for a watch event.
Both say whether anything a translator reads changed, so that the provider publishes a new
snapshot only then. ``referenced_secrets`` says which Secrets the provider must read.

What a snapshot holds of an object is ``normalize(body)``: the body as the API server sends
it, without what changes on every write and is not input to translation::

    status                    written by controllers (us included): output, not input
    metadata.resourceVersion  moves on every write, status writes included
    metadata.managedFields    server-side apply bookkeeping, large and irrelevant

so an event that changes only those compares equal, and the store keeps the very same
body object: the incremental translator tells unchanged objects by identity.

What it must not do: any I/O, logging or clock reading; mutate a body it was given or
returned (bodies are shared with published snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from watcher.objects import CLUSTER_SCOPED, ObjectKey

_DROPPED_TOP = frozenset({"status", "apiVersion", "kind", "metadata"})
_DROPPED_METADATA = frozenset({"resourceVersion", "managedFields"})

Body = Mapping[str, Any]


def normalize(body: Body, kind: str, api_version: str) -> dict[str, Any]:
    """The body as a snapshot holds it: kind and apiVersion set, volatile fields gone."""
    metadata = body.get("metadata")
    kept = {k: v for k, v in (metadata or {}).items() if k not in _DROPPED_METADATA}
    rest = {k: v for k, v in body.items() if k not in _DROPPED_TOP}
    return {"apiVersion": api_version, "kind": kind, "metadata": kept, **rest}


def key_of(body: Body) -> ObjectKey:
    """The identity of a normalized body."""
    kind = str(body["kind"])
    metadata = body["metadata"]
    namespace = "" if kind in CLUSTER_SCOPED else str(metadata.get("namespace") or "")
    return ObjectKey(kind, namespace, str(metadata["name"]))


class KindStore:
    """The normalized objects one list+watch has delivered, by key."""

    __slots__ = ("objects",)

    def __init__(self) -> None:
        self.objects: dict[ObjectKey, Body] = {}

    def replace(self, bodies: Iterable[Body]) -> bool:
        """Take a full list; True when any object appeared, vanished or changed."""
        fresh: dict[ObjectKey, Body] = {}
        changed = False
        for body in bodies:
            key = key_of(body)
            old = self.objects.get(key)
            if old is not None and old == body:
                fresh[key] = old
            else:
                fresh[key] = body
                changed = True
        changed = changed or fresh.keys() != self.objects.keys()
        self.objects = fresh
        return changed

    def apply(self, event_type: str, body: Body) -> bool:
        """Take one watch event (ADDED, MODIFIED, DELETED); True when the objects changed."""
        key = key_of(body)
        if event_type == "DELETED":
            return self.objects.pop(key, None) is not None
        old = self.objects.get(key)
        if old is not None and old == body:
            return False
        self.objects[key] = body
        return True


def referenced_secrets(
    gateways: Iterable[Body], classes: Iterable[Body], controller_name: str
) -> frozenset[tuple[str, str]]:
    """(namespace, name) of every core Secret a Gateway of one of our classes refers to.

    Listener ``tls.certificateRefs`` and ``spec.tls.backend.clientCertificateRef``; a ref
    without a namespace is in the Gateway's. Gateways of other controllers are not ours to
    read Secrets for.
    """
    ours = {
        str(_get(c, "metadata", "name"))
        for c in classes
        if _get(c, "spec", "controllerName") == controller_name
    }
    found: set[tuple[str, str]] = set()
    for gateway in gateways:
        if _get(gateway, "spec", "gatewayClassName") not in ours:
            continue
        namespace = str(_get(gateway, "metadata", "namespace") or "")
        refs: list[Any] = []
        for listener in _list(_get(gateway, "spec", "listeners")):
            refs.extend(_list(_get(listener, "tls", "certificateRefs")))
        refs.append(_get(gateway, "spec", "tls", "backend", "clientCertificateRef"))
        found.update(_secret(ref, namespace) for ref in refs if _is_secret(ref))
    return frozenset(found)


def _is_secret(ref: Any) -> bool:
    return (
        isinstance(ref, Mapping)
        and isinstance(ref.get("name"), str)
        and bool(ref["name"])
        and ref.get("group", "") in ("", "core")
        and ref.get("kind", "Secret") == "Secret"
    )


def _secret(ref: Mapping[str, Any], namespace: str) -> tuple[str, str]:
    return (str(ref.get("namespace") or namespace), str(ref["name"]))


def _get(body: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(part)
    return body


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []
