"""Golden tests: each testdata/NAME.in.yaml translates to exactly testdata/NAME.out.yaml.

An input file holds every object its case needs. The output holds the whole result in the
shape of `xdsctl translate`: status first, then each Gateway's listeners, routes, clusters,
endpoints and secrets. `UPDATE_GOLDEN=1 pytest tests/translator` rewrites the outputs and
deletes outputs whose input is gone; review the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from translator import TranslateOptions, translate
from translator.render import result_json

TESTDATA = Path(__file__).parent / "testdata"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in TESTDATA.glob("*.in.yaml"))


def load(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.load_all(f, Loader=yaml.CSafeLoader) if doc]


def render(objects: list[dict[str, Any]]) -> str:
    result = result_json(translate(objects, TranslateOptions(listener_address="0.0.0.0")))
    ordered = {"status": result["status"], "gateways": result["gateways"]}
    return yaml.dump(ordered, Dumper=yaml.CSafeDumper, sort_keys=False, width=100)


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_golden(case: str) -> None:
    """The translation of the case's input equals its golden output."""
    actual = render(load(TESTDATA / f"{case}.in.yaml"))
    out = TESTDATA / f"{case}.out.yaml"
    if UPDATE:
        out.write_text(actual)
    assert out.exists(), f"{out.name} is missing: run UPDATE_GOLDEN=1 pytest tests/translator"
    assert actual == out.read_text()


def test_no_stale_outputs() -> None:
    """Every golden output has its input (UPDATE_GOLDEN=1 deletes the stale ones)."""
    stale = [
        p for p in TESTDATA.glob("*.out.yaml") if p.name.removesuffix(".out.yaml") not in CASES
    ]
    if UPDATE:
        for path in stale:
            path.unlink()
        stale = []
    assert stale == []


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_deterministic(case: str) -> None:
    """The same input gives byte-identical resources, whatever order the objects come in."""
    objects = load(TESTDATA / f"{case}.in.yaml")
    forward = translate(objects)
    backward = translate(list(reversed(objects)))
    assert forward.statuses == backward.statuses
    for key, resources in forward.gateways.items():
        for kind, messages in resources.by_type().items():
            other = backward.gateways[key].by_type()[kind]
            assert [m.SerializeToString(deterministic=True) for m in messages] == [
                m.SerializeToString(deterministic=True) for m in other
            ]
