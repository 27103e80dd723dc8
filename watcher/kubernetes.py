"""The Kubernetes provider: objects on an API server become ``ObjectSnapshot`` values.

``xdsctl serve --kubernetes`` builds a ``KubernetesProvider`` with an ``ApiClient`` of the
official client (``api_client_from`` loads in-cluster config or a kubeconfig) and runs
``run(publish)``, the same contract as ``watcher.files.FileProvider``::

    discovery (which Gateway API kinds, at which version)      watcher.kube_kinds
        │ one KindWatcher thread per kind, and per referenced Secret (by name)
        ▼
    list, then watch from its resourceVersion                   watcher.kube_watch
        │ Listed / Event / Missing, handed to the event loop
        ▼
    KindStore per watcher: normalized bodies, "changed?"        watcher.kube_store
        │ settle: ``debounce`` quiet, at most ``max_delay``
        ▼
    publish(ObjectSnapshot)  (versions count up from 1)

- The first snapshot is published only once every watcher has listed its collection,
  Secrets included (so readiness follows the first complete sync).
- A new snapshot is published only when an object appeared, vanished or changed in what
  the translator reads: status, resourceVersion and managedFields are not part of bodies,
  and an unchanged object keeps the very same body object from snapshot to snapshot.
- Gateway API kinds whose CRDs are not served are skipped with a ``kube.kind.missing`` log
  line; discovery is polled every ``discovery_interval`` seconds and a kind that appears is
  listed and watched from then on (one that vanishes, 404, is dropped again).
- Secrets: only those that Gateways of our GatewayClasses reference, each watched by name
  (a field selector), re-evaluated whenever Gateways or GatewayClasses change.

What it must not do: block the event loop (HTTP runs in the watcher threads and
``asyncio.to_thread``), import the translator, write to the API server, or mutate a
published snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from watcher.kube_kinds import GATEWAY_GROUP, SECRET, WATCHED, Resource, WatchedKind, choose_version
from watcher.kube_store import KindStore, normalize, referenced_secrets
from watcher.kube_watch import (
    ApiError,
    Backoff,
    Event,
    KindWatcher,
    Listed,
    Missing,
    Update,
    WatchTiming,
    read_json,
    request,
)
from watcher.metrics import DEBOUNCE_SECONDS
from watcher.objects import ObjectKey, ObjectSnapshot

log = structlog.get_logger(__name__)

_DISCOVERY_TIMEOUT = (10.0, 30.0)
CONNECTION_POOL_SIZE = 64


async def wait_set(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set (True, and clear it) or ``seconds`` pass (False).

    ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` returns the
    result when a cancellation arrives in the same loop turn as the event, and the cancel is
    lost (the provider would never stop).
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    event.clear()
    return True


def api_client_from(kubeconfig: Path | None) -> Any:
    """An ``ApiClient``: from ``kubeconfig`` if given, else the pod's in-cluster config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    load: Any
    if kubeconfig is not None:
        load = config.load_kube_config
        load(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        load = config.load_incluster_config
        load(client_configuration=configuration)
    # One connection per watch (a dozen kinds and the referenced Secrets), plus discovery.
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


def served_versions(api_client: Any, group: str) -> dict[str, frozenset[str]]:
    """Discovery: each served version of ``group`` with its resource names ({} if none)."""
    try:
        info = read_json(request(api_client, f"/apis/{group}", {}, _DISCOVERY_TIMEOUT))
    except ApiError as error:
        if error.status == 404:
            return {}
        raise
    served: dict[str, frozenset[str]] = {}
    for entry in info.get("versions") or []:
        version = str(entry.get("version") or "")
        path = f"/apis/{group}/{version}"
        try:
            listing = read_json(request(api_client, path, {}, _DISCOVERY_TIMEOUT))
        except ApiError as error:
            if error.status == 404:
                continue
            raise
        names = (str(r.get("name") or "") for r in listing.get("resources") or [])
        served[version] = frozenset(n for n in names if n and "/" not in n)
    return served


class KubernetesProvider:
    """Lists and watches the API server; publishes a snapshot per settled change."""

    def __init__(
        self,
        api_client: Any,
        *,
        controller_name: str,
        debounce: float = 0.05,
        max_delay: float = 0.5,
        discovery_interval: float = 30.0,
        timing: WatchTiming | None = None,
    ) -> None:
        if debounce < 0 or max_delay < 0 or discovery_interval <= 0:
            raise ValueError("debounce and max_delay must be >= 0, discovery_interval > 0")
        self.api_client = api_client
        self.controller_name = controller_name
        self._debounce, self._max_delay = debounce, max_delay
        self._discovery_interval = discovery_interval
        self._timing = timing or WatchTiming()
        self.watchers: dict[Resource, KindWatcher] = {}
        self._stores: dict[Resource, KindStore] = {}
        self._synced: set[Resource] = set()
        self._missing: set[str] = set()  # optional kinds not served, already logged
        self._secrets: frozenset[tuple[str, str]] = frozenset()
        self._changes = 0  # counts updates that changed the objects
        self._first_change: float | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._published: ObjectSnapshot | None = None

    @property
    def synced(self) -> bool:
        """Every running watcher has listed its collection at least once."""
        return self._synced.issuperset(self.watchers)

    def watcher(self, kind: str) -> KindWatcher | None:
        """The running watcher of ``kind`` (the first, for Secrets), if any."""
        return next((w for r, w in self.watchers.items() if r.kind == kind), None)

    async def run(self, publish: Callable[[ObjectSnapshot], None]) -> None:
        """Publish the first snapshot once synced, then one per settled change; until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        try:
            await self._discover(until_success=True)
            next_discovery = self._loop.time() + self._discovery_interval
            while not self.synced:
                await self._wait(None)
            self._publish(publish)
            while True:
                timeout = max(0.0, next_discovery - self._loop.time())
                await self._wait(timeout)
                if self._loop.time() >= next_discovery:
                    await self._discover(until_success=False)
                    next_discovery = self._loop.time() + self._discovery_interval
                if self._first_change is not None:
                    await self._settle()
                    self._publish(publish)
        finally:
            self.close()

    def close(self) -> None:
        """Stop every watcher thread (they are daemons; a blocked read is interrupted)."""
        for watcher in self.watchers.values():
            watcher.stop()
        self.watchers.clear()

    # -- discovery and watchers ----------------------------------------------------------------

    async def _discover(self, *, until_success: bool) -> None:
        """Start watchers for the kinds served and not yet watched."""
        backoff = Backoff(self._timing.backoff_initial, self._timing.backoff_max)
        while True:
            try:
                served = await asyncio.to_thread(served_versions, self.api_client, GATEWAY_GROUP)
                break
            except Exception as error:  # the API server is down or refuses us: try later
                log.warning("kube.discovery.failed", error=repr(error)[:300])
                if not until_success:
                    return
                await asyncio.sleep(backoff.next())
        watched = {resource.kind for resource in self.watchers}
        for kind in WATCHED:
            if kind.kind in watched:
                continue
            version = choose_version(kind, served) if kind.optional else kind.versions[0]
            if version is None:
                self._log_missing(kind)
                continue
            if kind.kind in self._missing:
                self._missing.discard(kind.kind)
                log.info("kube.kind.found", kind=kind.kind, version=version)
            self._start(Resource.of(kind, version))

    def _log_missing(self, kind: WatchedKind) -> None:
        if kind.kind not in self._missing:
            self._missing.add(kind.kind)
            log.warning(
                "kube.kind.missing",
                kind=kind.kind,
                group=kind.group,
                reason=f"no CRD serves {kind.plural}.{kind.group} at {', '.join(kind.versions)}",
                action=f"skipped; picked up when it appears (discovery every "
                f"{self._discovery_interval:g}s)",
            )

    def _start(self, resource: Resource) -> None:
        watcher: KindWatcher

        def sink(update: Update) -> None:  # in the watcher's thread
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._on_update, watcher, update)

        watcher = KindWatcher(self.api_client, resource, sink, timing=self._timing)
        self.watchers[resource] = watcher
        self._stores[resource] = KindStore()
        watcher.start()

    def _stop(self, resource: Resource) -> None:
        watcher = self.watchers.pop(resource, None)
        if watcher is not None:
            watcher.stop()
        self._synced.discard(resource)
        store = self._stores.pop(resource, None)
        if store is not None and store.objects:
            self._changed()

    # -- updates, on the event loop ------------------------------------------------------------

    def _on_update(self, watcher: KindWatcher, update: Update) -> None:
        resource = watcher.resource
        if self.watchers.get(resource) is not watcher:
            return  # a watcher stopped since; its late updates mean nothing
        store = self._stores[resource]
        changed = False
        if isinstance(update, Listed):
            bodies = (normalize(b, resource.kind, resource.api_version) for b in update.items)
            changed = store.replace(bodies)
            self._synced.add(resource)
        elif isinstance(update, Event):
            body = normalize(update.body, resource.kind, resource.api_version)
            changed = store.apply(update.type, body)
        elif isinstance(update, Missing):
            log.warning("kube.kind.gone", resource=str(resource), reason=update.reason)
            self._stop(resource)
            self._missing.discard(resource.kind)
            kind = next((k for k in WATCHED if k.kind == resource.kind), None)
            if kind is not None:
                self._log_missing(kind)
        if changed:
            self._changed()
            if resource.kind in ("Gateway", "GatewayClass"):
                self._reconcile_secrets()
        assert self._wakeup is not None
        self._wakeup.set()

    def _changed(self) -> None:
        self._changes += 1
        if self._first_change is None and self._loop is not None:
            self._first_change = self._loop.time()

    def _reconcile_secrets(self) -> None:
        """Watch exactly the Secrets that Gateways of our classes reference."""
        gateways = self._bodies("Gateway")
        classes = self._bodies("GatewayClass")
        wanted = referenced_secrets(gateways, classes, self.controller_name)
        if wanted == self._secrets:
            return
        for namespace, name in wanted - self._secrets:
            selector = f"metadata.name={name}"
            self._start(Resource.of(SECRET, "v1", namespace=namespace, field_selector=selector))
        gone = self._secrets - wanted
        for resource in [r for r in self.watchers if r.kind == "Secret"]:
            if (resource.namespace, resource.field_selector.removeprefix("metadata.name=")) in gone:
                self._stop(resource)
        self._secrets = wanted

    def _bodies(self, kind: str) -> list[Mapping[str, Any]]:
        return [
            body
            for resource, store in self._stores.items()
            if resource.kind == kind
            for body in store.objects.values()
        ]

    # -- settling and publishing ---------------------------------------------------------------

    async def _wait(self, seconds: float | None) -> None:
        assert self._wakeup is not None
        await wait_set(self._wakeup, seconds)

    async def _settle(self) -> None:
        """Wait for ``debounce`` without change and every watcher listed; at most ``max_delay``."""
        assert self._loop is not None
        assert self._first_change is not None
        first = self._first_change
        seen, last = self._changes, self._loop.time()
        while True:
            now = self._loop.time()
            if self._changes != seen:
                seen, last = self._changes, now
            quiet_until = last + self._debounce
            if now >= first + self._max_delay or (now >= quiet_until and self.synced):
                return
            limit = first + self._max_delay - now
            await self._wait(limit if now >= quiet_until else min(limit, quiet_until - now))

    def _publish(self, publish: Callable[[ObjectSnapshot], None]) -> None:
        objects: dict[ObjectKey, Mapping[str, Any]] = {}
        for store in self._stores.values():
            objects.update(store.objects)
        last = self._published
        if self._first_change is not None and self._loop is not None and last is not None:
            DEBOUNCE_SECONDS.observe(self._loop.time() - self._first_change)
        self._first_change = None
        if last is not None and objects == last.objects:
            return
        snapshot = ObjectSnapshot((last.version if last else 0) + 1, objects)
        self._published = snapshot
        log.info("kube.snapshot", version=snapshot.version, objects=len(objects))
        publish(snapshot)
