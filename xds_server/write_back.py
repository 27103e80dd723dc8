"""Status write-back under leader election: a ``LeaderElector`` and a ``StatusWriter`` together.

Who calls it: ``xds_server.app`` when serving ``--kubernetes`` (unless status writing is
off): ``WriteBack.start`` after the provider is built, ``notify`` after each translation,
``stop`` on shutdown (the Lease is released, so another replica takes over at once).

What it does: elects with the Lease in ``LeaseSettings``; the writer writes only while this
replica leads, and diffs everything again when it becomes leader. The API version of each
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

    def start(self) -> None:
        self.writer.start()
        self.elector.start()

    def notify(self) -> None:
        self.writer.notify()

    def stop(self, *, release: bool = True) -> None:
        """Stop writing, then stop renewing (and release the Lease). Blocks: call in a thread."""
        self.writer.stop()
        self.elector.stop(release=release)
