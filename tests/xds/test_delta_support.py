"""A gRPC delta-ADS test proxy and request builders, shared by the delta tests (no tests here).

``DeltaProxy`` is a real grpc.aio client of ``DeltaAggregatedResources`` with a request
queue, acting as Envoy; tests drive its subscriptions, ACKs and NACKs by hand. Resource
builders come from ``test_ads_support``. ``DELTA`` is the protocol as the tests of rules
common to SotW and delta drive it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from support.xds_clients import AdsClient, XdsProtocol, connected
from test_ads_support import MESSAGE_CLASSES

from xds_server.cache import resource_name


def delta_request(
    type_url: str,
    subscribe: Iterable[str] = (),
    unsubscribe: Iterable[str] = (),
    *,
    nonce: str = "",
    initial: Mapping[str, str] | None = None,
    error: str | None = None,
    node_msg: Any = None,
) -> Any:
    """A DeltaDiscoveryRequest; with ``nonce`` an ACK, with ``error`` too a NACK."""
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
    )
    for name, version in (initial or {}).items():
        req.initial_resource_versions[name] = version
    if node_msg is not None:
        req.node.CopyFrom(node_msg)
    if error is not None:
        req.error_detail.code = 13
        req.error_detail.message = error
    return req


def delta_ack(response: Any, subscribe: Iterable[str] = (), unsubscribe: Iterable[str] = ()) -> Any:
    """The ACK of ``response``, optionally changing the subscription."""
    return delta_request(response.type_url, subscribe, unsubscribe, nonce=response.nonce)


def delta_nack(response: Any, message: str) -> Any:
    """The NACK of ``response``."""
    return delta_request(response.type_url, nonce=response.nonce, error=message)


def added(response: Any) -> list[str]:
    """The names of the resources a DeltaDiscoveryResponse adds or changes, in order."""
    return [r.name for r in response.resources]


def removed(response: Any) -> list[str]:
    return list(response.removed_resources)


def versions(response: Any) -> dict[str, str]:
    """name -> per-resource version of a DeltaDiscoveryResponse."""
    return {r.name: r.version for r in response.resources}


def delta_decode(response: Any) -> list[Any]:
    """The resources of a DeltaDiscoveryResponse as messages (names checked)."""
    out = []
    for entry in response.resources:
        message = MESSAGE_CLASSES[entry.resource.type_url]()
        entry.resource.Unpack(message)
        assert resource_name(message) == entry.name
        out.append(message)
    return out


class DeltaProxy(AdsClient):
    """A grpc.aio delta ADS client acting as one Envoy: queue requests, await responses."""

    method = "DeltaAggregatedResources"

    def summary(self, response: Any) -> str:
        return f"{response.type_url} +{added(response)} -{removed(response)}"


def delta_proxies(
    target: str, *nodes: Any
) -> contextlib.AbstractAsyncContextManager[list[DeltaProxy]]:
    """Connected DeltaProxies, closed on exit."""
    return connected(DeltaProxy, target, *nodes)


def _ack_keeping_subscription(response: Any, _names: Iterable[str]) -> Any:
    """A delta ACK names no resources: the subscription stays as the requests left it."""
    return delta_ack(response)


def _system_version(response: Any) -> str:
    return str(response.system_version_info)


DELTA = XdsProtocol(
    "delta",
    DeltaProxy,
    delta_request,
    _ack_keeping_subscription,
    added,
    _system_version,
    delta_decode,
)
delta_handshake = DELTA.handshake  # legacy wildcard CDS, EDS, LDS, RDS, each ACKed
