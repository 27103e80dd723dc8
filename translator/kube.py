"""Safe reads of raw Kubernetes JSON, which may hold anything a user typed.

Every accessor returns a default instead of raising when a field is missing or has the wrong
type, so the parse step can turn bad input into status conditions rather than exceptions.
Used by ``translator.parse``; holds no Gateway API knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "gateway-xds.io/gatewayclass-controller"

Body = Mapping[str, Any]


_EMPTY: Body = {}


def _is_mapping(value: object) -> bool:
    # Bodies are parsed JSON, so nearly always dicts: test that first (ABC checks are slow).
    return type(value) is dict or isinstance(value, Mapping)


def mapping(value: object) -> Body:
    """``value`` if it is a mapping, else an empty one."""
    return value if _is_mapping(value) else _EMPTY  # type: ignore[return-value]


def field(body: object, *path: str) -> object:
    """The value at ``path`` inside nested mappings, or None."""
    current: Any = body
    for key in path:
        if type(current) is dict or isinstance(current, Mapping):
            current = current.get(key)
        else:
            return None
    return current


def string(body: object, *path: str, default: str = "") -> str:
    value = field(body, *path)
    return value if type(value) is str or isinstance(value, str) else default


def optional_string(body: object, *path: str) -> str | None:
    value = field(body, *path)
    return value if isinstance(value, str) else None


def integer(body: object, *path: str) -> int | None:
    value = field(body, *path)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def items(body: object, *path: str) -> tuple[Any, ...]:
    """The list at ``path`` as a tuple; anything else is empty."""
    value = field(body, *path)
    if type(value) is list:
        return tuple(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return tuple(value)
    return ()


_JSON_TYPES: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
}


def wrong_type(body: object, key: str, expected: type, what: str) -> str | None:
    """Why ``body[key]`` is unusable when present with another JSON type than ``expected``.

    A missing field (or null) is fine: the accessors read it as absent. A field of the wrong
    type must not read as absent, because absent often means "anything" (no hostnames: every
    host), so the caller turns this message into a Problem.
    """
    if not isinstance(body, Mapping) or body.get(key) is None:
        return None
    value = body[key]
    if expected is dict:
        ok = isinstance(value, Mapping)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if ok:
        return None
    return f"{what} must be {_JSON_TYPES.get(expected, expected.__name__)}, not {value!r}"


def kind_of(body: Body) -> str:
    return string(body, "kind")


def group_of(body: Body) -> str:
    api_version = string(body, "apiVersion")
    return api_version.rpartition("/")[0]


def namespace_of(body: Body) -> str:
    metadata = body.get("metadata")
    value = metadata.get("namespace") if type(metadata) is dict else None
    return value if type(value) is str else string(body, "metadata", "namespace")


def name_of(body: Body) -> str:
    metadata = body.get("metadata")
    value = metadata.get("name") if type(metadata) is dict else None
    return value if type(value) is str else string(body, "metadata", "name")


def generation_of(body: Body) -> int:
    return integer(body, "metadata", "generation") or 0


def labels_of(body: Body) -> Mapping[str, str]:
    labels = mapping(field(body, "metadata", "labels"))
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}
