"""Status conditions as values, and the one place that builds and trims their messages.

Errors met while translating are not exceptions: they are ``Condition`` values that end up
in an object's status. Exceptions are for bugs only. Conditions carry no lastTransitionTime:
whoever writes status stamps it (the translator has no clock).

The condition types and reasons are the Gateway API's own (apis/v1 of gateway-api).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_MESSAGE = 32768  # the API server's limit on a condition message

ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"
SUPPORTED_VERSION = "SupportedVersion"

# Reasons (a condition's reason is in CamelCase, as the API requires).
R_ACCEPTED = "Accepted"
R_PROGRAMMED = "Programmed"
R_RESOLVED_REFS = "ResolvedRefs"
R_SUPPORTED_VERSION = "SupportedVersion"
R_NO_CONFLICTS = "NoConflicts"
R_INVALID = "Invalid"
R_PENDING = "Pending"
R_INVALID_PARAMETERS = "InvalidParameters"
R_LISTENERS_NOT_VALID = "ListenersNotValid"
R_UNSUPPORTED_ADDRESS = "UnsupportedAddress"
R_UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
R_UNSUPPORTED_VALUE = "UnsupportedValue"
R_HOSTNAME_CONFLICT = "HostnameConflict"
R_PROTOCOL_CONFLICT = "ProtocolConflict"
R_INVALID_ROUTE_KINDS = "InvalidRouteKinds"
R_NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
R_NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
R_NO_MATCHING_PARENT = "NoMatchingParent"
R_REF_NOT_PERMITTED = "RefNotPermitted"
R_INVALID_KIND = "InvalidKind"
R_BACKEND_NOT_FOUND = "BackendNotFound"
R_INCOMPATIBLE_FILTERS = "IncompatibleFilters"


@dataclass(frozen=True, slots=True)
class Condition:
    """One metav1.Condition, without lastTransitionTime."""

    type: str
    status: bool
    reason: str
    message: str

    def as_json(self, generation: int) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": trim(self.message),
            "observedGeneration": generation,
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a reference or value was refused: the condition reason and a message for users."""

    reason: str
    message: str


def ok(type_: str, reason: str, message: str) -> Condition:
    return Condition(type_, True, reason, message)


def failed(type_: str, problem: Problem) -> Condition:
    return Condition(type_, False, problem.reason, problem.message)


def join_problems(problems: tuple[Problem, ...] | list[Problem]) -> Problem:
    """One problem for a condition: the first reason, every distinct message."""
    messages = list(dict.fromkeys(p.message for p in problems))
    return Problem(problems[0].reason, "; ".join(messages))


def trim(message: str) -> str:
    """A message that fits a condition: at most MAX_MESSAGE characters."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 3] + "..."
