"""Protobuf wire encoding of DiscoveryResponse from pre-serialized resource bytes.

The snapshot cache (``xds_server.cache``) encodes each resource once, as the complete
``resources`` entry (field 2) of a DiscoveryResponse; the ADS server (``xds_server.ads``)
builds every response by concatenating those entries with the few per-response fields::

    DiscoveryResponse = field 1  version_info   (string)
                        field 2  resources      (repeated google.protobuf.Any)  <- chunks
                        field 4  type_url       (string)
                        field 5  nonce          (string)
                        field 6  control_plane  (core.v3.ControlPlane{identifier = 1})

Fields are written in field-number order, as the protobuf runtime does, so the bytes equal
what ``DiscoveryResponse.SerializeToString()`` would produce. This module only encodes
bytes: it holds no state, parses nothing and must not import grpc or the cache.
"""

from __future__ import annotations

from collections.abc import Iterable

CONTROL_PLANE_ID = "gateway-xds"

_WIRE_LEN = 2  # protobuf wire type of length-delimited fields (strings, bytes, messages)


def varint(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def len_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (tag, length, payload), written even when empty."""
    return varint(number << 3 | _WIRE_LEN) + varint(len(payload)) + payload


def string_field(number: int, value: str) -> bytes:
    """A proto3 string field; empty strings are the default and are not written."""
    return len_field(number, value.encode()) if value else b""


def any_chunk(type_url: str, value: bytes) -> bytes:
    """The DiscoveryResponse ``resources`` entry (field 2) holding Any{type_url, value}."""
    body = string_field(1, type_url) + (len_field(2, value) if value else b"")
    return len_field(2, body)


# core.v3.ControlPlane{identifier: "gateway-xds"} as field 6 of DiscoveryResponse.
CONTROL_PLANE_FIELD = len_field(6, string_field(1, CONTROL_PLANE_ID))


def discovery_response(
    version_info: str,
    chunks: Iterable[bytes],
    type_url: str,
    nonce: str,
    control_plane: bytes = CONTROL_PLANE_FIELD,
) -> bytes:
    """A serialized DiscoveryResponse made of pre-encoded ``any_chunk`` entries."""
    return b"".join(
        (
            string_field(1, version_info),
            *chunks,
            string_field(4, type_url),
            string_field(5, nonce),
            control_plane,
        )
    )
