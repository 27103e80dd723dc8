"""Hostname matching as the Gateway API defines it: ``translator.hostnames`` in tables."""

from __future__ import annotations

import pytest

from translator.hostnames import covers, intersect, specificity

COVERS = [
    # (pattern, host, expected, id)
    (None, "foo.example.com", True, "no-hostname-covers-all"),
    (None, "*", True, "no-hostname-covers-any"),
    ("*", "foo.example.com", True, "any-covers-exact"),
    ("foo.example.com", "foo.example.com", True, "exact-covers-itself"),
    ("foo.example.com", "bar.example.com", False, "exact-not-other-exact"),
    ("foo.example.com", "*.example.com", False, "exact-not-wider-wildcard"),
    ("*.example.com", "foo.example.com", True, "wildcard-covers-one-label"),
    ("*.example.com", "a.b.example.com", True, "wildcard-covers-several-labels"),
    ("*.example.com", "example.com", False, "wildcard-not-its-parent"),
    ("*.example.com", "fooexample.com", False, "wildcard-on-label-boundary"),
    ("*.example.com", "*.example.com", True, "wildcard-covers-itself"),
    ("*.example.com", "*.foo.example.com", True, "wildcard-covers-narrower-wildcard"),
    ("*.foo.example.com", "*.example.com", False, "wildcard-not-wider-wildcard"),
    ("*.example.com", "*", False, "wildcard-not-any"),
]


@pytest.mark.parametrize(
    ("pattern", "host", "expected"), [c[:3] for c in COVERS], ids=[c[3] for c in COVERS]
)
def test_covers(pattern: str | None, host: str, expected: bool) -> None:
    """covers() is true only when every name the host stands for matches the pattern."""
    assert covers(pattern, host) is expected


INTERSECT = [
    # (listener hostname, route hostnames, served hostnames, id)
    (None, (), ("*",), "neither-has-hostnames"),
    ("foo.example.com", (), ("foo.example.com",), "route-without-hostnames-gets-listeners"),
    (None, ("b.example.com", "a.example.com"), ("b.example.com", "a.example.com"), "no-listener"),
    ("*.example.com", ("foo.example.com", "foo.example.net"), ("foo.example.com",), "drops-other"),
    ("foo.example.com", ("*.example.com",), ("foo.example.com",), "wider-route-wildcard"),
    ("*.example.com", ("*.example.com",), ("*.example.com",), "same-wildcard"),
    ("*.example.com", ("*.foo.example.com",), ("*.foo.example.com",), "narrower-route-wildcard"),
    ("*.foo.example.com", ("*.example.com",), ("*.foo.example.com",), "wider-route-wildcard-2"),
    ("foo.example.com", ("bar.example.com",), (), "no-common-exact"),
    ("*.example.com", ("example.com",), (), "parent-of-wildcard"),
    ("*.example.com", ("*.example.net",), (), "disjoint-wildcards"),
    (
        "foo.example.com",
        ("*.example.com", "foo.example.com"),
        ("foo.example.com",),
        "duplicates-once",
    ),
]


@pytest.mark.parametrize(
    ("listener", "route", "expected"), [c[:3] for c in INTERSECT], ids=[c[3] for c in INTERSECT]
)
def test_intersect(listener: str | None, route: tuple[str, ...], expected: tuple[str, ...]) -> None:
    """intersect() gives the hostnames a route serves on a listener, in route order, once each."""
    assert intersect(listener, route) == expected


MORE_SPECIFIC = [
    # (more specific, less specific, id)
    ("foo.example.com", "*.example.com", "exact-before-wildcard"),
    ("foo.example.com", "*.foo.example.com", "exact-before-longer-wildcard"),
    ("*.foo.example.com", "*.example.com", "more-labels-after-wildcard-first"),
    ("*.example.com", "*", "wildcard-before-any"),
    ("*.example.com", None, "wildcard-before-no-hostname"),
    ("foo.example.com", None, "exact-before-no-hostname"),
]


@pytest.mark.parametrize(
    ("first", "second"), [c[:2] for c in MORE_SPECIFIC], ids=[c[2] for c in MORE_SPECIFIC]
)
def test_specificity_orders(first: str | None, second: str | None) -> None:
    """specificity() sorts exact names, then longer wildcards, then "*" or no hostname."""
    assert specificity(first) < specificity(second)


def test_specificity_any_equals_none() -> None:
    """ "*" and an absent hostname are equally unspecific."""
    assert specificity("*") == specificity(None)


def test_specificity_sorts_a_listener_set() -> None:
    """Listeners of the conformance isolation test sort from most to least specific."""
    hosts = [None, "*.example.com", "*.foo.example.com", "abc.foo.example.com"]
    expected = ["abc.foo.example.com", "*.foo.example.com", "*.example.com", None]
    assert sorted(hosts, key=specificity) == expected
