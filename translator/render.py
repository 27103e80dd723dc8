"""A TranslationResult as JSON: the shape of `xdsctl translate` and `/api/config_dump`.

``{"gateways": {"ns/name": {"listeners": [...], "routes": [...], "clusters": [...],
"endpoints": [...], "secrets": [...]}}, "status": [...]}``; resources are proto3 JSON as in
Envoy's config_dump, secrets with their key material redacted.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from translator.result import TYPE_KEYS, GatewayResources, TranslationResult

REDACTED = "[redacted]"


def resource_json(message: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = _plain(json_format.MessageToDict(message))
    return rendered


def _plain(value: Any) -> Any:
    """Plain dicts and lists (MessageToDict gives OrderedDicts for Any fields)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def gateway_json(resources: GatewayResources) -> dict[str, list[dict[str, Any]]]:
    rendered = {
        TYPE_KEYS[type_url]: [resource_json(m) for m in messages]
        for type_url, messages in resources.by_type().items()
    }
    rendered["secrets"] = [_redact(secret) for secret in rendered["secrets"]]
    return rendered


def result_json(result: TranslationResult, gateway: str | None = None) -> dict[str, Any]:
    gateways = {
        key: gateway_json(resources)
        for key, resources in result.gateways.items()
        if gateway is None or key == gateway
    }
    return {"gateways": gateways, "status": [dict(entry) for entry in result.statuses]}


def _redact(value: Any) -> Any:
    """Every inline key, certificate or password replaced: config dumps must not leak them."""
    if isinstance(value, dict):
        return {
            k: REDACTED if k in {"inlineBytes", "inlineString"} else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value
