"""GRPCRoute JSON -> ``translator.model.GRPCRoute``, with the GRPCRoute CRD's validation.

Called by ``translator.parse.parse_inventory`` for every GRPCRoute. What a GRPCRoute shares
with an HTTPRoute (parentRefs, hostnames, backendRefs, header matches) is parsed by
``translator.parse``'s helpers; only what is gRPC's own is here: method matches, and the
request path a method match stands for (``method_path``, also used by
``translator.grpcroutes`` to compile it). Like ``translator.parse`` it never raises on bad
input: a bad match, filter or backendRef is a ``Problem`` that drops its rule. Filters are
parsed by ``translator.parse_filters`` (HTTPRoute's), once their type is one GRPCRoute allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from translator import kube, validate
from translator.conditions import R_UNSUPPORTED_VALUE, Problem
from translator.filters import NO_FILTERS, Filters
from translator.model import (
    GRPCMatch,
    GRPCMethodMatch,
    GRPCRoute,
    GRPCRule,
    PathMatch,
)
from translator.parse import _value_matches, parse_backend_ref, parse_route_head
from translator.parse_filters import parse_filters

# The CRD's patterns for Exact matches (the service may start with "." as a fully qualified
# protobuf name; the request path never does, so the dot is dropped).
_SERVICE = re.compile(r"^\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$")
_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")
_MAX_NAME = 1024
_ANY_SEGMENT = "[^/]+"
# GRPCRouteFilterType: what a GRPCRoute may hold (HTTPRoute's redirects and rewrites are not).
GRPC_FILTERS = frozenset(
    {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"}
)


def parse_grpc_route(body: Mapping[str, Any]) -> GRPCRoute:
    head = parse_route_head(body)
    raw_rules = kube.items(body, "spec", "rules") or ({},)
    rules = tuple(
        parse_grpc_rule(index, kube.mapping(raw), head.meta.namespace)
        for index, raw in enumerate(raw_rules)
    )
    return GRPCRoute(
        head.meta, head.parent_refs, head.hostnames, rules, head.problems, head.other_parents
    )


def parse_grpc_rule(index: int, raw: Mapping[str, Any], namespace: str) -> GRPCRule:
    problems: list[Problem] = []
    matches = []
    for raw_match in kube.items(raw, "matches") or ({},):
        method = parse_method_match(kube.field(raw_match, "method"), problems)
        headers = _value_matches(kube.items(raw_match, "headers"), "header", problems)
        matches.append(GRPCMatch(method, headers))
    filters = _filters(kube.items(raw, "filters"), namespace, problems, on_backend=False)
    backends = []
    for raw_ref in kube.items(raw, "backendRefs"):
        ref, ref_problems = parse_backend_ref(kube.mapping(raw_ref), namespace)
        problems.extend(ref_problems)
        raw_filters = kube.items(raw_ref, "filters")
        ref_filters = _filters(raw_filters, namespace, problems, on_backend=True)
        backends.append(ref if ref_filters == NO_FILTERS else replace(ref, filters=ref_filters))
    return GRPCRule(
        index=index,
        name=kube.optional_string(raw, "name"),
        matches=tuple(matches),
        backends=tuple(backends),
        problems=tuple(problems),
        filters=filters,
    )


def _filters(
    raws: tuple[Any, ...], namespace: str, problems: list[Problem], *, on_backend: bool
) -> Filters:
    """Filters of a rule or backendRef, parsed as HTTPRoute's once the type is one of gRPC's."""
    kinds = [kube.string(raw, "type") for raw in raws]
    wrong = [kind or "(no type)" for kind in kinds if kind not in GRPC_FILTERS]
    if wrong:
        problems.extend(
            Problem(R_UNSUPPORTED_VALUE, f"filter {kind} is not supported on a GRPCRoute")
            for kind in wrong
        )
        return NO_FILTERS
    filters, found = parse_filters(raws, namespace, on_backend=on_backend)
    problems.extend(found)
    return filters


def parse_method_match(raw: object, problems: list[Problem]) -> GRPCMethodMatch | None:
    """A method match, or None for "any method" (absent, or refused with a problem)."""
    if raw is None:
        return None
    type_ = kube.string(raw, "type", default="Exact")
    service = kube.optional_string(raw, "service") or None
    method = kube.optional_string(raw, "method") or None
    message = _method_problem(type_, service, method)
    if message is None and type_ == "Exact" and service is not None:
        service = service.removeprefix(".")
    if message is None:
        match = GRPCMethodMatch(type_, service, method)  # type: ignore[arg-type]
        path = method_path(match)
        message = validate.regex_problem(path.value) if path.type == "RegularExpression" else None
        if message is None:
            return match
    problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    return None


def _method_problem(type_: str, service: str | None, method: str | None) -> str | None:
    if type_ not in {"Exact", "RegularExpression"}:
        return f"method match type {type_!r} is not supported"
    if service is None and method is None:
        return "a method match needs a service, a method or both"
    for what, value, pattern in (("service", service, _SERVICE), ("method", method, _METHOD)):
        if value is None:
            continue
        if len(value) > _MAX_NAME:
            return f"{what} is longer than {_MAX_NAME} characters"
        if type_ == "RegularExpression":
            message = validate.regex_problem(value)
            if message is not None:
                return f"{what}: {message}"
        elif not pattern.fullmatch(value):  # "$" alone would allow a final newline
            return f"{what} {value!r} is not a valid gRPC {what} name"
    return None


def method_path(match: GRPCMethodMatch) -> PathMatch:
    """The request path match of a method match (gRPC calls POST ``/service/method``).

    Exact service and method: that path; service only: the ``/service/`` prefix; method
    only: a regular expression for any service; RegularExpression: one expression made of
    both parts (each wrapped in a group, a missing one matching any segment).
    """
    if match.type == "Exact":
        if match.service is not None and match.method is not None:
            return PathMatch("Exact", f"/{match.service}/{match.method}")
        if match.service is not None:
            return PathMatch("PathPrefix", f"/{match.service}/")
        return PathMatch("RegularExpression", f"/{_ANY_SEGMENT}/{re.escape(match.method or '')}")
    service = f"(?:{match.service})" if match.service is not None else _ANY_SEGMENT
    method = f"(?:{match.method})" if match.method is not None else _ANY_SEGMENT
    return PathMatch("RegularExpression", f"/{service}/{method}")
