"""HTTPRoute filters and timeouts as values: what a rule asks for, and what its routes do.

Two stages, as everywhere in the translator:

    raw JSON --translator.parse_filters--> Filters, Timeouts   (on model.HTTPRule, BackendRef)
    Filters + resolved backends --translator.route_filters--> RouteFilters, HeaderEdits
                                                               (on ir.Route, ir.WeightedCluster)
    RouteFilters --translator.xds_filters--> Envoy route fields

The first group of values is the validated model of the Gateway API fields; the second is
IR: header edits in the order Envoy applies them, mirrors to named clusters. Nothing here
knows protobuf, and nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # model imports this module for its defaults
    from translator.model import BackendRef

PathModifierType = Literal["ReplaceFullPath", "ReplacePrefixMatch"]

# Well-known ports of the redirect schemes (the Gateway API leaves them out of Location).
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    """RequestHeaderModifier or ResponseHeaderModifier; names are lower-cased and unique."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: PathModifierType
    value: str  # ReplacePrefixMatch may be "" (strip the prefix)


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    scheme: str | None  # None: the request's scheme
    hostname: str | None  # None: the request's host
    port: int | None  # None: derived from the scheme or the listener (see location_port)
    path: PathModifier | None
    status_code: int


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None
    path: PathModifier | None


@dataclass(frozen=True, slots=True)
class RequestMirror:
    backend: BackendRef
    numerator: int
    denominator: int  # numerator <= denominator; 100% when both are equal


@dataclass(frozen=True, slots=True)
class Filters:
    """The valid filters of a rule or of one backendRef."""

    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: RequestRedirect | None = None
    rewrite: URLRewrite | None = None
    mirrors: tuple[RequestMirror, ...] = ()
    extension_refs: tuple[str, ...] = ()  # "group/Kind name": none can be resolved


NO_FILTERS = Filters()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """rules[].timeouts in milliseconds; 0 disables, None is Envoy's default."""

    request_ms: int | None = None
    backend_request_ms: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderEdit:
    name: str
    value: str
    append: bool  # False: overwrite (set)


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """Header changes in Envoy's terms: the removals, then each edit in order."""

    edits: tuple[HeaderEdit, ...] = ()
    remove: tuple[str, ...] = ()

    def then(self, later: HeaderEdits | None) -> HeaderEdits:
        """These edits followed by ``later`` ones, as one list Envoy applies at once.

        Envoy removes before it adds, so an earlier edit of a name that is removed or set
        later is dropped; every removal is kept (an earlier removal still takes away what the
        client sent before a later edit adds the name again).
        """
        if later is None:
            return self
        overridden = set(later.remove) | {e.name for e in later.edits if not e.append}
        kept = tuple(e for e in self.edits if e.name not in overridden)
        removed = tuple(dict.fromkeys(self.remove + later.remove))
        return HeaderEdits(kept + later.edits, removed)


def header_edits(modifier: HeaderModifier | None) -> HeaderEdits | None:
    if modifier is None:
        return None
    edits = [HeaderEdit(name, value, append=False) for name, value in modifier.set]
    edits += [HeaderEdit(name, value, append=True) for name, value in modifier.add]
    return HeaderEdits(tuple(edits), modifier.remove)


def chain(first: HeaderEdits | None, later: HeaderEdits | None) -> HeaderEdits | None:
    return later if first is None else first.then(later)


@dataclass(frozen=True, slots=True)
class Mirror:
    """A resolved RequestMirror: a share of requests copied to ``cluster``."""

    cluster: str
    numerator: int
    denominator: int  # 100, 10_000 or 1_000_000 (what Envoy's FractionalPercent offers)


@dataclass(frozen=True, slots=True)
class RouteFilters:
    """What an IR route does besides choosing backends."""

    request_headers: HeaderEdits | None = None
    response_headers: HeaderEdits | None = None
    redirect: RequestRedirect | None = None
    rewrite: URLRewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    timeouts: Timeouts | None = None
    # The port a redirect's Location names (None: none); set once the route is placed on a
    # listener, whose port and protocol it depends on (translator.route_filters.on_listener).
    redirect_port: int | None = None


NO_ROUTE_FILTERS = RouteFilters()


def envoy_fraction(numerator: int, denominator: int) -> tuple[int, int]:
    """numerator/denominator with a denominator Envoy offers (exact when it can be)."""
    for offered in (100, 10_000, 1_000_000):
        if (numerator * offered) % denominator == 0:
            return numerator * offered // denominator, offered
    return round(numerator * 1_000_000 / denominator), 1_000_000


def location_port(
    redirect: RequestRedirect, listener_port: int, listener_scheme: str
) -> int | None:
    """The port a redirect's Location names, or None when it is the scheme's well-known one.

    As the Gateway API says: the filter's port; else the well-known port of the filter's
    scheme; else the listener's port.
    """
    scheme = redirect.scheme or listener_scheme
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme is not None:
        port = DEFAULT_PORTS[redirect.scheme]
    else:
        port = listener_port
    return None if DEFAULT_PORTS.get(scheme) == port else port


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def match_prefix(value: str) -> str:
    """A PathPrefix match without its trailing slashes, as routes match it ("/" stays)."""
    return value.rstrip("/") or "/"


def strip_prefix_regex(prefix: str) -> str:
    """RE2 pattern for a path prefix (no trailing slash) and the slashes that follow it."""
    escaped = "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in prefix)
    return f"^{escaped}/*"
