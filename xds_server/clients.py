"""What each connected proxy was sent and acknowledged: one view shared by SotW and delta.

The ADS servers (``xds_server.ads`` for state of the world, ``xds_server.delta`` for delta
xDS) keep their own per-stream state; each turns it into a ``ClientView`` on demand. Every
reader of "what does this proxy have" uses views only: the admin API (``/api/clients``),
CSDS, ``xdsctl proxy-status`` and the Gateway status condition about rejected config. ::

    ads.StreamState ──view()──┐
                              ├──► ClientView(node, gateway, protocol, types{type_url: TypeView})
    delta.StreamState ─view()─┘

A ``TypeView`` holds resources as the cache's ``Resource`` values (name, digest, bytes), so a
reader can compare what a proxy has with the cache's current snapshot resource by resource.
This module holds data and pure helpers only: no I/O, no gRPC, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from xds_server.cache import Resource

Protocol = Literal["sotw", "delta"]
_NO_RESOURCES: Mapping[str, Resource] = MappingProxyType({})


def _no_resources() -> Mapping[str, Resource]:
    return _NO_RESOURCES


@dataclass(frozen=True, slots=True)
class Nack:
    """A response of one type a proxy rejected: the version it carried and Envoy's message."""

    version: str
    message: str
    at: float  # wall clock, seconds since the epoch


@dataclass(frozen=True, slots=True)
class TypeView:
    """One type URL of one stream.

    ``sent`` is what the proxy holds once everything sent was applied (for SotW the last
    response; for delta the accumulated adds minus removals); ``acked`` is what it confirmed.
    Versions are content versions (``cache.content_version``) of those sets. ``nack`` is the
    last rejection while it still stands (no later ACK of that type), else None.
    """

    type_url: str
    subscribed: bool = False
    names: frozenset[str] = frozenset()  # requested names; empty (or "*") is a wildcard
    sent_version: str = ""
    sent: Mapping[str, Resource] = field(default_factory=_no_resources)
    pending: bool = False  # a response awaits its ACK/NACK
    acked_version: str = ""
    acked: Mapping[str, Resource] = field(default_factory=_no_resources)
    nack: Nack | None = None
    last_nack: Nack | None = None  # the most recent rejection, even if since superseded


@dataclass(frozen=True, slots=True)
class ClientView:
    """One connected proxy, as every reader outside the ADS servers sees it."""

    stream_id: int
    protocol: Protocol
    node_id: str
    node_cluster: str
    gateway: str | None
    peer: str
    connected_at: float  # wall clock
    types: Mapping[str, TypeView]

    @property
    def rejected(self) -> dict[str, Nack]:
        """The types whose last response this proxy rejected, and why (no ACK since)."""
        return {t: v.nack for t, v in self.types.items() if v.nack is not None}
