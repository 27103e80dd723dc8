"""Checks the API server's schema would make, for input that never went through one.

The file provider has no CRD validation, so the translator re-checks what the Gateway API
CRDs enforce (hostnames, header names, paths, methods, port and weight ranges) and RE2 syntax
of regular expressions (Envoy's regex engine), so that nothing reaches a proxy that it would
reject. Each check returns None or a message.
"""

from __future__ import annotations

import re

import re2

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

# Envoy refuses a regex whose compiled RE2 program is larger than this (its default
# re2.max_program_size.error_level), and would refuse the whole resource with it.
ENVOY_MAX_PROGRAM_SIZE = 100

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def hostname_problem(hostname: str) -> str | None:
    if len(hostname) > 253:
        return f"hostname {hostname!r} is longer than 253 characters"
    if _IPV4.match(hostname) or ":" in hostname:
        return f"hostname {hostname!r} is an IP address; only DNS names are allowed"
    if not _HOSTNAME.fullmatch(hostname):  # fullmatch: "$" alone allows a final newline
        return f"hostname {hostname!r} is not a valid DNS name (a leading '*.' is allowed)"
    return None


def header_name_problem(name: str) -> str | None:
    if not name or len(name) > 256 or not _HEADER_NAME.fullmatch(name):
        return f"{name!r} is not a valid HTTP header name"
    return None


def path_problem(path: str) -> str | None:
    if not _PATH_CHARS.fullmatch(path):
        return f"path {path!r} must start with '/' and hold only URL path characters"
    if "//" in path or "/./" in path or "/../" in path or path.endswith(("/..", "/.")):
        return f"path {path!r} must not contain '//', '/./' or '/../'"
    if "%2f" in path.lower() or "#" in path:
        return f"path {path!r} must not contain '%2f' or '#'"
    return None


def regex_problem(pattern: str) -> str | None:
    """None when Envoy's RE2 accepts ``pattern``, else why not."""
    if not pattern:
        return "regular expression is empty"
    if (problem := text_problem(pattern, "regular expression")) is not None:
        return problem
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as error:
        detail = error.args[0] if error.args else error
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"regular expression {pattern!r} is not valid RE2: {detail}"
    if compiled.programsize > ENVOY_MAX_PROGRAM_SIZE:
        return (
            f"regular expression {pattern!r} is too complex: RE2 program size "
            f"{compiled.programsize} is over Envoy's limit of {ENVOY_MAX_PROGRAM_SIZE}"
        )
    return None


def text_problem(value: str, what: str) -> str | None:
    """None when ``value`` is valid Unicode (a lone surrogate, legal in JSON, is not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} {value!r} is not valid Unicode"
    return None


def port_problem(port: object) -> str | None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"port {port!r} is not an integer from 1 to 65535"
    return None
