"""The server translates each file change incrementally, with what a full translation gives.

``ControlPlane.apply`` holds an ``IncrementalTranslator``: snapshots from the file provider
keep the very same bodies for unchanged objects, so a one-route edit translates one route,
an EndpointSlice edit takes the EDS fast path, and the cache holds what a full translation
of the same snapshot would put there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from translator import translate
from watcher.files import FileProvider
from watcher.objects import ObjectSnapshot
from xds_server.app import ControlPlane, ServeSettings
from xds_server.cache import SnapshotCache

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def expected_versions(plane: ControlPlane, snapshot: ObjectSnapshot) -> dict[str, tuple[str, ...]]:
    """Per Gateway, the versions a fresh cache gets from a full translation."""
    cache = SnapshotCache()
    cache.set_snapshot(translate(snapshot.bodies(), plane.options).gateways)
    return {key: gateway.versions for key, gateway in cache.gateways.items()}


def versions(plane: ControlPlane) -> dict[str, tuple[str, ...]]:
    return {key: gateway.versions for key, gateway in plane.cache.gateways.items()}


def reload(provider: FileProvider) -> ObjectSnapshot:
    snapshot = provider.reload()
    assert snapshot is not None
    return snapshot


def test_file_edits_are_translated_incrementally(tmp_path: Path) -> None:
    """A route edit translates one route; a slice edit only endpoints; the cache is exact."""
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES, config)
    provider = FileProvider(config)
    plane = ControlPlane(ServeSettings(config_dir=config))
    first = reload(provider)
    plane.apply(first)
    assert plane.translator.stats.path == "full"
    assert versions(plane) == expected_versions(plane, first)
    statuses = plane.statuses

    routes = config / "routes.yaml"
    routes.write_text(routes.read_text().replace("value: /v2}", "value: /version-two}", 1))
    edited = reload(provider)
    plane.apply(edited)
    assert (plane.translator.stats.path, plane.translator.stats.routes_translated) == (
        "incremental",
        1,
    )
    assert versions(plane) == expected_versions(plane, edited)
    assert plane.statuses[:2] == statuses[:2]  # GatewayClass and Gateway: unchanged

    backends = config / "backends.yaml"
    backends.write_text(backends.read_text().replace('["127.0.0.1"]', '["127.0.0.2"]', 1))
    moved = reload(provider)
    plane.apply(moved)
    assert plane.translator.stats.path == "endpoints"
    assert versions(plane) == expected_versions(plane, moved)
