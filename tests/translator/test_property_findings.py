"""Bugs the property tests found, each pinned with a minimal input.

Open bugs are strict xfails: when a fix lands, its test passes, strict xfail turns that into
a failure, and the fix takes the xfail off (and the bug's mask off ``known_bugs.KNOWN_BUGS``).
Fixed bugs stay as regression tests (fixed in d56fd0b, 5b015c1, e97318c, 2547a6b, 1bd5bbf).
The world is one Gateway default/gw (listener "web" on 8080 for a.example.com, listener
"other" on 9090 for any host), Service default/svc-a with a ready endpoint, and one
HTTPRoute default/r to it; each test changes one thing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from translator import CONTROLLER_NAME, TranslationResult, translate
from translator.kube import GATEWAY_GROUP

WORLD: list[dict[str, Any]] = [
    {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "ours"},
        "spec": {"controllerName": CONTROLLER_NAME},
    },
    {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {
            "gatewayClassName": "ours",
            "listeners": [
                {"name": "web", "port": 8080, "protocol": "HTTP", "hostname": "a.example.com"},
                {"name": "other", "port": 9090, "protocol": "HTTP"},
            ],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc-a", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    },
    {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "svc-a-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "svc-a"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"]}],
    },
    {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "web"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "Exact", "value": "/only"}}],
                    "backendRefs": [{"name": "svc-a", "port": 80}],
                }
            ],
        },
    },
]
GATEWAY, SERVICE, SLICE, ROUTE = 1, 2, 3, 4


def world() -> list[dict[str, Any]]:
    return copy.deepcopy(WORLD)


def with_rule(**fields: Any) -> list[dict[str, Any]]:
    """The world with the route's rule changed."""
    objects = world()
    objects[ROUTE]["spec"]["rules"][0].update(fields)
    return objects


def route_parent(result: TranslationResult) -> dict[str, Any]:
    """Our (first) parent entry of route default/r."""
    (entry,) = (e for e in result.statuses if e["kind"] == "HTTPRoute")
    parents = [p for p in entry["status"]["parents"] if p["controllerName"] == CONTROLLER_NAME]
    return dict(parents[0])


def route_accepted(result: TranslationResult) -> str:
    return str(
        next(c["status"] for c in route_parent(result)["conditions"] if c["type"] == "Accepted")
    )


def flags_unsupported_value(result: TranslationResult) -> bool:
    """The route's entry says a value is unsupported (route refused, or rules dropped)."""
    return any(
        c["reason"] == "UnsupportedValue" and c["type"] in {"Accepted", "PartiallyInvalid"}
        for c in route_parent(result)["conditions"]
    )


def served_ports(result: TranslationResult) -> set[int]:
    """Ports whose route configuration holds a route of default/r."""
    resources = result.gateways["default/gw"]
    return {
        int(config.name.rpartition("-")[2])
        for config in resources.routes
        for host in config.virtual_hosts
        for route in host.routes
        if route.name.startswith("httproute/default/r/")
    }


def test_the_world_of_these_tests_is_accepted_on_web_only() -> None:
    """Unchanged, the route is Accepted and served on the web listener's port only."""
    result = translate(world())
    assert route_accepted(result) == "True"
    assert served_ports(result) == {8080}


def test_lone_surrogate_in_a_value_is_a_condition_not_an_exception() -> None:
    """A header value '\\ud800' (valid JSON) refuses the rule instead of raising."""
    objects = with_rule(
        matches=[{"path": {"value": "/only"}, "headers": [{"name": "x-a", "value": "\ud800"}]}]
    )
    assert flags_unsupported_value(translate(objects))


@pytest.mark.parametrize("what", ["service", "route"])
def test_lone_surrogate_in_a_name_is_a_condition_not_an_exception(what: str) -> None:
    """A Service or route named with '\\ud800' (valid JSON) does not make translate() raise."""
    objects = world()
    if what == "service":
        objects[SERVICE]["metadata"]["name"] = "svc-a\ud800"
        objects[SLICE]["metadata"]["labels"]["kubernetes.io/service-name"] = "svc-a\ud800"
        objects[ROUTE]["spec"]["rules"][0]["backendRefs"][0]["name"] = "svc-a\ud800"
    else:
        objects[ROUTE]["metadata"]["name"] = "r\ud800"
    translate(objects)


def service(namespace: str, name: str, address: str) -> list[dict[str, Any]]:
    """A Service with port 80 and its EndpointSlice with one ready ``address``."""
    labels = {"kubernetes.io/service-name": name}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "slice", "namespace": namespace, "labels": labels},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address]}],
        },
    ]


def test_names_with_a_slash_do_not_merge_two_services() -> None:
    """Service default/'a/b' and Service 'default/a'/b stay two backends, not one cluster."""
    objects = world()[:SERVICE] + service("default", "a/b", "10.0.0.1")
    objects += service("default/a", "b", "10.0.0.2")
    objects.append(copy.deepcopy(WORLD[ROUTE]))
    objects[-1]["spec"]["rules"][0]["backendRefs"] = [{"name": "a/b", "port": 80}]
    endpoints = translate(objects).gateways["default/gw"].endpoints
    addresses = [
        lb.endpoint.address.socket_address.address
        for assignment in endpoints
        for locality in assignment.endpoints
        for lb in locality.lb_endpoints
    ]
    assert "10.0.0.2" not in addresses


def test_endpoint_addresses_that_are_not_ip_addresses_are_left_out() -> None:
    """Only IP addresses of a slice become endpoints: Envoy rejects anything else."""
    objects = world()
    objects[SLICE]["endpoints"] = [{"addresses": ["not-an-ip", "", "10.0.0.1/24", "10.0.0.2"]}]
    (assignment,) = translate(objects).gateways["default/gw"].endpoints
    addresses = [
        lb.endpoint.address.socket_address.address
        for locality in assignment.endpoints
        for lb in locality.lb_endpoints
    ]
    assert addresses == ["10.0.0.2"]


def test_query_parameter_name_is_validated() -> None:
    """A query parameter name of 2,000 characters drops the rule (Envoy allows 1,024 bytes)."""
    objects = with_rule(matches=[{"queryParams": [{"name": "q" * 2000, "value": "v"}]}])
    result = translate(objects)
    assert flags_unsupported_value(result)
    assert served_ports(result) == set()


def test_header_name_with_a_trailing_newline_drops_the_rule() -> None:
    """'x-a\\n' is not a header name (validate.py's '$' also matches before a final newline)."""
    result = translate(with_rule(matches=[{"headers": [{"name": "x-a\n", "value": "v"}]}]))
    assert flags_unsupported_value(result)
    assert served_ports(result) == set()


def test_listener_hostname_with_a_trailing_newline_is_refused() -> None:
    """'b.example.com\\n' is not a hostname; Envoy rejects it as a virtual host domain."""
    objects = world()
    objects[GATEWAY]["spec"]["listeners"][1]["hostname"] = "b.example.com\n"
    assert listener_accepted(translate(objects), "other") == "False"


def test_tls_listener_without_hostname_or_routes_has_a_filter_chain() -> None:
    """A TLS listener (no hostname, no TLSRoute) is not an Envoy listener without chains."""
    objects = world()
    tls = {"name": "tls", "port": 8443, "protocol": "TLS", "tls": {"mode": "Passthrough"}}
    objects[GATEWAY]["spec"]["listeners"].append(tls)
    listeners = translate(objects).gateways["default/gw"].listeners
    assert all(ls.filter_chains or ls.HasField("default_filter_chain") for ls in listeners)


def test_garbage_status_parents_are_not_written_back_as_empty_entries() -> None:
    """A status.parents entry that is not a mapping is dropped, not written back as {}."""
    objects = world()
    objects[ROUTE]["status"] = {"parents": ["junk"]}
    (entry,) = (e for e in translate(objects).statuses if e["kind"] == "HTTPRoute")
    assert {} not in entry["status"]["parents"]


PARENT_REF_STRINGS = {
    "namespace-a-mapping": {"namespace": {"x": 1}},
    "group-a-number": {"group": 5},
    "kind-a-list": {"kind": ["Gateway"]},
}


@pytest.mark.parametrize("field", PARENT_REF_STRINGS.values(), ids=PARENT_REF_STRINGS.keys())
def test_parent_ref_string_of_the_wrong_type_is_refused(field: dict[str, Any]) -> None:
    """A parentRef namespace, group or kind that is not a string does not attach the route."""
    objects = world()
    objects[ROUTE]["spec"]["parentRefs"] = [{"name": "gw", **field}]
    result = translate(objects)
    assert served_ports(result) == set()


def test_status_does_not_echo_a_parent_ref_field_of_the_wrong_type() -> None:
    """A refused sectionName: 7 is not written back as 7 (the API server wants a string)."""
    objects = world()
    objects[ROUTE]["spec"]["parentRefs"] = [{"name": "gw", "sectionName": 7}]
    assert isinstance(route_parent(translate(objects))["parentRef"].get("sectionName", ""), str)


# A field of the wrong JSON type reads as missing (parse.py), and where missing means "any",
# the route or listener serves more than it was written for, with Accepted True.
WIDENED_ROUTES = {
    "sectionName-not-a-string": {"parentRefs": [{"name": "gw", "sectionName": 7}]},
    "port-not-an-integer": {"parentRefs": [{"name": "gw", "port": "8080"}]},
    "hostnames-entry-not-a-string": {"hostnames": [5]},
    "hostnames-a-string": {"hostnames": "a.example.com"},
}
WIDENED_RULES = {
    "matches-a-mapping": {"matches": {"path": {"type": "Exact", "value": "/only"}}},
    "path-a-string": {"matches": [{"path": "/only"}]},
    "headers-a-mapping": {"matches": [{"path": {"value": "/only"}, "headers": {"name": "x"}}]},
}


@pytest.mark.parametrize("spec", WIDENED_ROUTES.values(), ids=WIDENED_ROUTES.keys())
def test_route_field_of_the_wrong_type_is_refused(spec: dict[str, Any]) -> None:
    """A parentRef or hostnames field of the wrong JSON type refuses the route."""
    objects = world()
    objects[ROUTE]["spec"].update(spec)
    result = translate(objects)
    assert served_ports(result) <= {8080}
    assert route_accepted(result) == "False"


@pytest.mark.parametrize("fields", WIDENED_RULES.values(), ids=WIDENED_RULES.keys())
def test_match_field_of_the_wrong_type_drops_the_rule(fields: dict[str, Any]) -> None:
    """A matches, path or headers field of the wrong JSON type drops its rule."""
    result = translate(with_rule(**fields))
    assert flags_unsupported_value(result)
    assert served_ports(result) == set()


def listener_accepted(result: TranslationResult, name: str) -> str:
    (entry,) = (e for e in result.statuses if e["kind"] == "Gateway")
    (listener,) = (ls for ls in entry["status"]["listeners"] if ls["name"] == name)
    return str(next(c["status"] for c in listener["conditions"] if c["type"] == "Accepted"))


WIDENED_LISTENERS = {
    "hostname-a-list": {"hostname": ["a.example.com"]},
    "selector-expressions-a-mapping": {
        "allowedRoutes": {
            "namespaces": {
                "from": "Selector",
                "selector": {"matchExpressions": {"key": "team", "operator": "In"}},
            }
        }
    },
}


@pytest.mark.parametrize("fields", WIDENED_LISTENERS.values(), ids=WIDENED_LISTENERS.keys())
def test_listener_field_of_the_wrong_type_is_refused(fields: dict[str, Any]) -> None:
    """A listener hostname or selector of the wrong JSON type makes the listener not Accepted."""
    objects = world()
    objects[GATEWAY]["spec"]["listeners"][0].update(fields)
    assert listener_accepted(translate(objects), "web") == "False"
