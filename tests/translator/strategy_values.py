"""Hypothesis strategies for field values: valid, invalid, and of the wrong JSON type.

The building blocks of ``strategies.py`` and ``route_strategies.py`` (no tests here). Every
strategy is a module constant: hypothesis builds and validates a strategy object once, so
constants keep example generation fast. Name pools are small so references often resolve.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from translator.kube import GATEWAY_GROUP

Body = dict[str, Any]
S = st.SearchStrategy

NAMESPACES = ("default", "apps", "other")
CLASS_NAMES = ("ours", "ours-params", "theirs")
GATEWAY_NAMES = ("gw", "edge")
LISTENER_NAMES = ("http", "https", "tls", "tcp", "udp", "grpc", "Bad_Name")
ROUTE_NAMES = ("r1", "r2", "r3")
SERVICE_NAMES = ("svc-a", "svc-b", "grpc")
SLICE_NAMES = ("s1", "s2", "s3")
SECRET_NAMES = ("cert", "broken")
SERVICE_PORTS = (80, 8080, 50051)
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")

# A self-signed P-256 certificate for example.com and *.example.com (valid until 2126) and
# its key: test material only, used by TLS listeners through kubernetes.io/tls Secrets.
CERT = b"""-----BEGIN CERTIFICATE-----
MIIBqjCCAVCgAwIBAgIUT16YZ2DkW8maANaidnSLTvNOPYAwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wIBcNMjYxMTIyMDM0NzA1WhgPMjEyNjEw
MjkwMzQ3MDVaMBYxFDASBgNVBAMMC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAErJppFvwIhNHAPDOulWUiIa82LW+BJEBjhtJZ5IgT9I2DlniY
sisWvFnEcAgLIBu0AHZjdGAMn5e7JhB09HUiqqN6MHgwHQYDVR0OBBYEFPYq5KqJ
BAn5+X9Hv7pBIv9iv9yQMB8GA1UdIwQYMBaAFPYq5KqJBAn5+X9Hv7pBIv9iv9yQ
MA8GA1UdEwEB/wQFMAMBAf8wJQYDVR0RBB4wHIILZXhhbXBsZS5jb22CDSouZXhh
bXBsZS5jb20wCgYIKoZIzj0EAwIDSAAwRQIgHCU0JSRaEKRfGZIUIJpu6yJwbFQZ
lyLW+jvGrHN6+pACIQCN+9hmlmB/RT+1Gww3VxF0ejX1gl40glYUHuGfYgG5aQ==
-----END CERTIFICATE-----
"""
KEY = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+CdzYasaDe6aln6T
XfhshJ4MsxNovK0Yo45h2tIsSWWhRANCAASsmmkW/AiE0cA8M66VZSIhrzYtb4Ek
QGOG0lnkiBP0jYOWeJiyKxa8WcRwCAsgG7QAdmN0YAyfl7smEHT0dSKq
-----END PRIVATE KEY-----
"""


def pick(*values: Any) -> S[Any]:
    """One of ``values``; shrinks towards the first."""
    return st.sampled_from(values)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def some(strategy: S[Any], most: int = 2) -> S[list[Any]]:
    return st.lists(strategy, max_size=most)


_PERCENT = st.integers(min_value=0, max_value=99)


def usually(valid: S[Any], other: S[Any], percent: int = 80) -> S[Any]:
    """``valid`` ``percent`` times in a hundred, else ``other``; shrinks towards ``valid``."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        return draw(valid if draw(_PERCENT) < percent else other)

    return build()


def record(
    required: dict[str, S[Any]],
    often: dict[str, S[Any]] | None = None,
    sometimes: dict[str, S[Any]] | None = None,
) -> S[Body]:
    """A mapping with the ``required`` keys, each ``often`` key 4 times in 5 and each
    ``sometimes`` key 1 time in 3 (rarely all of them: each is a chance to be invalid)."""
    base = st.fixed_dictionaries(required)
    chances = [(key, strategy, 80) for key, strategy in (often or {}).items()]
    chances += [(key, strategy, 33) for key, strategy in (sometimes or {}).items()]

    @st.composite
    def build(draw: st.DrawFn) -> Body:
        result: Body = draw(base)
        for key, strategy, percent in chances:
            if draw(_PERCENT) < percent:
                result[key] = draw(strategy)
        return result

    return build()


# Any JSON value, of any type, nested: what a typo or a wrong indentation puts in a field.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
GARBAGE: S[Any] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
INDEX = st.integers(min_value=0, max_value=2**16)  # taken modulo a length: shrinks to 0

# Values, valid and not, by the field they are for; the strategies below draw from them and
# value_matrix.py tries every one in every field that takes it.
VALUES: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    "port": (
        (80, 8080, 443, 8443, 50051, 9000),
        (0, -1, 1, 65535, 65536, 2**31, 2**63, "80", 80.0, 80.5, True, None, [80]),
    ),
    "weight": ((1, 0, 10, 90, 1_000_000), (1_000_001, -1, "1", 1.5, True, None)),
    "hostname": (
        ("example.com", "foo.example.com", "*.example.com", "*.foo.example.com", "bar.com",
         "a.b.c.example.com", "x"),
        ("", "*", "Example.com", "*.*.example.com", "foo.*.com", "10.0.0.1", "::1", "foo..com",
         "-foo.com", "foo.com.", "a" * 64 + ".com", "x." * 130 + "x", "foo.com:80", "*foo.com",
         "ex ample.com", "exämple.com", "*.", "foo\x00.com", "\ud800.com", "foo.com\n"),
    ),
    "path": (
        ("/", "/api", "/api/", "/api/v1", "/a-b_c~d", "/%20x", "/foo;bar", "/v1/*"),
        ("", "api", "//", "/a//b", "/a/./b", "/a/../b", "/a/..", "/a%2Fb", "/a#b", "/a b", "/ü",
         "/\x00", "/a?b=c", "/" + "a" * 5000, "/\udc00", "/a\n"),
    ),
    "regex": (
        (".*", "/api/[a-z]+", "^/v[0-9]+/.*$", "/(foo|bar)", "(?i)/case", r"\d+"),
        ("", "(", "[a-", "a{1001}", r"(a)\1", "(?=x)", "\\", "*a", "(?P<n>", "a**", "x{2,1}",
         "\x00(", "\ud800", "(a|b|c|d|e)" * 30, "[a-z]{50}", ".{1000}", "(" * 100 + "a" + ")" * 100,
         "a" * 3000),
    ),
    "header_name": (
        ("x-a", "X-Canary", "content-type", "x_under", "!#$%&'*+-.^_`|~", "host"),
        ("", "bad name", "x:y", ":authority", "é", "a" * 300, "x\n", "x" * 2000),
    ),
    "header_value": (
        ("v", "", "a b", "true"),
        ("\x00", "\r\n", "é", "a" * 5000, "a\ud800", "v\n"),
    ),
    # Query parameter names follow the header name rule; Envoy's own limit is 1,024 bytes.
    "query_name": (("q", "X-Q", "a_b"), ("q" * 1025, "q" * 2000, "a b", "q=1", "&", "", "q\n")),
    "method": (("GET", "POST", "PATCH", "CONNECT"), ("get", "FOO", "", "GET ")),
    "status_code": ((301, 302, 303, 307, 308), (200, 404, "302", None)),
    "duration": (("1s", "500ms", "0s", "1h", "10m"), ("1.5s", "1d", "soon", "", "-1s", "99999h")),
    "percent": ((0, 1, 50, 100), (101, -1, "50", 50.5, True, None)),
    "denominator": ((1, 100, 1_000_000), (0, -1, "100", 2**40)),
    "scheme": (("http", "https"), ("ftp", "", "HTTP", "https://")),
    # metadata names and namespaces, which end up in Envoy resource names
    "name": (("default", "a-b", "x1"), ("d\ud800", "Bad_Name", "a/b", "a b", "é", "x" * 300)),
}  # fmt: skip


def values(field: str, percent: int = 80) -> S[Any]:
    """A value for ``field``: valid ``percent`` times in a hundred."""
    valid, invalid = VALUES[field]
    return usually(pick(*valid), pick(*invalid), percent)


PORT = values("port")
BACKEND_PORT = usually(pick(*SERVICE_PORTS), PORT)
WEIGHT = values("weight", 90)
HOSTNAME = usually(
    values("hostname", 100), st.one_of(values("hostname", 0), st.text(alphabet="ab*.-", max_size=8))
)
PATH = usually(
    values("path", 100), st.one_of(values("path", 0), st.text(alphabet="/a%.#?-_2f", max_size=10))
)
REGEX_TEXT = st.text(alphabet="ab()[]{}*+?|.^$\\0,", max_size=12)
REGEX = usually(values("regex", 100), st.one_of(values("regex", 0), REGEX_TEXT), 60)
HEADER_NAME = values("header_name")
HEADER_VALUE = usually(values("header_value"), st.text(max_size=6), 90)
QUERY_NAME = values("query_name")
METHOD = values("method")
STATUS_CODE = values("status_code", 70)
DURATION = values("duration", 70)
NAMESPACE = pick(*NAMESPACES)
LABELS = st.dictionaries(pick("team", "env"), pick("a", "b"), max_size=2)


VALUE_TYPE = usually(pick("Exact", "RegularExpression"), pick("Prefix", ""), 90)


@st.composite
def _string_match(draw: st.DrawFn, names: S[str]) -> Body:
    """A header or query parameter match; the value is a regex when the type says so."""
    match: Body = {"name": draw(names)}
    if draw(st.booleans()):
        match["type"] = draw(VALUE_TYPE)
    regex = match.get("type") == "RegularExpression"
    match["value"] = draw(REGEX if regex else HEADER_VALUE)
    return match


STRING_MATCH = _string_match(HEADER_NAME)
QUERY_MATCH = _string_match(QUERY_NAME)

# metadata of an object, but for its name and namespace (which the world decides)
META = st.fixed_dictionaries(
    {
        "generation": usually(st.integers(1, 9), pick(0, -3, "2", None, 2**70)),
        "creationTimestamp": pick("2024-01-01T00:00:00Z", "2023-06-01T00:00:00Z", 7),
    },
    optional={"labels": st.dictionaries(pick("team", "env"), pick("a", "b", 3), max_size=2)},
)
ROUTE_GROUP_KIND = st.fixed_dictionaries(
    {"kind": pick(*ROUTE_KINDS, "Gateway", "Service", "")},
    optional={"group": pick(GATEWAY_GROUP, "", "example.com")},
)


def metadata(meta: Body, namespace: str | None, name: str) -> Body:
    """``meta`` (drawn from META) with the object's identity in front."""
    identity: Body = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {**identity, **meta}
