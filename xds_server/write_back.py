"""Status write-back under leader election: a ``LeaderElector`` and a ``StatusWriter`` together.

Who calls it: ``xds_server.app`` when serving ``--kubernetes`` (unless status writing is
off): ``WriteBack.start`` after the provider is built, ``notify`` after each translation,
``stop`` on shutdown (the Lease is released, so another replica takes over at once).

What it does: elects with the Lease in ``LeaseSettings``; the writer writes only while this
replica leads, and diffs everything again when it becomes leader. With ``statuses``, every
replica also reports its proxies' rejections (``xds_server.replica_reports``) and the leader
merges the others' into the ProxiesAccepted condition it writes. The API version of each
kind is the one the provider watches (discovery decided it), so a TCPRoute served only at
v1alpha2 is written there.

What it must not do: block the event loop (``start`` only starts threads; call ``stop`` from
a thread), or write anything but status subresources and its Lease.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from watcher.kubernetes import KubernetesProvider
from xds_server.leader import LeaderElector, LeaseSettings
from xds_server.proxy_conditions import GatewayStatuses, Rejection
from xds_server.replica_reports import ReplicaReports
from xds_server.status_writer import Resolver, StatusWriter

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    """``POD_NAMESPACE``, else the service account's namespace, else ``default``."""
    if namespace := os.environ.get("POD_NAMESPACE"):
        return namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def default_identity() -> str:
    """``POD_NAME`` (or the host name) with a random suffix: unique per process."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def provider_resolver(provider: KubernetesProvider) -> Resolver:
    """kind -> (apiVersion, plural) of the collection the provider watches, None if none."""

    def resolve(kind: str) -> tuple[str, str] | None:
        watcher = provider.watcher(kind)
        if watcher is None:
            return None
        return watcher.resource.api_version, watcher.resource.plural

    return resolve


class WriteBack:
    """One replica's leader election and status writer."""

    def __init__(
        self,
        api_client: Any,
        lease: LeaseSettings,
        *,
        source: Callable[[], Sequence[Mapping[str, Any]]],
        controller_name: str,
        resolve: Resolver | None = None,
        poll_interval: float = 1.0,
        statuses: GatewayStatuses | None = None,
        report_interval: float = 5.0,
    ) -> None:
        self.writer = StatusWriter(
            api_client,
            source=source,
            controller_name=controller_name,
            resolve=resolve,
            is_leader=lambda: self.elector.is_leader,
            poll_interval=poll_interval,
        )
        self.elector = LeaderElector(api_client, lease, on_change=self.writer.notify)
        # With ``statuses``: every replica reports its proxies' rejections; the leader merges
        # the others' into the ProxiesAccepted condition it writes.
        self.reports: ReplicaReports | None = None
        if statuses is not None:

            def peers(found: Mapping[str, tuple[Rejection, ...]]) -> None:
                if statuses.set_peer_rejections(found):
                    self.writer.notify()

            self.reports = ReplicaReports(
                api_client, lease, local=lambda: statuses.local_rejections, on_peers=peers,
                is_leader=lambda: self.elector.is_leader, interval=report_interval,
            )  # fmt: skip

    def start(self) -> None:
        self.writer.start()
        self.elector.start()
        if self.reports is not None:
            self.reports.start()

    def notify(self) -> None:
        self.writer.notify()

    def stop(self, *, release: bool = True) -> None:
        """Stop writing and reporting (an empty report), then stop renewing (and release the
        Lease). Blocks: call in a thread."""
        self.writer.stop()
        if self.reports is not None:
            self.reports.stop()
        self.elector.stop(release=release)
