"""The Gateway API's match precedence: ``translator.httproutes.precedence`` in tables.

Spec (HTTPRouteRule.matches): Exact path, then the longest PathPrefix, then a method match,
more header matches, more query matches; across routes the oldest, then the first by
"namespace/name"; within a route the first rule. RegularExpression precedence is left to
implementations: ours puts it between Exact and PathPrefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from translator.httproutes import precedence, prefix_value
from translator.model import HTTPMatch, PathMatch, PathType, ValueMatch

OLD = "2024-01-01T00:00:00Z"
NEW = "2024-06-01T00:00:00Z"


@dataclass(frozen=True)
class M:
    """A match and the route position it comes from, as small as a table row allows."""

    path: str = "/"
    type: PathType = "PathPrefix"
    method: str | None = None
    headers: int = 0
    query: int = 0
    created: str = OLD
    route: str = "default/r"
    rule: int = 0
    index: int = 0

    def key(self) -> tuple[object, ...]:
        match = HTTPMatch(
            PathMatch(self.type, self.path),
            tuple(ValueMatch("Exact", f"h{i}", "v") for i in range(self.headers)),
            tuple(ValueMatch("Exact", f"q{i}", "v") for i in range(self.query)),
            self.method,
        )
        return precedence(match, self.created, self.route, self.rule, self.index)


WINS = [
    # (winner, loser, id)
    (M("/a", "Exact"), M("/a/b/c/d"), "exact-beats-longer-prefix"),
    (M("/a", "Exact"), M("/a/.*", "RegularExpression"), "exact-beats-regex"),
    (M("/a/.*", "RegularExpression"), M("/a/b/c/d"), "regex-beats-prefix"),
    (M("/api/v1"), M("/api"), "longer-prefix-wins"),
    (M("/api"), M("/", method="GET", headers=3, query=3), "prefix-length-beats-everything-after"),
    (M(method="GET"), M(headers=3, query=3), "method-beats-headers"),
    (M(headers=2), M(headers=1, query=5), "more-headers-win"),
    (M(headers=1), M(query=3), "header-beats-query"),
    (M(query=2), M(query=1), "more-query-wins"),
    (M(created=OLD, route="default/z"), M(created=NEW, route="default/a"), "oldest-route-wins"),
    (M("/longer", created=NEW), M("/", created=OLD), "path-beats-age"),
    (M(route="default/a"), M(route="default/b"), "name-breaks-age-tie"),
    (M(route="a/z"), M(route="b/a"), "namespace-sorts-before-name"),
    (M(rule=0, index=1), M(rule=1, index=0), "first-rule-wins"),
    (M(rule=1, index=0), M(rule=1, index=1), "first-match-wins"),
]


@pytest.mark.parametrize(("winner", "loser"), [w[:2] for w in WINS], ids=[w[2] for w in WINS])
def test_precedence_orders(winner: M, loser: M) -> None:
    """The match the specification prefers sorts first."""
    assert winner.key() < loser.key()


def test_trailing_slash_does_not_lengthen_a_prefix() -> None:
    """PathPrefix /foo/ ties with /foo (a trailing slash is ignored): rule order decides."""
    assert M("/foo/", rule=0).key() < M("/foo", rule=1).key()
    assert M("/foo", rule=0).key() < M("/foo/", rule=1).key()


def test_sorting_a_shuffled_set() -> None:
    """A whole set of matches sorts into the order the specification gives."""
    expected = [
        M("/a/b", "Exact"),
        M("/a/.*", "RegularExpression"),
        M("/a/b/c"),
        M("/a", method="GET"),
        M("/a", headers=2),
        M("/a", headers=1, query=1),
        M("/a", headers=1),
        M("/a", query=1),
        M("/a", created=NEW, route="default/a"),
        M("/a", created=NEW, route="default/b", rule=0),
        M("/a", created=NEW, route="default/b", rule=1),
        M("/"),
    ]
    shuffled = [expected[i] for i in (7, 2, 11, 0, 9, 4, 1, 10, 3, 8, 6, 5)]
    assert sorted(shuffled, key=M.key) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/", "/"), ("/a", "/a"), ("/a/", "/a"), ("/a/b/", "/a/b")],
    ids=["root", "plain", "trailing-slash", "nested-trailing-slash"],
)
def test_prefix_value(value: str, expected: str) -> None:
    """prefix_value() drops a trailing slash but keeps the root "/"."""
    assert prefix_value(value) == expected
