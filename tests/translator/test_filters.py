"""Unit tests of the filter and timeout values (translator.filters, translator.parse_filters).

The golden cases (testdata/filter-*, timeouts-*) show whole translations; these tables pin
the small rules behind them: durations, Location ports, mirror fractions, header merging.
"""

from __future__ import annotations

import pytest

from translator.filters import (
    HeaderEdit,
    HeaderEdits,
    RequestRedirect,
    envoy_fraction,
    location_port,
    strip_prefix_regex,
)
from translator.parse_filters import duration_ms, parse_filters, parse_timeouts

DURATIONS = [
    ("10s", 10_000),
    ("500ms", 500),
    ("1h", 3_600_000),
    ("1h30m", 5_400_000),
    ("0s", 0),
    ("1m1s1ms", 61_001),
    ("99999ms", 99_999),
    ("10", None),
    ("1.5s", None),
    ("1d", None),
    ("123456s", None),
    ("1h1m1s1ms1h", None),
    ("-1s", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS, ids=[d[0] or "empty" for d in DURATIONS])
def test_duration_ms(text: str, expected: int | None) -> None:
    """Gateway API durations (GEP-2257) parse to milliseconds; anything else is refused."""
    assert duration_ms(text) == expected


def test_backend_request_longer_than_request_is_refused() -> None:
    """backendRequest may not exceed request, unless request is 0s (no timeout)."""
    _, problems = parse_timeouts({"request": "1s", "backendRequest": "2s"})
    assert [p.reason for p in problems] == ["UnsupportedValue"]
    timeouts, problems = parse_timeouts({"request": "0s", "backendRequest": "2s"})
    assert problems == []
    assert timeouts is not None
    assert (timeouts.request_ms, timeouts.backend_request_ms) == (0, 2000)


# (scheme, port, listener port, listener scheme) -> the port Location names (None: none)
PORTS = [
    (None, None, 80, "http", None),
    (None, None, 8080, "http", 8080),
    (None, 80, 8080, "http", None),
    (None, 8080, 80, "http", 8080),
    ("https", None, 80, "http", None),
    ("https", 443, 8080, "http", None),
    ("https", 8443, 80, "http", 8443),
    ("http", None, 443, "https", None),
    (None, None, 443, "https", None),
    (None, 8443, 443, "https", 8443),
]


@pytest.mark.parametrize(("scheme", "port", "listener", "listener_scheme", "expected"), PORTS)
def test_location_port(
    scheme: str | None, port: int | None, listener: int, listener_scheme: str, expected: int | None
) -> None:
    """The redirect port: the filter's, else the scheme's well-known one, else the listener's."""
    redirect = RequestRedirect(scheme, None, port, None, 302)
    assert location_port(redirect, listener, listener_scheme) == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (20, 100, (20, 100)),
        (25, 50, (50, 100)),
        (17, 10_000, (17, 10_000)),
        (1, 3, (333_333, 1_000_000)),
    ],
)
def test_envoy_fraction(numerator: int, denominator: int, expected: tuple[int, int]) -> None:
    """Mirror fractions get a denominator Envoy offers, exactly when one fits."""
    assert envoy_fraction(numerator, denominator) == expected


def edits(*items: tuple[str, str, bool], remove: tuple[str, ...] = ()) -> HeaderEdits:
    return HeaderEdits(tuple(HeaderEdit(n, v, a) for n, v, a in items), remove)


MERGES = [
    # A later set of a name replaces an earlier edit of it; later appends keep it.
    (edits(("x", "1", False)), edits(("x", "2", False)), edits(("x", "2", False))),
    (edits(("x", "1", False)), edits(("x", "2", True)), edits(("x", "1", False), ("x", "2", True))),
    # A later removal drops earlier edits of the name; an earlier removal is always kept.
    (edits(("x", "1", True)), edits(remove=("x",)), edits(remove=("x",))),
    (edits(remove=("x",)), edits(("x", "2", True)), edits(("x", "2", True), remove=("x",))),
]


@pytest.mark.parametrize(("first", "later", "expected"), MERGES)
def test_header_edits_then(first: HeaderEdits, later: HeaderEdits, expected: HeaderEdits) -> None:
    """Rule edits followed by a backend's give what applying them one after the other gives."""
    assert first.then(later) == expected


def test_strip_prefix_regex_escapes() -> None:
    """Regex characters a path may hold are escaped in the prefix-stripping pattern."""
    assert strip_prefix_regex("/a.b+c(d)$") == r"^/a\.b\+c\(d\)\$/*"


FILTER_PROBLEMS = [
    ([{"type": "Nope"}], "filter type 'Nope' is not supported"),
    ([{"type": "RequestHeaderModifier"}], "filter RequestHeaderModifier needs"),
    (
        [{"type": "URLRewrite", "urlRewrite": {}, "requestRedirect": {}}],
        "filter URLRewrite must not set requestRedirect",
    ),
    (
        [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 305}}],
        "statusCode 305 is not supported",
    ),
    (
        [{"type": "RequestRedirect", "requestRedirect": {"scheme": "ftp"}}],
        "scheme 'ftp' is not supported",
    ),
    (
        [{"type": "URLRewrite", "urlRewrite": {"hostname": "*.example.org"}}],
        "must be a DNS name without wildcard",
    ),
    (
        [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "a"}, "percent": 101}}],
        "percent 101 is not an integer from 0 to 100",
    ),
    (
        [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": "a"},
                    "fraction": {"numerator": 3, "denominator": 2},
                },
            }
        ],
        "fraction 3/2 needs",
    ),
]


@pytest.mark.parametrize(("raws", "message"), FILTER_PROBLEMS, ids=[m for _, m in FILTER_PROBLEMS])
def test_filter_problems(raws: list[dict[str, object]], message: str) -> None:
    """Filters the CRDs (or this implementation) refuse are reported, never raised."""
    _, problems = parse_filters(tuple(raws), "default", on_backend=False)
    assert any(message in p.message for p in problems), problems


def test_backend_filters_are_limited_to_header_modifiers() -> None:
    """On a backendRef only header modifiers and ExtensionRef are supported."""
    raw = {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example"}}
    _, problems = parse_filters((raw,), "default", on_backend=True)
    assert [p.message for p in problems] == ["filter URLRewrite is not supported on a backendRef"]
