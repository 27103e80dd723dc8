"""A rule's filters and timeouts -> IR: what its routes and each backend share do.

Called by ``translator.routeflow`` for every valid rule, once its backendRefs are resolved:

    backend_share     one backendRef -> its weighted share, with the backend's header edits
    resolve_mirrors   RequestMirror backendRefs -> clusters (resolved like any backendRef;
                      one that cannot be resolved is left out and reported in ResolvedRefs)
    rule_filters      the rule's RouteFilters, and the shares with header edits placed where
                      Envoy applies them in the Gateway API's order
    with_filters      the rule's IR routes carrying those RouteFilters
    on_listener       a redirecting route placed on a listener: the port its Location names

ExtensionRef filters name nothing we can resolve. The spec says the filter must not be
skipped and requests it would have processed must get an error: the rule (or, on a
backendRef, that backend's share) answers 500, and ResolvedRefs is False (InvalidKind).
Pure, like the rest of the translator.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from translator.backends import resolve
from translator.conditions import R_INVALID_KIND, Problem
from translator.filters import (
    NO_FILTERS,
    NO_ROUTE_FILTERS,
    Filters,
    HeaderEdits,
    Mirror,
    RouteFilters,
    Timeouts,
    chain,
    envoy_fraction,
    header_edits,
    location_port,
)
from translator.gateways import ListenerState
from translator.ir import Cluster, Route, WeightedCluster
from translator.model import BackendRef, Meta
from translator.parse import Inventory

_TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})


class RouteOwner(Protocol):
    """What mirror resolution reads of a route (its kind and namespace)."""

    @property
    def kind(self) -> str: ...
    @property
    def meta(self) -> Meta: ...


def rule_extras(rule: object) -> tuple[Filters, Timeouts | None]:
    """The filters and timeouts of a rule; route kinds whose rules have none get none."""
    filters = getattr(rule, "filters", NO_FILTERS)
    timeouts = getattr(rule, "timeouts", None)
    return (
        filters if isinstance(filters, Filters) else NO_FILTERS,
        timeouts if isinstance(timeouts, Timeouts) else None,
    )


def backend_share(ref: BackendRef, cluster: str | None, problems: list[Problem]) -> WeightedCluster:
    """A backendRef's share of traffic, with its own filters (an ExtensionRef: 500)."""
    filters = ref.filters
    if filters.extension_refs:
        problems.extend(_extension_problems(filters))
        cluster = None
    return WeightedCluster(
        cluster,
        ref.weight,
        request_headers=header_edits(filters.request_headers),
        response_headers=header_edits(filters.response_headers),
    )


def resolve_mirrors(
    route: RouteOwner,
    rule: object,
    inv: Inventory,
    clusters: dict[str, Cluster],
    problems: list[Problem],
) -> tuple[Mirror, ...]:
    """The rule's RequestMirror filters whose backendRef resolves to a cluster."""
    found = []
    for mirror in rule_extras(rule)[0].mirrors:
        resolved = resolve(mirror.backend, route.kind, route.meta.namespace, inv)
        if resolved.problem is not None:
            problems.append(resolved.problem)
        if resolved.cluster is not None:
            clusters[resolved.cluster.name] = resolved.cluster
            numerator, denominator = envoy_fraction(mirror.numerator, mirror.denominator)
            found.append(Mirror(resolved.cluster.name, numerator, denominator))
    return tuple(found)


def rule_filters(
    rule: object,
    shares: tuple[WeightedCluster, ...],
    mirrors: tuple[Mirror, ...],
    problems: list[Problem],
) -> tuple[RouteFilters, tuple[WeightedCluster, ...]]:
    """The RouteFilters of the rule's routes, and its shares (none: every request gets 500)."""
    filters, timeouts = rule_extras(rule)
    if filters.extension_refs:
        problems.extend(_extension_problems(filters))
        return NO_ROUTE_FILTERS, ()
    request, response, shares = _place_headers(filters, shares)
    result = RouteFilters(
        request_headers=request,
        response_headers=response,
        redirect=filters.redirect,
        rewrite=filters.rewrite,
        mirrors=mirrors,
        timeouts=timeouts,
    )
    return result, shares


def _place_headers(
    filters: Filters, shares: tuple[WeightedCluster, ...]
) -> tuple[HeaderEdits | None, HeaderEdits | None, tuple[WeightedCluster, ...]]:
    """Route-level header edits, and the shares with theirs.

    The rule's edits come first, a backend's after them. Envoy applies a weighted cluster's
    edits before the route's, so with per-backend edits and several shares each share gets
    the rule's edits followed by its own; with one share everything goes on the route.
    """
    request = header_edits(filters.request_headers)
    response = header_edits(filters.response_headers)
    if not any(s.request_headers or s.response_headers for s in shares):
        return request, response, shares
    if len(shares) == 1:
        only = shares[0]
        bare = replace(only, request_headers=None, response_headers=None)
        return chain(request, only.request_headers), chain(response, only.response_headers), (bare,)
    placed = tuple(
        replace(
            s,
            request_headers=chain(request, s.request_headers),
            response_headers=chain(response, s.response_headers),
        )
        for s in shares
    )
    return None, None, placed


def with_filters(routes: list[Route], filters: RouteFilters) -> list[Route]:
    if filters == NO_ROUTE_FILTERS:
        return routes
    return [replace(r, filters=filters) for r in routes]


def on_listener(route: Route, listener: ListenerState) -> Route:
    """``route`` as served on ``listener``: a redirect learns the port its Location names."""
    redirect = route.filters.redirect
    if redirect is None:
        return route
    scheme = "https" if listener.listener.protocol in _TLS_PROTOCOLS else "http"
    port = location_port(redirect, listener.listener.port, scheme)
    return replace(route, filters=replace(route.filters, redirect_port=port))


def _extension_problems(filters: Filters) -> list[Problem]:
    return [
        Problem(R_INVALID_KIND, f"filter extensionRef {shown} is not supported: requests get 500")
        for shown in filters.extension_refs
    ]
