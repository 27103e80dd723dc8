"""Protobuf wire encoding of DeltaDiscoveryResponse from the cache's pre-encoded resources.

The delta ADS server (``xds_server.delta``) builds every response here. A cache ``Resource``
already holds its ``chunk``: field 2 of a DiscoveryResponse, an ``Any``. In the delta
``Resource`` message the ``Any`` is field 2 too, so the chunk is reused as it is and only
the two small fields around it are added (each entry cached by digest, never a protobuf
call)::

    DeltaDiscoveryResponse = field 1  system_version_info  (string)
                             field 2  resources  (repeated Resource)  <- framed chunks
                             field 4  type_url           (string)
                             field 5  nonce              (string)
                             field 6  removed_resources  (repeated string)
                             field 7  control_plane      (core.v3.ControlPlane)

    Resource = field 1 version (the digest) | field 2 resource (the chunk) | field 3 name

Fields are written in field-number order, so the bytes equal what
``DeltaDiscoveryResponse.SerializeToString()`` produces. This module holds no state except
the bounded entry cache, parses nothing and imports neither grpc nor the cache's classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from xds_server.wire import CONTROL_PLANE_ID, len_field, string_field, varint

_RESOURCES_TAG = varint(2 << 3 | 2)  # DeltaDiscoveryResponse.resources, length-delimited
_ENTRY_CACHE_LIMIT = 1 << 16  # entries kept; past it the older half is dropped

# core.v3.ControlPlane{identifier: "gateway-xds"} as field 7 of DeltaDiscoveryResponse.
CONTROL_PLANE_FIELD = len_field(7, string_field(1, CONTROL_PLANE_ID))


class Encodable(Protocol):
    """What the encoder reads of a cache ``Resource``."""

    @property
    def name(self) -> str: ...

    @property
    def chunk(self) -> bytes: ...

    @property
    def digest(self) -> str: ...


_entries: dict[str, bytes] = {}


def resource_entry(resource: Encodable) -> bytes:
    """One ``resources`` entry: Resource{version=digest, resource=Any, name} (cached)."""
    entry = _entries.get(resource.digest)
    if entry is None:
        body = string_field(1, resource.digest) + resource.chunk + string_field(3, resource.name)
        entry = _RESOURCES_TAG + varint(len(body)) + body
        if len(_entries) >= _ENTRY_CACHE_LIMIT:
            for old in list(_entries)[: _ENTRY_CACHE_LIMIT // 2]:
                del _entries[old]
        _entries[resource.digest] = entry
    return entry


def delta_response(
    system_version_info: str,
    resources: Iterable[Encodable],
    type_url: str,
    nonce: str,
    removed: Iterable[str] = (),
    *,
    control_plane: bytes = CONTROL_PLANE_FIELD,
) -> bytes:
    """A serialized DeltaDiscoveryResponse; each resource's version is its digest."""
    parts = [string_field(1, system_version_info)]
    parts.extend(map(resource_entry, resources))
    parts.append(string_field(4, type_url))
    parts.append(string_field(5, nonce))
    parts.extend(len_field(6, name.encode()) for name in removed)
    parts.append(control_plane)
    return b"".join(parts)
