"""Status write-back and leader election against the real API server (its own validation).

- The control plane (``ControlPlane.run`` on the Kubernetes provider) writes Gateway and
  HTTPRoute status once per real change, none for a change that leaves status alone, and
  the API server's schema and CEL rules accept what it writes.
- Another controller's parents entry on an HTTPRoute survives our writes; a 409 Conflict
  (another writer in between) is retried; a status the server refuses (422) is not retried.
- Two writers with two identities: only the Lease holder writes; when it stops renewing,
  the other takes the Lease within the lease duration and writes.
- ``xdsctl serve --kubernetes`` wires it: the Gateway gets status, the Lease names it.

Requests are counted by a wrapper around the ``ApiClient`` (PUTs on ``/status``), not by time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import REGISTRY
from support.http import free_port
from support.kube_apiserver import KubeApiServer
from support.kube_objects import (
    API_VERSION,
    GROUP,
    VERSION,
    create,
    create_gateway_class,
    create_namespace,
    gateway,
    get,
    http_listener,
    http_route,
)
from support.kube_serve import ServeProcess
from support.wait import wait_until

from translator import CONTROLLER_NAME
from xds_server.app import ControlPlane, ServeSettings
from xds_server.leader import LeaseSettings
from xds_server.status_writer import StatusWriter
from xds_server.write_back import WriteBack

pytestmark = pytest.mark.kube

OTHER_CONTROLLER = "example.com/other-controller"


class CountingClient:
    """An ``ApiClient`` that records each request (method, URL) and may run a hook first."""

    def __init__(self, inner: Any, before: Callable[[str, str], None] | None = None) -> None:
        self.inner = inner
        self.before = before
        self.requests: list[tuple[str, str]] = []

    def param_serialize(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.param_serialize(*args, **kwargs)

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self.before is not None:
            self.before(method, url)
        self.requests.append((method, url))
        return self.inner.call_api(method, url, *args, **kwargs)

    def status_puts(self, path: str = "") -> int:
        """PUTs on a status subresource (of the object at ``.../path``, if given)."""
        suffix = f"/{path}/status" if path else "/status"
        return sum(1 for m, url in self.requests if m == "PUT" and url.endswith(suffix))


def _create_gateway_objects(api: Any, namespace: str, class_name: str) -> None:
    """Our GatewayClass, Gateway ``web`` (listener ``http``:8080) and HTTPRoute ``app`` on
    that listener, every path -> echo:80."""
    create_gateway_class(api, class_name)
    create(api, gateway(namespace, class_name, http_listener(8080)))
    create(api, http_route(namespace, "app", None, "echo", section="http"))


def _condition(conditions: Any, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)


def _our_parent(route: Mapping[str, Any]) -> Mapping[str, Any] | None:
    parents = (route.get("status") or {}).get("parents") or []
    return next((p for p in parents if p.get("controllerName") == CONTROLLER_NAME), None)


class PlaneThread:
    """``ControlPlane.run`` on its own event loop in a thread (as ``xdsctl serve`` runs it)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.plane: ControlPlane | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="control plane", daemon=True)

    def __enter__(self) -> ControlPlane:
        self._thread.start()
        assert self._started.wait(30), "the control plane thread did not start"
        assert self.plane is not None
        return self.plane

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the control plane did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:  # reported by the test that waits on the plane
            self.error = error
            self._started.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.plane = ControlPlane(self.settings)
        self._task = asyncio.create_task(self.plane.run())
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _settings(kube_api: KubeApiServer, **extra: Any) -> ServeSettings:
    return ServeSettings(
        kubernetes=True,
        kubeconfig=kube_api.kubeconfig,
        xds_address=f"127.0.0.1:{free_port()}",
        admin_address=f"127.0.0.1:{free_port()}",
        debounce=0.02,
        max_delay=0.2,
        **extra,
    )


@contextlib.contextmanager
def _started(*things: Any) -> Iterator[None]:
    for thing in things:
        thing.start()
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.stop()


def test_status_written_once_per_real_change(kube_api: KubeApiServer) -> None:
    """Gateway + route status reach the API server; a no-op change writes nothing."""
    api = kube_api.client()
    namespace = create_namespace(api, "st")
    _create_gateway_objects(api, namespace, f"st-{uuid.uuid4().hex[:8]}")
    with PlaneThread(_settings(kube_api, write_status=False)) as plane:
        wait_until(lambda: plane.ready, timeout=30, message="control plane ready")
        counting = CountingClient(kube_api.client())
        lease = LeaseSettings(namespace=namespace, identity="only", lease_duration=15)
        back = WriteBack(
            counting, lease, source=lambda: plane.statuses,
            controller_name=CONTROLLER_NAME, poll_interval=0.2,
        )  # fmt: skip
        writer = back.writer
        with _started(back):

            def written() -> bool:
                gateway = get(api, namespace, "gateways", "web")
                route = get(api, namespace, "httproutes", "app")
                accepted = _condition((gateway.get("status") or {}).get("conditions"), "Accepted")
                parent = _our_parent(route)
                return bool(
                    accepted is not None and accepted["status"] == "True"
                    and parent is not None and writer.idle
                )  # fmt: skip

            wait_until(written, timeout=30, message="Gateway and HTTPRoute status written")
            gateway = get(api, namespace, "gateways", "web")
            conditions = gateway["status"]["conditions"]
            assert _condition(conditions, "gateway-xds.io/ProxiesAccepted") is not None
            assert gateway["status"]["listeners"][0]["attachedRoutes"] == 1
            objects = (f"{namespace}/gateways/web", f"{namespace}/httproutes/app")
            first = {path: counting.status_puts(path) for path in objects}
            assert list(first.values()) == [1, 1], counting.requests
            route_rv = get(api, namespace, "httproutes", "app")["metadata"]["resourceVersion"]
            route_ltt = _our_parent(get(api, namespace, "httproutes", "app"))

            # A change that leaves every status alone: a label. Translated, nothing written.
            version = plane.snapshot_version
            custom = client.CustomObjectsApi(api)
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "httproutes", "app",
                {"metadata": {"labels": {"touched": "yes"}}},
            )  # fmt: skip
            wait_until(
                lambda: plane.snapshot_version > version and writer.idle,
                timeout=30, message="the label change translated and diffed",
            )  # fmt: skip
            assert {n: counting.status_puts(n) for n in first} == first
            route = get(api, namespace, "httproutes", "app")
            assert int(route["metadata"]["resourceVersion"]) == int(route_rv) + 1  # the label
            assert _our_parent(route) == route_ltt  # times kept: nothing transitioned

            # A real change: the route's listener does not exist. Route and Gateway once each.
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "httproutes", "app",
                {"spec": {"parentRefs": [{"name": "web", "sectionName": "nope"}]}},
            )  # fmt: skip

            def rejected() -> bool:
                parent = _our_parent(get(api, namespace, "httproutes", "app"))
                accepted = _condition(parent and parent.get("conditions"), "Accepted")
                return accepted is not None and accepted["status"] == "False" and writer.idle

            wait_until(rejected, timeout=30, message="route status NoMatchingParent written")
            assert [counting.status_puts(path) for path in objects] == [2, 2]
            gateway = get(api, namespace, "gateways", "web")
            assert gateway["status"]["listeners"][0]["attachedRoutes"] == 0
            assert writer.counts["refused"] == 0


def _route_with_parents(api: Any, namespace: str, parents: list[dict[str, Any]]) -> None:
    custom = client.CustomObjectsApi(api)
    route = get(api, namespace, "httproutes", "app")
    route["status"] = {"parents": parents}
    custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "httproutes", "app", route
    )


def _parent(controller: str, reason: str = "Accepted", status: str = "True") -> dict[str, Any]:
    return {
        "parentRef": {"group": GROUP, "kind": "Gateway", "name": "web"},
        "controllerName": controller,
        "conditions": [{
            "type": "Accepted", "status": status, "reason": reason, "message": reason,
            "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
    }  # fmt: skip


def _route_entry(namespace: str, parent: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"namespace": namespace, "name": "app"},
        "status": {"parents": [parent]},
    }


def test_other_controllers_entry_survives_and_conflict_is_retried(
    kube_api: KubeApiServer,
) -> None:
    api = kube_api.client()
    namespace = create_namespace(api, "oc")
    _create_gateway_objects(api, namespace, f"oc-{uuid.uuid4().hex[:8]}")
    _route_with_parents(api, namespace, [_parent(OTHER_CONTROLLER, "Theirs")])
    interfered = threading.Event()

    def other_controller_writes_first(method: str, url: str) -> None:
        """Before our first status PUT, the other controller updates its entry: a 409."""
        if method == "PUT" and url.endswith("/status") and not interfered.is_set():
            interfered.set()
            _route_with_parents(api, namespace, [_parent(OTHER_CONTROLLER, "TheirsAgain")])

    counting = CountingClient(kube_api.client(), before=other_controller_writes_first)
    source: list[list[dict[str, Any]]] = [[_route_entry(namespace, _parent(CONTROLLER_NAME))]]
    writer = StatusWriter(
        counting, source=lambda: source[0], controller_name=CONTROLLER_NAME, poll_interval=0.1
    )
    conflicts_before = _status_writes("conflict")
    with _started(writer):
        wait_until(
            lambda: writer.counts["written"] == 1 and writer.idle, timeout=30, message="written"
        )
        parents = get(api, namespace, "httproutes", "app")["status"]["parents"]
        by_controller = {p["controllerName"]: p for p in parents}
        assert set(by_controller) == {CONTROLLER_NAME, OTHER_CONTROLLER}
        assert by_controller[OTHER_CONTROLLER]["conditions"][0]["reason"] == "TheirsAgain"
        assert writer.counts["conflict"] == 1
        assert _status_writes("conflict") == conflicts_before + 1  # exported as a metric too
        assert counting.status_puts() == 2  # the conflicting PUT and its retry

        # Our entry changes: ours rewritten, theirs kept; only what changed is written.
        source[0] = [_route_entry(namespace, _parent(CONTROLLER_NAME, "Other", "False"))]
        writer.notify()
        wait_until(
            lambda: writer.counts["written"] == 2 and writer.idle, timeout=30, message="rewritten"
        )
        parents = get(api, namespace, "httproutes", "app")["status"]["parents"]
        by_controller = {p["controllerName"]: p for p in parents}
        assert by_controller[CONTROLLER_NAME]["conditions"][0]["reason"] == "Other"
        assert by_controller[OTHER_CONTROLLER]["conditions"][0]["reason"] == "TheirsAgain"

        # The API server's schema refuses a reason with a space: 422, logged, not retried.
        puts = counting.status_puts()
        source[0] = [_route_entry(namespace, _parent(CONTROLLER_NAME, "not valid"))]
        writer.notify()
        wait_until(
            lambda: writer.counts["refused"] == 1 and writer.idle, timeout=30, message="refused"
        )
        assert counting.status_puts() == puts + 1
        writer.notify()
        wait_until(lambda: writer.idle, timeout=10, message="idle")
        assert counting.status_puts() == puts + 1


def test_only_the_lease_holder_writes_and_the_other_takes_over(kube_api: KubeApiServer) -> None:
    api = kube_api.client()
    namespace = create_namespace(api, "le")
    _create_gateway_objects(api, namespace, f"le-{uuid.uuid4().hex[:8]}")
    source: list[list[dict[str, Any]]] = [[_route_entry(namespace, _parent(CONTROLLER_NAME))]]
    backs: dict[str, WriteBack] = {}
    clients: dict[str, CountingClient] = {}
    for identity in ("replica-a", "replica-b"):
        clients[identity] = CountingClient(kube_api.client())
        lease = LeaseSettings(
            namespace=namespace, identity=identity, name="writers",
            lease_duration=3.0, renew_deadline=2.0, retry_period=0.5,
        )  # fmt: skip
        backs[identity] = WriteBack(
            clients[identity], lease, source=lambda: source[0],
            controller_name=CONTROLLER_NAME, poll_interval=0.1,
        )  # fmt: skip
    backs["replica-a"].start()
    stopped: set[str] = set()
    try:
        wait_until(lambda: backs["replica-a"].elector.is_leader, timeout=15, message="a leads")
        backs["replica-b"].start()
        wait_until(
            lambda: backs["replica-a"].writer.counts["written"] == 1, timeout=15, message="a wrote"
        )
        # b runs and polls, yet never leads nor writes while a renews.
        wait_until(
            lambda: sum(m == "GET" for m, u in clients["replica-b"].requests if "leases" in u) >= 4,
            timeout=15, message="b tried the Lease several times",
        )  # fmt: skip
        assert not backs["replica-b"].elector.is_leader
        assert clients["replica-b"].status_puts() == 0
        source[0] = [_route_entry(namespace, _parent(CONTROLLER_NAME, "Second", "False"))]
        backs["replica-a"].notify()
        backs["replica-b"].notify()
        wait_until(
            lambda: backs["replica-a"].writer.counts["written"] == 2, timeout=15, message="a wrote"
        )
        assert clients["replica-b"].status_puts() == 0

        # a dies: it stops renewing and does not release. b takes over within the lease.
        backs["replica-a"].stop(release=False)
        stopped.add("replica-a")
        died = time.monotonic()
        wait_until(lambda: backs["replica-b"].elector.is_leader, timeout=15, message="b leads")
        takeover = time.monotonic() - died
        assert takeover <= 3.0 + 0.5 + 0.5, takeover  # lease + one retry period + slack
        lease_body = client.CoordinationV1Api(api).read_namespaced_lease("writers", namespace)
        assert lease_body.spec.holder_identity == "replica-b"
        assert lease_body.spec.lease_transitions == 1
        # b, now leading, diffs everything: the server already has it, so nothing is written.
        wait_until(lambda: backs["replica-b"].writer.idle, timeout=15, message="b diffed")
        assert backs["replica-b"].writer.counts["unchanged"] >= 1
        assert clients["replica-b"].status_puts() == 0
        a_puts = clients["replica-a"].status_puts()
        source[0] = [_route_entry(namespace, _parent(CONTROLLER_NAME, "Third"))]
        backs["replica-b"].notify()
        wait_until(
            lambda: backs["replica-b"].writer.counts["written"] == 1, timeout=15, message="b wrote"
        )
        route = get(api, namespace, "httproutes", "app")
        assert _our_parent(route)["conditions"][0]["reason"] == "Third"  # type: ignore[index]
        assert clients["replica-a"].status_puts() == a_puts
    finally:
        for identity, back in backs.items():
            if identity not in stopped:
                back.stop()


def test_serve_kubernetes_writes_status_and_holds_the_lease(
    kube_api: KubeApiServer, tmp_path: Path
) -> None:
    """``xdsctl serve --kubernetes`` with lease flags: Gateway status written, Lease held."""
    api = kube_api.client()
    namespace = create_namespace(api, "sv")
    _create_gateway_objects(api, namespace, f"sv-{uuid.uuid4().hex[:8]}")
    serve = ServeProcess(
        kube_api.kubeconfig, tmp_path / "serve.log",
        "--lease-namespace", namespace, "--lease-name", "serve-writers",
        "--lease-identity", "serve-replica",
    )  # fmt: skip
    with serve:

        def gateway_programmed() -> bool:
            serve.alive()
            status = get(api, namespace, "gateways", "web").get("status") or {}
            programmed = _condition(status.get("conditions"), "Programmed")
            return programmed is not None and programmed["status"] == "True"

        wait_until(gateway_programmed, timeout=60, message="Gateway status written by serve")
        lease = client.CoordinationV1Api(api).read_namespaced_lease("serve-writers", namespace)
        assert lease.spec.holder_identity == "serve-replica"

        def drained() -> dict[str, float] | None:
            """/metrics once the writer has nothing queued: the API server is shared, so other
            tests' objects may still wait for their status when our Gateway has its own."""
            metrics = serve.metrics()
            return metrics if metrics["gateway_xds_status_pending"] == 0.0 else None

        # The writer's work and the leadership are on /metrics.
        metrics = wait_until(drained, timeout=30, message="the status writer's queue drained")
        assert metrics["gateway_xds_leader"] == 1.0
        assert metrics['gateway_xds_status_writes_total{result="written"}'] >= 1.0
        assert metrics['gateway_xds_status_writes_total{result="refused"}'] == 0.0
        assert metrics["gateway_xds_status_pending"] == 0.0
    # A clean stop releases the Lease: the next replica need not wait for it to expire.
    lease = client.CoordinationV1Api(api).read_namespaced_lease("serve-writers", namespace)
    assert not lease.spec.holder_identity, serve.log_text()


def _status_writes(result: str) -> float:
    value = REGISTRY.get_sample_value("gateway_xds_status_writes_total", {"result": result})
    return value or 0.0
