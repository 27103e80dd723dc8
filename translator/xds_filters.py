"""IR route filters -> fields of Envoy's Route, RouteAction, RedirectAction and ClusterWeight.

Called by ``translator.xds`` while it builds each route; knows protobuf, decides nothing the
IR has not decided (``translator.route_filters`` did). What goes where:

    header edits    request/response_headers_to_add (set: OVERWRITE_IF_EXISTS_OR_ADD,
                    add: APPEND_IF_EXISTS_OR_ADD) and _to_remove, on the route or a share
    RequestRedirect RedirectAction: scheme, host, port, path, response code
    URLRewrite      host_rewrite_literal; ReplaceFullPath as a regex rewrite of the whole
                    path; ReplacePrefixMatch as prefix_rewrite, or a regex that strips the
                    prefix and the slashes after it when the replacement is empty
    RequestMirror   request_mirror_policies with a runtime_fraction (none at 100%)
    timeouts        RouteAction.timeout (request, else backendRequest), and
                    retry_policy.per_try_timeout (backendRequest)

Prefix replacement follows the Gateway API's table: the matched prefix (compared without a
trailing slash, as PathPrefix matches are) is replaced by the replacement without its
trailing slash, so "/foo" -> "/xyz" turns "/foo/bar" into "/xyz/bar" and "/foo/" into
"/xyz/"; an empty or "/" replacement turns "/foo", "/foo/" and "/foo/bar" into "/", "/"
and "/bar".
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.type.v3 import percent_pb2

from translator.filters import (
    HeaderEdits,
    PathModifier,
    RequestRedirect,
    Timeouts,
    URLRewrite,
    match_prefix,
    strip_prefix_regex,
)
from translator.ir import Route
from translator.model import HTTPMatch

_APPEND = base_pb2.HeaderValueOption.HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD
_OVERWRITE = base_pb2.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
_CODES = {
    301: route_components_pb2.RedirectAction.RedirectResponseCode.MOVED_PERMANENTLY,
    302: route_components_pb2.RedirectAction.RedirectResponseCode.FOUND,
    303: route_components_pb2.RedirectAction.RedirectResponseCode.SEE_OTHER,
    307: route_components_pb2.RedirectAction.RedirectResponseCode.TEMPORARY_REDIRECT,
    308: route_components_pb2.RedirectAction.RedirectResponseCode.PERMANENT_REDIRECT,
}
_DENOMINATORS = {
    100: percent_pb2.FractionalPercent.DenominatorType.HUNDRED,
    10_000: percent_pb2.FractionalPercent.DenominatorType.TEN_THOUSAND,
    1_000_000: percent_pb2.FractionalPercent.DenominatorType.MILLION,
}
_WHOLE_PATH = "^/.*$"


def headers(message: Any, request: HeaderEdits | None, response: HeaderEdits | None) -> None:
    """Header edits on a Route or a ClusterWeight (both have the same four fields)."""
    _edits(message.request_headers_to_add, message.request_headers_to_remove, request)
    _edits(message.response_headers_to_add, message.response_headers_to_remove, response)


def _edits(to_add: Any, to_remove: Any, edits: HeaderEdits | None) -> None:
    if edits is None:
        return
    for edit in edits.edits:
        option = to_add.add()
        option.header.key = edit.name
        option.header.value = edit.value
        option.append_action = _APPEND if edit.append else _OVERWRITE
    to_remove.extend(edits.remove)


def redirect(r: Route, wanted: RequestRedirect) -> Any:
    """The RedirectAction of route ``r``, whose rule has the RequestRedirect ``wanted``."""
    action = route_components_pb2.RedirectAction(response_code=_CODES[wanted.status_code])
    if wanted.scheme is not None:
        action.scheme_redirect = wanted.scheme
    if wanted.hostname is not None:
        action.host_redirect = wanted.hostname
    if r.filters.redirect_port is not None:
        action.port_redirect = r.filters.redirect_port
    if wanted.path is not None and wanted.path.type == "ReplaceFullPath":
        action.path_redirect = wanted.path.value
    elif wanted.path is not None:
        _replace_prefix(action, r.match, wanted.path)
    return action


def route_action(action: Any, r: Route) -> None:
    """Rewrites, mirrors and timeouts on the RouteAction of a forwarding route."""
    if r.filters.rewrite is not None:
        _rewrite(action, r.match, r.filters.rewrite)
    for mirror in r.filters.mirrors:
        policy = action.request_mirror_policies.add()
        policy.cluster = mirror.cluster
        if mirror.numerator != mirror.denominator:
            fraction = policy.runtime_fraction.default_value
            fraction.numerator = mirror.numerator
            fraction.denominator = _DENOMINATORS[mirror.denominator]
    if r.filters.timeouts is not None:
        _timeouts(action, r.filters.timeouts)


def _rewrite(action: Any, match: HTTPMatch, rewrite: URLRewrite) -> None:
    if rewrite.hostname is not None:
        action.host_rewrite_literal = rewrite.hostname
    if rewrite.path is not None and rewrite.path.type == "ReplaceFullPath":
        action.regex_rewrite.pattern.regex = _WHOLE_PATH
        action.regex_rewrite.substitution = rewrite.path.value
    elif rewrite.path is not None:
        _replace_prefix(action, match, rewrite.path)


def _timeouts(action: Any, timeouts: Timeouts) -> None:
    """The request timeout bounds the route (a backendRequest one alone does: no retries)."""
    total = timeouts.request_ms
    if total is None:
        total = timeouts.backend_request_ms
    if total is not None:
        action.timeout.FromMilliseconds(total)
    if timeouts.backend_request_ms:
        action.retry_policy.per_try_timeout.FromMilliseconds(timeouts.backend_request_ms)


def _replace_prefix(action: Any, match: HTTPMatch, path: PathModifier) -> None:
    """ReplacePrefixMatch on a RouteAction or RedirectAction (the match is a PathPrefix)."""
    prefix = match_prefix(match.path.value)
    replacement = path.value.rstrip("/")
    if prefix == "/":
        action.prefix_rewrite = replacement + "/"
    elif replacement:
        action.prefix_rewrite = replacement
    else:
        action.regex_rewrite.pattern.regex = strip_prefix_regex(prefix)
        action.regex_rewrite.substitution = "/"
