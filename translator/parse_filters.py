"""Raw filters and timeouts of an HTTPRoute rule -> ``translator.filters`` values, checked.

Called by ``translator.parse`` (``parse_http_rule``) once per rule. Like the rest of the
parse step it never raises: whatever the Gateway API's schema and CEL rules would refuse,
and whatever we cannot program, becomes a ``Problem`` that drops the rule (Accepted False or
PartiallyInvalid). What it checks:

- the filter type: known and implemented (CORS, ExternalAuth and unknown types are not),
  its own field set and no other; on a backendRef only the header modifiers and ExtensionRef;
- each filter's values (header names and values, hostnames, ports, status codes, paths,
  mirror fractions), as the CRDs validate them, and what Envoy would reject (the Host header);
- combinations: a filter repeated where the spec forbids it, RequestRedirect with URLRewrite
  or RequestMirror (``IncompatibleFilters``), RequestRedirect with backendRefs,
  ReplacePrefixMatch without exactly one PathPrefix match;
- timeouts: Gateway API durations, backendRequest not longer than request.

ExtensionRef filters parse fine (their references are reported as ResolvedRefs later, by
``translator.route_filters``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from translator import kube, validate
from translator.conditions import R_INCOMPATIBLE_FILTERS, R_UNSUPPORTED_VALUE, Problem
from translator.filters import (
    NO_FILTERS,
    Filters,
    HeaderModifier,
    PathModifier,
    RequestMirror,
    RequestRedirect,
    Timeouts,
    URLRewrite,
    match_prefix,
    strip_prefix_regex,
)
from translator.model import BackendRef, HTTPMatch

FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
    "ExtensionRef": "extensionRef",
    "CORS": "cors",
    "ExternalAuth": "externalAuth",
}
NOT_IMPLEMENTED = frozenset({"CORS", "ExternalAuth"})
ON_BACKENDS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "ExtensionRef"})
REPEATABLE = frozenset({"RequestMirror", "ExtensionRef", "ExternalAuth"})
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_HEADER_VALUE = 4096
MAX_PATH = 1024

_DURATION = re.compile(r"([0-9]{1,5}(h|m|s|ms)){1,4}")
_DURATION_PART = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Messages = list[str]


@dataclass(frozen=True, slots=True)
class RuleExtras:
    """A rule's filters, timeouts and backendRefs (with their filters), and their problems."""

    filters: Filters
    timeouts: Timeouts | None
    backends: tuple[BackendRef, ...]
    problems: tuple[Problem, ...]


def parse_rule_extras(
    raw: Mapping[str, Any],
    namespace: str,
    matches: tuple[HTTPMatch, ...],
    backends: tuple[BackendRef, ...],
) -> RuleExtras:
    """Filters and timeouts of one rule; ``backends`` are its parsed backendRefs, in order."""
    if not _has_extras(raw):  # most rules: no filters, no timeouts, nothing to parse
        return RuleExtras(NO_FILTERS, None, backends, ())
    filters, problems = parse_filters(kube.items(raw, "filters"), namespace, on_backend=False)
    problems += rule_problems(filters, matches, bool(backends))
    with_filters = []
    for ref, raw_ref in zip(backends, kube.items(raw, "backendRefs"), strict=True):
        raw_filters = kube.items(raw_ref, "filters")
        ref_filters, ref_problems = parse_filters(raw_filters, namespace, on_backend=True)
        problems += ref_problems
        with_filters.append(ref if ref_filters == NO_FILTERS else replace(ref, filters=ref_filters))
    timeouts, timeout_problems = parse_timeouts(kube.field(raw, "timeouts"))
    problems += timeout_problems
    return RuleExtras(filters, timeouts, tuple(with_filters), tuple(problems))


def _has_extras(raw: Mapping[str, Any]) -> bool:
    if "filters" in raw or "timeouts" in raw:
        return True
    return any(isinstance(r, Mapping) and "filters" in r for r in kube.items(raw, "backendRefs"))


def parse_filters(
    raws: tuple[Any, ...], namespace: str, *, on_backend: bool
) -> tuple[Filters, list[Problem]]:
    """The filters of a rule or of a backendRef, or why they cannot be programmed."""
    problems: list[Problem] = []
    values: dict[str, list[Any]] = {}
    for raw in raws:
        body = kube.mapping(raw)
        kind = kube.string(body, "type")
        message = _type_problem(kind, body, on_backend)
        if message is None and kind not in REPEATABLE and kind in values:
            message = f"filter {kind} cannot be repeated"
        if message is not None:
            problems.append(Problem(R_UNSUPPORTED_VALUE, message))
            continue
        value, messages = _PARSERS[kind](kube.mapping(body.get(FIELDS[kind])), namespace)
        problems += [Problem(R_UNSUPPORTED_VALUE, f"{kind}: {m}") for m in messages]
        values.setdefault(kind, []).append(value)
    for pair in (("RequestRedirect", "URLRewrite"), ("RequestRedirect", "RequestMirror")):
        if all(kind in values for kind in pair):
            message = f"filters {pair[0]} and {pair[1]} cannot be used together"
            problems.append(Problem(R_INCOMPATIBLE_FILTERS, message))
    return _filters(values), problems


def _filters(values: dict[str, list[Any]]) -> Filters:
    def one(kind: str) -> Any:
        found = values.get(kind)
        return found[0] if found else None

    return Filters(
        request_headers=one("RequestHeaderModifier"),
        response_headers=one("ResponseHeaderModifier"),
        redirect=one("RequestRedirect"),
        rewrite=one("URLRewrite"),
        mirrors=tuple(values.get("RequestMirror", ())),
        extension_refs=tuple(values.get("ExtensionRef", ())),
    )


def _type_problem(kind: str, body: Mapping[str, Any], on_backend: bool) -> str | None:
    if kind not in FIELDS or kind in NOT_IMPLEMENTED:
        return f"filter type {kind!r} is not supported" if kind else "filter has no type"
    if on_backend and kind not in ON_BACKENDS:
        return f"filter {kind} is not supported on a backendRef"
    others = [name for other, name in FIELDS.items() if other != kind and name in body]
    if others:
        return f"filter {kind} must not set {', '.join(others)}"
    if not isinstance(body.get(FIELDS[kind]), Mapping):
        return f"filter {kind} needs {FIELDS[kind]}"
    return None


def rule_problems(
    filters: Filters, matches: tuple[HTTPMatch, ...], has_backends: bool
) -> list[Problem]:
    """What the rule-level CEL rules refuse, and prefix rewrites Envoy could not take."""
    problems = []
    if filters.redirect is not None and has_backends:
        message = "filter RequestRedirect must not be used together with backendRefs"
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    for kind, change in (("RequestRedirect", filters.redirect), ("URLRewrite", filters.rewrite)):
        path = change.path if change is not None else None
        if path is None or path.type != "ReplacePrefixMatch":
            continue
        if len(matches) != 1 or matches[0].path.type != "PathPrefix":
            message = f"{kind}: ReplacePrefixMatch needs exactly one PathPrefix match in the rule"
            problems.append(Problem(R_UNSUPPORTED_VALUE, message))
            continue
        prefix = match_prefix(matches[0].path.value)
        if not path.value.rstrip("/") and prefix != "/":
            too_complex = validate.regex_problem(strip_prefix_regex(prefix))
            if too_complex is not None:
                problems.append(Problem(R_UNSUPPORTED_VALUE, f"{kind}: path prefix {too_complex}"))
    return problems


def parse_timeouts(raw: object) -> tuple[Timeouts | None, list[Problem]]:
    """rules[].timeouts; None when the rule has none."""
    if raw is None:
        return None, []
    messages: Messages = []
    if not isinstance(raw, Mapping):
        messages.append("timeouts must be an object")
        raw = {}
    request = _duration(raw, "request", messages)
    backend = _duration(raw, "backendRequest", messages)
    if request and backend is not None and backend > request:
        messages.append(
            f"timeouts.backendRequest {raw['backendRequest']} is longer than "
            f"timeouts.request {raw['request']}"
        )
    problems = [Problem(R_UNSUPPORTED_VALUE, m) for m in messages]
    if problems or (request is None and backend is None):
        return None, problems
    return Timeouts(request, backend), problems


def duration_ms(text: str) -> int | None:
    """Milliseconds of a Gateway API duration (GEP-2257: "1h", "10s", "1m30s", "500ms")."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(text))


def _duration(raw: Mapping[str, Any], name: str, messages: Messages) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    found = duration_ms(value) if isinstance(value, str) else None
    if found is None:
        messages.append(f"timeouts.{name} {value!r} is not a duration such as '10s' or '500ms'")
    return found


def _header_modifier(raw: Mapping[str, Any], _namespace: str) -> tuple[HeaderModifier, Messages]:
    messages: Messages = []
    seen: set[str] = set()

    def name_of(name: object) -> str | None:
        if not isinstance(name, str) or validate.header_name_problem(name):
            messages.append(f"{name!r} is not a valid HTTP header name")
            return None
        folded = name.lower()
        if folded == "host":
            messages.append("the Host header cannot be modified (URLRewrite sets the hostname)")
        elif folded in seen:
            messages.append(f"header {name!r} is modified more than once")
        else:
            seen.add(folded)
            return folded
        return None

    pairs: dict[str, tuple[tuple[str, str], ...]] = {}
    for action in ("set", "add"):
        found = []
        for item in kube.items(raw, action):
            name, value = name_of(kube.field(item, "name")), kube.field(item, "value")
            if (message := _header_value_problem(value)) is not None:
                messages.append(message)
            elif name is not None:
                found.append((name, str(value)))
        pairs[action] = tuple(found)
    removed = tuple(n for n in map(name_of, kube.items(raw, "remove")) if n is not None)
    return HeaderModifier(pairs["set"], pairs["add"], removed), messages


def _header_value_problem(value: object) -> str | None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_HEADER_VALUE:
        return f"header value {value!r} must be a string of 1 to {MAX_HEADER_VALUE} characters"
    if _CONTROL.search(value):
        return f"header value {value!r} must not hold control characters"
    return validate.text_problem(value, "header value")


def _redirect(raw: Mapping[str, Any], _namespace: str) -> tuple[RequestRedirect, Messages]:
    messages: Messages = []
    scheme = raw.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        messages.append(f"scheme {scheme!r} is not supported (http or https)")
    hostname = _hostname(raw.get("hostname"), messages)
    port = raw.get("port")
    if port is not None and (message := validate.port_problem(port)) is not None:
        messages.append(message)
    code = raw.get("statusCode", 302)
    if isinstance(code, bool) or code not in REDIRECT_CODES:
        shown = ", ".join(map(str, REDIRECT_CODES))
        messages.append(f"statusCode {code!r} is not supported ({shown})")
    path = _path(raw.get("path"), messages)
    redirect = RequestRedirect(
        scheme=scheme if isinstance(scheme, str) else None,
        hostname=hostname,
        port=port if isinstance(port, int) else None,
        path=path,
        status_code=code if isinstance(code, int) else 302,
    )
    return redirect, messages


def _rewrite(raw: Mapping[str, Any], _namespace: str) -> tuple[URLRewrite, Messages]:
    messages: Messages = []
    hostname = _hostname(raw.get("hostname"), messages)
    return URLRewrite(hostname, _path(raw.get("path"), messages)), messages


def _hostname(value: object, messages: Messages) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.startswith("*"):
        messages.append(f"hostname {value!r} must be a DNS name without wildcard")
        return None
    if (message := validate.hostname_problem(value)) is not None:
        messages.append(message)
        return None
    return value


def _path(raw: object, messages: Messages) -> PathModifier | None:
    if raw is None:
        return None
    body = kube.mapping(raw)
    kind = kube.string(body, "type")
    fields = {"ReplaceFullPath": "replaceFullPath", "ReplacePrefixMatch": "replacePrefixMatch"}
    if kind not in fields:
        messages.append(f"path type {kind!r} is not supported ({' or '.join(fields)})")
        return None
    value = body.get(fields[kind])
    other = next(name for k, name in fields.items() if k != kind)
    if not isinstance(value, str) or other in body:
        messages.append(f"path type {kind} needs {fields[kind]} and only it")
        return None
    if len(value) > MAX_PATH:
        messages.append(f"path {fields[kind]} is longer than {MAX_PATH} characters")
        return None
    empty_ok = kind == "ReplacePrefixMatch" and value == ""
    if not empty_ok and (message := validate.path_problem(value)) is not None:
        messages.append(message)
        return None
    return PathModifier(kind, value)  # type: ignore[arg-type]


def _mirror(raw: Mapping[str, Any], namespace: str) -> tuple[RequestMirror, Messages]:
    messages: Messages = []
    ref = kube.mapping(raw.get("backendRef"))
    if not kube.string(ref, "name"):
        messages.append("backendRef needs a name")
    port = ref.get("port")
    if port is not None and (message := validate.port_problem(port)) is not None:
        messages.append(f"backendRef {message}")
    backend = BackendRef(
        group=kube.string(ref, "group"),
        kind=kube.string(ref, "kind", default="Service"),
        namespace=kube.string(ref, "namespace", default=namespace),
        name=kube.string(ref, "name"),
        port=port if isinstance(port, int) and not isinstance(port, bool) else None,
        weight=1,
    )
    numerator, denominator = _fraction(raw, messages)
    return RequestMirror(backend, numerator, denominator), messages


def _fraction(raw: Mapping[str, Any], messages: Messages) -> tuple[int, int]:
    """percent or fraction as (numerator, denominator); neither mirrors every request."""
    percent, fraction = raw.get("percent"), raw.get("fraction")
    if percent is not None and fraction is not None:
        messages.append("only one of percent and fraction may be set")
    elif percent is not None:
        if _int_in(percent, 0, 100):
            return percent, 100
        messages.append(f"percent {percent!r} is not an integer from 0 to 100")
    elif fraction is not None:
        numerator = kube.field(fraction, "numerator")
        denominator = kube.field(fraction, "denominator")
        denominator = 100 if denominator is None else denominator
        if _int_in(denominator, 1, 2**31 - 1) and _int_in(numerator, 0, denominator):
            return numerator, denominator
        messages.append(
            f"fraction {numerator!r}/{denominator!r} needs 0 <= numerator <= denominator, "
            "denominator >= 1"
        )
    return 1, 1


def _int_in(value: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _extension_ref(raw: Mapping[str, Any], _namespace: str) -> tuple[str, Messages]:
    group, kind, name = (kube.string(raw, key) for key in ("group", "kind", "name"))
    shown = f"{group}/{kind} {name}" if group else f"{kind} {name}"
    if not kind or not name:
        return shown, ["extensionRef needs a kind and a name"]
    return shown, []


_PARSERS: dict[str, Callable[[Mapping[str, Any], str], tuple[Any, Messages]]] = {
    "RequestHeaderModifier": _header_modifier,
    "ResponseHeaderModifier": _header_modifier,
    "RequestRedirect": _redirect,
    "URLRewrite": _rewrite,
    "RequestMirror": _mirror,
    "ExtensionRef": _extension_ref,
}
