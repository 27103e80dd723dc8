"""What test_envoy_validate needs for HTTPS, TLS, TCP and UDP listeners (no tests here).

- Golden outputs hold secrets with their key material redacted, so ``add_case_secrets``
  translates each case's input again, puts its real Secrets under
  ``static_resources.secrets`` (renamed per case and Gateway, as listeners are) and points
  the listeners' SDS references at them: Envoy then loads and checks every certificate and
  key. Translations without real secrets (property tests) keep their SDS-over-ADS
  references, which validate mode accepts without fetching them.
- ``listener_clusters`` and ``listener_secrets``: what a listener's tcp_proxy, udp_proxy and
  TLS contexts name, for the self-containment test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from translator import translate
from translator.render import resource_json

TESTDATA = Path(__file__).parent / "testdata"


def _inputs(case: str) -> list[dict[str, Any]]:
    with (TESTDATA / f"{case}.in.yaml").open() as f:
        return [doc for doc in yaml.load_all(f, Loader=yaml.CSafeLoader) if doc]


def add_case_secrets(config: dict[str, Any], cases: list[str]) -> None:
    """Static secrets for every case's Gateways; their listeners refer to them by name."""
    statics = config["staticResources"]
    for case in cases:
        for gateway, resources in translate(_inputs(case)).gateways.items():
            prefix = f"{case}/{gateway}"
            for secret in resources.secrets:
                rendered = resource_json(secret)
                statics.setdefault("secrets", []).append(
                    {**rendered, "name": f"{prefix}/{rendered['name']}"}
                )
            for listener in statics["listeners"]:
                if listener["name"].startswith(prefix + "/"):
                    _static_references(listener, prefix)


def _static_references(listener: dict[str, Any], prefix: str) -> None:
    for config in _sds_configs(listener):
        config["name"] = f"{prefix}/{config['name']}"
        config.pop("sdsConfig", None)


def _sds_configs(listener: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        config
        for chain in listener.get("filterChains", [])
        for config in chain.get("transportSocket", {})
        .get("typedConfig", {})
        .get("commonTlsContext", {})
        .get("tlsCertificateSdsSecretConfigs", [])
    ]


def listener_secrets(listener: dict[str, Any]) -> set[str]:
    return {config["name"] for config in _sds_configs(listener)}


def listener_clusters(listener: dict[str, Any]) -> set[str]:
    """Clusters named by a listener's tcp_proxy filters and its udp_proxy's route."""
    named: set[str] = set()
    for chain in listener.get("filterChains", []):
        for network_filter in chain["filters"]:
            config = network_filter["typedConfig"]
            if "cluster" in config:
                named.add(config["cluster"])
            named.update(c["name"] for c in config.get("weightedClusters", {}).get("clusters", []))
    for listener_filter in listener.get("listenerFilters", []):
        action = listener_filter["typedConfig"].get("matcher", {}).get("onNoMatch", {})
        cluster = action.get("action", {}).get("typedConfig", {}).get("cluster")
        if cluster:
            named.add(cluster)
    return named
