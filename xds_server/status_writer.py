"""Writes the translator's status back to the API server: the status subresource of each object.

Who calls it: ``xds_server.app`` under ``xdsctl serve --kubernetes``: it builds one
``StatusWriter`` with ``source`` (the control plane's current status list, translator entries
plus the ProxiesAccepted condition), ``is_leader`` (``xds_server.leader``) and ``resolve``
(kind -> the API version and plural the provider watches), and calls ``notify()`` after each
translation and each change of a Gateway's ProxiesAccepted condition. It also looks at
``source()`` every ``poll_interval`` seconds (cheap: an identity check), which retries what
it gave up on.

One worker thread::

    source() changed (a new list object)?  diff it, entry by entry (the very same entry
        object as last time: skipped), against what we last wrote, ignoring lastTransitionTime
    -> pending: {object key: newest wanted entry}   (a newer entry replaces an older one; keys
        of objects no longer in the list are dropped; at most ``max_pending`` keys)
    -> per key: GET the live object, merge (below), compare ignoring lastTransitionTime;
        equal: nothing to write; else PUT .../status with the resourceVersion read.
        409 Conflict: read again and retry with backoff; 404: the object is gone; 422 (the
        API server's schema/CEL validation refused it): logged, not retried until it changes.

Merging with the live status:
- Routes: only our ``status.parents`` entries (controllerName == ours) are replaced; other
  controllers' entries are kept as the server has them. A route we no longer serve gets its
  entries of ours removed (if we wrote them in this process).
- GatewayClass and Gateway (ours): the whole status is ours.
- lastTransitionTime: a condition whose status did not change keeps the server's time; one
  that changed carries the time the control plane stamped when it changed.

Only the leader writes: ``is_leader`` is checked before every request; when leadership is
gained, everything is diffed again against the server (another replica may have written).

What it must not do: run on the event loop (HTTP blocks), write while not leading, touch
another controller's parents entries, grow its queue beyond the objects in the status list,
or write when nothing but lastTransitionTime differs.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from watcher.kube_kinds import WATCHED
from watcher.kube_watch import Backoff
from xds_server import app_metrics
from xds_server.kube_rest import ApiError, send
from xds_server.status import StatusKey, entry_key

log = structlog.get_logger(__name__)

ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})
# What the writer calls (deploy RBAC must grant exactly this, in gateway.networking.k8s.io):
STATUS_PLURALS = ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes",
                  "tcproutes", "udproutes")  # fmt: skip
OBJECT_VERBS = ("get",)  # the live object, read to merge with and for its resourceVersion
STATUS_VERBS = ("update",)  # PUT .../status carrying that resourceVersion
_PLURALS = {kind.kind: kind.plural for kind in WATCHED}

Resolver = Callable[[str], "tuple[str, str] | None"]  # kind -> (apiVersion, plural)


def entry_resolver(entries: Callable[[], Sequence[Mapping[str, Any]]]) -> Resolver:
    """A resolver from each entry's own apiVersion (for tests and the file of kinds we know)."""

    def resolve(kind: str) -> tuple[str, str] | None:
        plural = _PLURALS.get(kind)
        for entry in entries():
            if entry.get("kind") == kind and plural is not None:
                return str(entry.get("apiVersion")), plural
        return None

    return resolve


# -- pure helpers ------------------------------------------------------------------------------


def without_times(value: Any) -> Any:
    """``value`` with every ``lastTransitionTime`` key removed, recursively."""
    if isinstance(value, Mapping):
        return {k: without_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list | tuple):
        return [without_times(v) for v in value]
    return value


def ours(kind: str, status: Mapping[str, Any] | None, controller: str) -> dict[str, Any]:
    """The part of ``status`` this controller owns: our parents entries of a route, else all."""
    status = status or {}
    if kind in ROUTE_KINDS:
        parents = status.get("parents") or []
        return {"parents": [p for p in parents if p.get("controllerName") == controller]}
    return dict(status)


def differs(
    kind: str, wanted: Mapping[str, Any], live: Mapping[str, Any] | None, controller: str
) -> bool:
    """Whether our part of ``wanted`` and of ``live`` differ other than in lastTransitionTime."""
    mine, theirs = ours(kind, wanted, controller), ours(kind, live, controller)
    return bool(without_times(mine) != without_times(theirs))


def merged_status(
    kind: str, wanted: Mapping[str, Any], live: Mapping[str, Any] | None, controller: str
) -> dict[str, Any]:
    """The status to write: our part of ``wanted`` over ``live``, server times kept."""
    live = live or {}
    mine = _keep_times(ours(kind, wanted, controller), live)
    if kind not in ROUTE_KINDS:
        return mine
    others = [p for p in live.get("parents") or [] if p.get("controllerName") != controller]
    return {**live, "parents": [*mine["parents"], *others]}


def _keep_times(status: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    if "conditions" in status:
        out["conditions"] = _conditions(status["conditions"], live.get("conditions"))
    for section, key in (("listeners", "name"), ("parents", "parentRef")):
        if section not in status:
            continue
        before = {_identity(item, key): item for item in live.get(section) or []}
        out[section] = [
            {
                **item,
                "conditions": _conditions(
                    item.get("conditions") or [],
                    before.get(_identity(item, key), {}).get("conditions"),
                ),
            }
            for item in status[section]
        ]
    return out


def _identity(item: Mapping[str, Any], key: str) -> str:
    return repr((item.get(key), item.get("controllerName")))


def _conditions(
    conditions: Sequence[Mapping[str, Any]], live: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    old = {c.get("type"): c for c in live or []}
    out = []
    for condition in conditions:
        prior = old.get(condition.get("type"))
        if prior is not None and prior.get("status") == condition.get("status"):
            moment = prior.get("lastTransitionTime") or condition.get("lastTransitionTime")
            out.append({**condition, "lastTransitionTime": moment})
        else:
            out.append(dict(condition))
    return out


def object_path(api_version: str, plural: str, namespace: str, name: str) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{plural}/{name}"


# -- the worker --------------------------------------------------------------------------------


class StatusWriter:
    """Diffs ``source()`` against what was written and writes changed statuses, if leading."""

    def __init__(
        self,
        api_client: Any,
        *,
        source: Callable[[], Sequence[Mapping[str, Any]]],
        controller_name: str,
        resolve: Resolver | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        max_pending: int = 10_000,
        poll_interval: float = 1.0,
        max_attempts: int = 10,
        backoff: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.api_client = api_client
        self._source = source
        self.controller = controller_name
        self._resolve = resolve or entry_resolver(source)
        self._is_leader = is_leader
        self.max_pending = max_pending
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._backoff = backoff
        self.pending: OrderedDict[StatusKey, Mapping[str, Any]] = OrderedDict()
        self._seen: dict[StatusKey, Mapping[str, Any]] = {}  # entry objects already diffed
        self._written: dict[StatusKey, Any] = {}  # our part (no times) the server holds
        self._kinds: dict[StatusKey, str] = {}
        self._last_source: object = None
        self._leading = False
        # Outcomes of this writer (app_metrics.STATUS_RESULTS), also exported as the counter
        # gateway_xds_status_writes_total{result}: "written" counts requests that changed a
        # status, "unchanged" writes found unnecessary after reading the live object.
        self.counts: Counter[str] = Counter()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, _leading: bool | None = None) -> None:
        """Something changed (a translation, leadership): look at ``source()`` now. Any thread."""
        self._wakeup.set()

    @property
    def idle(self) -> bool:
        """Nothing pending and the newest source list diffed (tests wait on it)."""
        return not self.pending and self._source() is self._last_source

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.wait(self._poll_interval)
            self._wakeup.clear()
            try:
                self._step()
            except Exception:  # a bug must not end the thread: try again next time
                log.exception("status.writer_failed")
                self._last_source = None

    def _step(self) -> None:
        if not self._is_leader():
            if self._leading:
                self._leading = False
                self._forget()
            return
        if not self._leading:  # newly leading: the server may hold anything; diff it all
            self._leading = True
            self._forget()
        self._diff()
        while self.pending and not self._stopping.is_set() and self._is_leader():
            key, entry = self.pending.popitem(last=False)
            self._write(key, entry)
            self._diff()
        app_metrics.STATUS_PENDING.set(len(self.pending))

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        app_metrics.STATUS_WRITES.labels(result).inc()

    def _forget(self) -> None:
        self.pending.clear()
        self._seen.clear()
        self._written.clear()
        self._last_source = None

    def _diff(self) -> None:
        entries = self._source()
        if entries is self._last_source:
            return
        try:
            self._diff_entries(entries)
        finally:
            app_metrics.STATUS_PENDING.set(len(self.pending))

    def _diff_entries(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._last_source = entries
        current: dict[StatusKey, Mapping[str, Any]] = {}
        for entry in entries:
            key = entry_key(entry)
            current[key] = entry
            if self._seen.get(key) is entry and key not in self.pending:
                continue
            self._seen[key] = entry
            kind = str(entry.get("kind"))
            self._kinds[key] = kind
            wanted = without_times(ours(kind, entry.get("status"), self.controller))
            if self._written.get(key) == wanted:
                self.pending.pop(key, None)
                continue
            self._enqueue(key, entry)
        for key in [k for k in self._seen if k not in current]:
            del self._seen[key]
            self.pending.pop(key, None)
            kind = self._kinds.pop(key, "")
            if kind in ROUTE_KINDS and self._written.pop(key, None):
                # A route no longer ours: remove the parents entries we wrote.
                self._enqueue(key, _cleared(kind, key))
            self._written.pop(key, None)

    def _enqueue(self, key: StatusKey, entry: Mapping[str, Any]) -> None:
        if key in self.pending or len(self.pending) < self.max_pending:
            self.pending[key] = entry  # a newer entry replaces the older, keeping its place
        else:
            self._count("dropped")
            self._seen.pop(key, None)  # diffed again next time the source changes

    # -- one object ----------------------------------------------------------------------------

    def _write(self, key: StatusKey, entry: Mapping[str, Any]) -> None:
        kind, namespace, name = key
        resolved = self._resolve(kind)
        if resolved is None:
            log.warning("status.kind_not_served", kind=kind, name=name)
            return
        path = object_path(*resolved, namespace, name)
        wanted: Mapping[str, Any] = entry.get("status") or {}
        backoff = Backoff(*self._backoff)
        for _attempt in range(self._max_attempts):
            if not self._is_leader() or self._stopping.is_set():
                self._seen.pop(key, None)  # not written: diff it again when leading
                return
            try:
                live = send(self.api_client, "GET", path)
                live_status = live.get("status")
                if not differs(kind, wanted, live_status, self.controller):
                    self._count("unchanged")
                    self._written[key] = without_times(ours(kind, wanted, self.controller))
                    return
                status = merged_status(kind, wanted, live_status, self.controller)
                send(self.api_client, "PUT", f"{path}/status", {**live, "status": status})
            except ApiError as error:
                if error.status == 404:
                    return  # the object is gone (its deletion reaches us as a new source)
                if error.status == 409:
                    self._count("conflict")
                    log.info("status.conflict", kind=kind, namespace=namespace, name=name)
                elif 400 <= error.status < 500 and error.status != 429:
                    self._count("refused")
                    self._written[key] = without_times(ours(kind, wanted, self.controller))
                    log.error(
                        "status.refused", kind=kind, namespace=namespace, name=name,
                        error=str(error)[:1000],
                    )  # fmt: skip
                    return
                else:
                    self._count("failed")
                    log.warning("status.write_failed", kind=kind, name=name, error=str(error))
            except Exception as error:  # the API server is unreachable: back off, retry
                self._count("failed")
                log.warning("status.write_failed", kind=kind, name=name, error=repr(error)[:300])
            else:
                self._count("written")
                self._written[key] = without_times(ours(kind, wanted, self.controller))
                log.info("status.written", kind=kind, namespace=namespace, name=name)
                return
            self._stopping.wait(backoff.next())
        log.error("status.gave_up", kind=kind, namespace=namespace, name=name)
        self._seen.pop(key, None)
        self._last_source = None  # diffed again at the next poll


def _cleared(kind: str, key: StatusKey) -> dict[str, Any]:
    _, namespace, name = key
    return {
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name},
        "status": {"parents": []},
    }
