"""Validate many translations in a few Envoy runs; find and shrink those Envoy rejects.

Used by test_properties.py (no tests here). An Envoy start costs a fraction of a second, so
hundreds of hypothesis examples go into one bootstrap, built by test_envoy_validate's
``bootstrap_for`` exactly as the golden cases are (unique listener names and ports, routes
inlined). Examples whose clusters share a name but not the content go to different runs.
When a run fails, halving it finds the examples Envoy rejects; each is then shrunk by
dropping objects one at a time while Envoy still rejects it, and printed as YAML that can
become a golden case.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from test_envoy_validate import Validation, bootstrap_for, validate_bootstrap

from translator import translate
from translator.render import resource_json, result_json

Gateways = dict[str, dict[str, list[dict[str, Any]]]]
MAX_FAILURES = 3  # examples to find and shrink before giving up: the first few tell enough
SHRINK_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Example:
    objects: list[Any]
    gateways: Gateways  # translate's JSON output, per Gateway (secrets redacted)
    secrets: dict[str, list[dict[str, Any]]]  # per Gateway, with their key material


@dataclass(frozen=True, slots=True)
class Failure:
    examples: tuple[int, ...]  # one example, unless only their combination fails
    run: Validation


def example(objects: list[Any]) -> Example:
    result = translate(objects)
    secrets = {
        key: [resource_json(secret) for secret in resources.secrets]
        for key, resources in result.gateways.items()
    }
    return Example(objects, result_json(result)["gateways"], secrets)


def batches(examples: list[Example]) -> list[list[int]]:
    """Indexes of ``examples`` in groups whose clusters of one name have one content."""
    groups: list[tuple[list[int], dict[str, str]]] = []
    for index, ex in enumerate(examples):
        clusters = {
            c["name"]: json.dumps(c, sort_keys=True)
            for resources in ex.gateways.values()
            for c in resources["clusters"]
        }
        for members, seen in groups:
            if all(seen.get(name, content) == content for name, content in clusters.items()):
                members.append(index)
                seen.update(clusters)
                break
        else:
            groups.append(([index], clusters))
    return [members for members, _ in groups]


def run(
    examples: list[Example], indexes: list[int] | tuple[int, ...], directory: Path
) -> Validation:
    translations = {f"example-{i}": copy.deepcopy(examples[i].gateways) for i in indexes}
    config = bootstrap_for(translations)
    for i in indexes:
        add_secrets(config, f"example-{i}", examples[i].secrets)
    return validate_bootstrap(config, directory)


def add_secrets(
    config: dict[str, Any], name: str, secrets: dict[str, list[dict[str, Any]]]
) -> None:
    """Each Gateway's secrets as static secrets, renamed as bootstrap_for renames listeners,
    and its listeners' SDS references pointed at them: Envoy then checks every key."""
    statics = config["staticResources"]
    for gateway, found in secrets.items():
        prefix = f"{name}/{gateway}"
        for secret in found:
            statics.setdefault("secrets", []).append(
                {**secret, "name": f"{prefix}/{secret['name']}"}
            )
        for listener in statics["listeners"]:
            if listener["name"].startswith(prefix + "/"):
                for reference in _sds_references(listener):
                    reference["name"] = f"{prefix}/{reference['name']}"
                    del reference["sdsConfig"]


def _sds_references(value: Any) -> Iterator[dict[str, Any]]:
    """Every SdsSecretConfig (a mapping with name and sdsConfig) inside ``value``."""
    if isinstance(value, dict):
        if "name" in value and "sdsConfig" in value:
            yield value
        for child in value.values():
            yield from _sds_references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _sds_references(child)


def failures(examples: list[Example], directory: Path) -> list[Failure]:
    """The examples Envoy rejects (at most MAX_FAILURES), found by halving failed runs."""
    found: list[Failure] = []
    for batch in batches(examples):
        found += _halve(examples, batch, directory, MAX_FAILURES - len(found))
        if len(found) >= MAX_FAILURES:
            break
    return found


def _halve(
    examples: list[Example], indexes: list[int], directory: Path, limit: int
) -> list[Failure]:
    if limit <= 0:
        return []
    result = run(examples, indexes, directory)
    if result.ok:
        return []
    if len(indexes) == 1:
        return [Failure(tuple(indexes), result)]
    middle = len(indexes) // 2
    found = _halve(examples, indexes[:middle], directory, limit)
    found += _halve(examples, indexes[middle:], directory, limit - len(found))
    return found or [Failure(tuple(indexes), result)]


def shrink(objects: list[Any], fails: Callable[[list[Any]], bool]) -> list[Any]:
    """``objects`` without every object whose removal keeps ``fails`` true (time-boxed)."""
    deadline = time.monotonic() + SHRINK_SECONDS
    index = len(objects) - 1
    while index >= 0 and time.monotonic() < deadline:
        candidate = objects[:index] + objects[index + 1 :]
        if fails(candidate):
            objects = candidate
        index -= 1
    return objects


def rejected_by_envoy(directory: Path) -> Callable[[list[Any]], bool]:
    def fails(objects: list[Any]) -> bool:
        return not run([example(objects)], [0], directory).ok

    return fails


def report(examples: list[Example], found: list[Failure], directory: Path) -> str:
    """Each failure: Envoy's complaint, and the (shrunk) input as YAML for a golden case."""
    parts = []
    for failure in found:
        if len(failure.examples) == 1:
            objects = shrink(examples[failure.examples[0]].objects, rejected_by_envoy(directory))
            rerun = run([example(objects)], [0], directory)
            parts.append(f"Envoy rejects this input:\n{rerun.output}\n---\n{as_yaml(objects)}")
        else:
            inputs = "\n...\n".join(as_yaml(examples[i].objects) for i in failure.examples)
            parts.append(
                f"Envoy rejects examples {failure.examples} only together:\n"
                f"{failure.run.output}\n{inputs}"
            )
    return "\n\n".join(parts)


def as_yaml(objects: list[Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, width=100)
