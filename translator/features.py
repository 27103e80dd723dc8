"""What a GatewayClass of ours reports: the Gateway API version and the features we support.

Each feature name is one of the conformance suite's (gateway-api pkg/features), and each is
claimed because a golden case and an end-to-end test through a real Envoy prove it (README's
feature table says which). The conformance suite itself needs a cluster with pods and has
not been run against us; nothing here is claimed without a test of our own.
"""

from __future__ import annotations

GATEWAY_API_VERSION = "v1.6"

SUPPORTED_FEATURES = tuple(
    sorted(
        {
            "Gateway",
            "GatewayPort8080",
            "GatewayHTTPListenerIsolation",
            "ReferenceGrant",
            "HTTPRoute",
            "HTTPRouteQueryParamMatching",
            "HTTPRouteMethodMatching",
            "HTTPRouteResponseHeaderModification",
            "HTTPRouteBackendRequestHeaderModification",
            "HTTPRoutePortRedirect",
            "HTTPRouteSchemeRedirect",
            "HTTPRoutePathRedirect",
            "HTTPRoute303RedirectStatusCode",
            "HTTPRoute307RedirectStatusCode",
            "HTTPRoute308RedirectStatusCode",
            "HTTPRouteHostRewrite",
            "HTTPRoutePathRewrite",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestMultipleMirrors",
            "HTTPRouteRequestPercentageMirror",
            "HTTPRouteRequestTimeout",
            "HTTPRouteBackendTimeout",
            "HTTPRouteParentRefPort",
            "HTTPRouteBackendProtocolH2C",
            "GRPCRoute",
            "GRPCRouteRequestHeaderModifier",
            "TLSRoute",
            "TCPRoute",
            "UDPRoute",
        }
    )
)
