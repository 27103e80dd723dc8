"""The Kubernetes provider (watcher.kubernetes) against a real API server: initial sync,
changes, status-only writes, 410 Gone and an API server restart."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from structlog.testing import capture_logs
from support.kube_apiserver import KubeApiServer
from support.kube_binaries import KUBE_APISERVER, ensure_binary, gateway_api_crds
from support.kube_objects import (
    API_VERSION,
    GROUP,
    VERSION,
    create,
    create_gateway_class,
    create_namespace,
    gateway,
    http_route,
)
from support.tcp_relay import TcpRelay
from support.wait import wait_until

from translator import CONTROLLER_NAME
from watcher.kube_kinds import Resource
from watcher.kube_store import KindStore, normalize
from watcher.kube_watch import KindWatcher, Listed, Update, WatchTiming
from watcher.kubernetes import KubernetesProvider, api_client_from, served_versions
from watcher.objects import ObjectKey, ObjectSnapshot

pytestmark = pytest.mark.kube

FAST = WatchTiming(backoff_initial=0.05, backoff_max=1.0, read_timeout=30.0)
DEADLINE = 20.0


class Running:
    """A provider running in its own thread and event loop; what it published, in order."""

    def __init__(self, provider: KubernetesProvider) -> None:
        self.provider = provider
        self.snapshots: list[ObjectSnapshot] = []
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self._cursor = 0  # until() looks only at snapshots from here on
        self._thread = threading.Thread(target=self._main, name="provider", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        self._task = self._loop.create_task(self.provider.run(self.snapshots.append))
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as error:  # surfaced by until()
            self.error = error
        finally:
            self._loop.close()

    def until(self, predicate: Callable[[ObjectSnapshot], bool], what: str) -> ObjectSnapshot:
        """The first snapshot since the last one returned that matches ``predicate``."""

        def found() -> int | None:
            if self.error is not None:
                raise AssertionError(f"the provider stopped: {self.error!r}")
            for index in range(self._cursor, len(self.snapshots)):
                if predicate(self.snapshots[index]):
                    return index + 1
            return None

        self._cursor = wait_until(found, timeout=DEADLINE, interval=0.02, message=what)
        return self.snapshots[self._cursor - 1]

    def stop(self) -> None:
        task = self._task
        if task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the provider did not stop"


@pytest.fixture
def api(kube_api: KubeApiServer) -> Iterator[Any]:
    api_client = kube_api.client()
    yield api_client
    api_client.close()


@pytest.fixture
def ns(api: Any) -> Iterator[str]:
    name = create_namespace(api, "p")
    yield name
    client.CoreV1Api(api).delete_namespace(name)


@pytest.fixture
def start(kube_api: KubeApiServer) -> Iterator[Callable[[], Running]]:
    """Start providers (each with its own ApiClient); all are stopped afterwards."""
    running: list[Running] = []
    clients: list[Any] = []

    def starter() -> Running:
        api_client = api_client_from(kube_api.kubeconfig)
        clients.append(api_client)
        provider = KubernetesProvider(
            api_client, controller_name=CONTROLLER_NAME, debounce=0.05, max_delay=0.5, timing=FAST
        )
        running.append(Running(provider))
        return running[-1]

    yield starter
    for item in running:
        item.stop()
    for api_client in clients:
        api_client.close()


def _custom(api: Any) -> Any:
    return client.CustomObjectsApi(api)


def _route(ns: str, name: str, path: str = "/api") -> dict[str, Any]:
    """HTTPRoute ``name`` on Gateway ``web``: ``path`` -> echo:80."""
    return http_route(ns, name, path, "echo")


def _create_route(api: Any, ns: str, name: str, path: str = "/api") -> dict[str, Any]:
    return create(api, _route(ns, name, path))


def _path(snapshot: ObjectSnapshot, ns: str, name: str) -> str | None:
    body = snapshot.get("HTTPRoute", ns, name)
    if body is None:
        return None
    return str(body["spec"]["rules"][0]["matches"][0]["path"]["value"])


def _tls_world(api: Any, ns: str, class_name: str) -> None:
    """Our GatewayClass, a Gateway whose HTTPS listener uses Secret ``cert``, two Secrets."""
    create_gateway_class(api, class_name)
    listener = {
        "name": "https",
        "protocol": "HTTPS",
        "port": 8443,
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]},
    }
    create(api, gateway(ns, class_name, listener))
    core = client.CoreV1Api(api)
    pem = base64.b64encode(b"not checked by the API server").decode()
    for name in ("cert", "unrelated"):
        core.create_namespaced_secret(
            ns,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                type="kubernetes.io/tls",
                data={"tls.crt": pem, "tls.key": pem},
            ),
        )
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80, target_port=8080)]),
        ),
    )


def test_first_snapshot_holds_every_kind_and_only_referenced_secrets(
    api: Any, ns: str, start: Callable[[], Running]
) -> None:
    """The first snapshot comes after every list, the Secrets a Gateway names included."""
    class_name = f"c-{ns}"
    _tls_world(api, ns, class_name)
    _create_route(api, ns, "api")
    running = start()
    first = running.until(lambda _: True, "a first snapshot")
    assert first.version == 1
    assert running.provider.synced
    kinds = {key.kind for key in first.objects if key.namespace in (ns, "")}
    assert {"GatewayClass", "Gateway", "HTTPRoute", "Service", "Namespace", "Secret"} <= kinds
    assert first.get("GatewayClass", "", class_name) is not None
    assert first.get("Secret", ns, "cert") is not None
    assert first.get("Secret", ns, "unrelated") is None
    body = first.get("HTTPRoute", ns, "api")
    assert body is not None
    assert "resourceVersion" not in body["metadata"]
    assert "managedFields" not in body["metadata"]
    assert (body["apiVersion"], body["kind"]) == (API_VERSION, "HTTPRoute")


def test_route_create_change_delete_reach_snapshots(
    api: Any, ns: str, start: Callable[[], Running]
) -> None:
    """Each change of an HTTPRoute is a new snapshot; untouched objects keep their body."""
    running = start()
    running.until(lambda s: s.get("Namespace", "", ns) is not None, "the namespace")
    _create_route(api, ns, "api", "/one")
    created = running.until(lambda s: _path(s, ns, "api") == "/one", "the route")
    namespace_body = created.get("Namespace", "", ns)
    patch = {"spec": {"rules": [_route(ns, "api", "/two")["spec"]["rules"][0]]}}
    _custom(api).patch_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "api", patch)
    changed = running.until(lambda s: _path(s, ns, "api") == "/two", "the changed route")
    assert changed.version > created.version
    assert changed.get("Namespace", "", ns) is namespace_body
    _custom(api).delete_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "api")
    gone = running.until(lambda s: s.get("HTTPRoute", ns, "api") is None, "the deletion")
    assert gone.version > changed.version


def test_status_only_write_publishes_nothing(
    api: Any, ns: str, start: Callable[[], Running]
) -> None:
    """A status write changes no body and triggers no snapshot; a later real change does."""
    _create_route(api, ns, "api")
    running = start()
    before = running.until(lambda s: s.get("HTTPRoute", ns, "api") is not None, "the route")
    count = len(running.snapshots)
    status = {
        "status": {
            "parents": [
                {
                    "parentRef": {"name": "web"},
                    "controllerName": "example.com/other",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True",
                            "reason": "Accepted",
                            "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "observedGeneration": 1,
                        }
                    ],
                }
            ]
        }
    }
    written = _custom(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, "httproutes", "api", status
    )
    assert written["status"]["parents"][0]["controllerName"] == "example.com/other"
    _create_route(api, ns, "marker")  # the same watch stream: seen after the status write
    after = running.until(lambda s: s.get("HTTPRoute", ns, "marker") is not None, "the marker")
    assert after.get("HTTPRoute", ns, "api") is before.get("HTTPRoute", ns, "api")
    assert len(running.snapshots) == count + 1


def test_watch_from_a_compacted_version_relists_without_losing_anything(
    api: Any, ns: str, kube_api: KubeApiServer
) -> None:
    """A watch resumed from a long-gone resourceVersion gets 410, relists, and the store
    learns both what was created and what was deleted meanwhile."""
    _create_route(api, ns, "kept")
    _create_route(api, ns, "new")
    store = KindStore()
    for name in ("kept", "deleted"):  # what an earlier list had seen
        store.apply("ADDED", normalize(_route(ns, name), "HTTPRoute", API_VERSION))
    updates: list[Update] = []
    resource = Resource("HTTPRoute", API_VERSION, "httproutes", namespace=ns)
    watcher_client = kube_api.client()
    watcher = KindWatcher(watcher_client, resource, updates.append, timing=FAST, resume_from="1")
    with capture_logs() as logs:
        watcher.start()
        try:
            wait_until(lambda: watcher.lists >= 1, timeout=DEADLINE, message="a relist after 410")
        finally:
            watcher.stop()
            assert watcher.join(10)
            watcher_client.close()
    assert any(entry["event"] == "kube.watch.expired" for entry in logs), logs
    listed = updates[0]
    assert isinstance(listed, Listed), updates  # nothing before the relist
    changed = store.replace(normalize(b, "HTTPRoute", API_VERSION) for b in listed.items)
    assert changed
    assert sorted(key.name for key in store.objects) == ["kept", "new"]


def test_compaction_while_disconnected_relists_through_the_provider(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The provider's connections are cut; meanwhile a route is deleted, one created, one
    changed, and etcd compacts its history. On reconnecting, its watches resume from
    resourceVersions etcd no longer has: 410 Gone, a relist, and the next snapshot has all
    three changes. (The API server runs without its watch cache, so resumed watches reach
    etcd, as they do in a cluster once the cache's window has passed.)"""
    directory = tmp_path_factory.mktemp("kube-no-watch-cache")
    with KubeApiServer(directory, extra_args=["--watch-cache=false"]) as server:
        server.install_gateway_api_crds("standard")
        api = server.client()
        ns = create_namespace(api, "c")
        for name in ("kept", "deleted"):
            _create_route(api, ns, name)
        with TcpRelay(("127.0.0.1", server.port)) as relay:
            kubeconfig = server.kubeconfig_via(relay.port, directory / "relayed.yaml")
            provider_client = api_client_from(kubeconfig)
            provider = KubernetesProvider(
                provider_client, controller_name=CONTROLLER_NAME, debounce=0.05, max_delay=0.5,
                timing=FAST,
            )  # fmt: skip
            running = Running(provider)
            try:
                running.until(
                    lambda s: _path(s, ns, "kept") == "/api" and _path(s, ns, "deleted") == "/api",
                    "both routes",
                )
                with capture_logs() as logs:
                    relay.cut()
                    _custom(api).delete_namespaced_custom_object(
                        GROUP, VERSION, ns, "httproutes", "deleted"
                    )
                    _create_route(api, ns, "new")
                    _custom(api).patch_namespaced_custom_object(
                        GROUP, VERSION, ns, "httproutes", "kept", _route(ns, "kept", "/v2")
                    )
                    server.compact_etcd()
                    relay.restore()
                    snapshot = running.until(
                        lambda s: (
                            _path(s, ns, "kept") == "/v2"
                            and _path(s, ns, "new") == "/api"
                            and s.get("HTTPRoute", ns, "deleted") is None
                        ),
                        "all three changes after the relist",
                    )
            finally:
                running.stop()
                provider_client.close()
                api.close()
    expired = [e for e in logs if e["event"] == "kube.watch.expired"]
    assert any(e["resource"].startswith("HTTPRoute") for e in expired), logs
    assert snapshot.get("Namespace", "", ns) is not None  # other kinds relisted too


def test_api_server_restart_loses_no_event(
    api: Any, ns: str, kube_api: KubeApiServer, start: Callable[[], Running]
) -> None:
    """Watches broken by an API server restart resume; changes made right after show up."""
    running = start()
    running.until(lambda s: s.get("Namespace", "", ns) is not None, "the namespace")
    with capture_logs() as logs:
        kube_api.stop_apiserver()
        kube_api.start_apiserver(ensure_binary(KUBE_APISERVER))
        _create_route(api, ns, "after-restart")
        snapshot = running.until(
            lambda s: s.get("HTTPRoute", ns, "after-restart") is not None, "the route after restart"
        )
    broken = {e["resource"] for e in logs if e["event"] == "kube.watch.error"}
    assert any(resource.startswith("HTTPRoute") for resource in broken), logs
    assert snapshot.get("Namespace", "", ns) is not None
    assert ObjectKey("HTTPRoute", ns, "after-restart") in snapshot.objects


def test_missing_route_crd_is_skipped_then_picked_up(
    api: Any, ns: str, kube_api: KubeApiServer
) -> None:
    """Without the UDPRoute CRD the provider syncs the rest and says so; when the CRD is
    installed, discovery finds it and UDPRoutes reach snapshots."""
    extensions = client.ApiextensionsV1Api(api)
    crd_name = f"udproutes.{GROUP}"
    crd = next(
        document
        for path in gateway_api_crds("standard")
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("metadata", {}).get("name") == crd_name
    )
    extensions.delete_custom_resource_definition(crd_name)
    wait_until(lambda: not _served(api, "udproutes"), timeout=DEADLINE, message="CRD gone")
    api_client = api_client_from(kube_api.kubeconfig)
    provider = KubernetesProvider(
        api_client, controller_name=CONTROLLER_NAME, discovery_interval=0.2, timing=FAST
    )
    running: Running | None = None
    try:
        with capture_logs() as logs:
            running = Running(provider)
            running.until(lambda s: s.get("Namespace", "", ns) is not None, "a first snapshot")
        missing = [e for e in logs if e["event"] == "kube.kind.missing"]
        assert [e["kind"] for e in missing] == ["UDPRoute"], missing
        assert provider.watcher("UDPRoute") is None
        extensions.create_custom_resource_definition(body=crd)
        wait_until(lambda: _served(api, "udproutes"), timeout=DEADLINE, message="CRD served")
        route = {
            "apiVersion": API_VERSION,
            "kind": "UDPRoute",
            "metadata": {"name": "dns", "namespace": ns},
            "spec": {
                "parentRefs": [{"name": "web"}],
                "rules": [{"backendRefs": [{"name": "dns", "port": 53}]}],
            },
        }
        wait_until(
            lambda: _custom(api).create_namespaced_custom_object(
                GROUP, VERSION, ns, "udproutes", route
            ),
            timeout=DEADLINE,
            ignore=(client.exceptions.ApiException,),  # 404 until the CRD's REST path is up
            message="UDPRoute created",
        )
        running.until(lambda s: s.get("UDPRoute", ns, "dns") is not None, "the UDPRoute")
    finally:
        if running is not None:
            running.stop()
        api_client.close()
        if not _served(api, "udproutes"):
            extensions.create_custom_resource_definition(body=crd)


def _served(api: Any, plural: str) -> bool:
    return plural in served_versions(api, GROUP).get(VERSION, frozenset())
