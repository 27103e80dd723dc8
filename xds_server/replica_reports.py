"""Every replica's proxy rejections, shared through Leases, so ProxiesAccepted covers them all.

Who calls it: ``xds_server.write_back`` when serving ``--kubernetes`` with status writing on.
Each replica has its own proxies; only the leader writes status. Without this, a NACK from
a proxy connected to a follower would never reach the Gateway's status in the cluster.

What it does, in one thread per replica::

    every second:   our rejections changed (``local()`` returns a new mapping)?  publish
    every interval: publish anyway (renew), and, if leading, read the others
    publish:  Lease <lease name>-report-<digest of identity> in the lease namespace,
              label gateway-xds.io/proxy-report, annotation gateway-xds.io/rejections (JSON),
              holderIdentity = identity, renewTime now
    read:     list the labelled Leases; a report counts while its renewTime was seen to
              change within its leaseDurationSeconds (our clock, as client-go judges
              Leases, so skewed pod clocks do not matter); ``on_peers(merged)`` with the
              union of the fresh reports other than ours ({} when not leading)

A clean stop publishes an empty report, so a stopped replica's rejections do not linger.
Reports that disappear or go stale drop out after their lease duration.

What it must not do: run on the event loop (HTTP blocks), or need more than get, create,
update and list on Leases in its own namespace (deploy/rbac.yaml).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from xds_server.kube_rest import ApiError, send
from xds_server.leader import LeaseSettings, micro_time
from xds_server.proxy_conditions import Rejection, merge_rejections

log = structlog.get_logger(__name__)

REPORT_LABEL = "gateway-xds.io/proxy-report"
REJECTIONS_ANNOTATION = "gateway-xds.io/rejections"
REPORT_VERBS = ("list",)  # beyond leader.LEASE_VERBS: the leader lists every replica's report
REPORT_DURATION = 15  # seconds a report counts without being renewed
MAX_REPORTED = 100  # rejections per Gateway in a report (the condition names far fewer)

Found = Mapping[str, tuple[Rejection, ...]]


def report_name(lease_name: str, identity: str) -> str:
    """A valid object name for ``identity``'s report (identities may hold ``_``)."""
    return f"{lease_name}-report-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def encode(found: Found) -> str:
    """Rejections by Gateway as compact, stable JSON (bounded: messages are already trimmed
    by ``proxy_conditions.rejections``, and at most ``MAX_REPORTED`` per Gateway)."""
    plain = {
        gateway: [
            [r.node_id, r.type_url, r.version, r.message] for r in found[gateway][:MAX_REPORTED]
        ]
        for gateway in sorted(found)
    }
    return json.dumps(plain, separators=(",", ":"), sort_keys=True)


def decode(text: str | None) -> dict[str, tuple[Rejection, ...]]:
    """What ``encode`` wrote; a report that does not parse counts as none (and is logged)."""
    if not text:
        return {}
    try:
        plain = json.loads(text)
        return {
            str(gateway): tuple(Rejection(*(str(field) for field in item)) for item in items)
            for gateway, items in plain.items()
        }
    except (ValueError, TypeError, AttributeError) as error:
        log.warning("replica_report.unreadable", error=repr(error)[:200])
        return {}


class ReplicaReports:
    """Publishes this replica's rejections and, while leading, gathers the others'."""

    def __init__(
        self,
        api_client: Any,
        lease: LeaseSettings,
        *,
        local: Callable[[], Found],
        on_peers: Callable[[Found], None],
        is_leader: Callable[[], bool],
        interval: float = 5.0,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client
        self.lease = lease
        self.name = report_name(lease.name, lease.identity)
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{lease.namespace}/leases"
        self._local = local
        self._on_peers = on_peers
        self._is_leader = is_leader
        self._interval = interval
        self._check_interval = check_interval
        self._clock = clock
        self._published: object = None  # the local mapping last published
        self._published_at = float("-inf")
        self._read_at = float("-inf")
        self._seen: dict[str, tuple[str, float]] = {}  # report name -> (renewTime, seen at)
        self._had_peers = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, then publish an empty report. Blocks: call in a thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            self._publish({})
        except Exception as error:  # the API server is gone: the report simply goes stale
            log.warning("replica_report.clear_failed", error=repr(error)[:300])

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.step()
            except Exception as error:  # the API server is down or refuses us: next time
                log.warning("replica_report.failed", error=repr(error)[:300])
                self._published = None  # publish again next time
            self._stopping.wait(self._check_interval)

    def step(self) -> None:
        """One turn of the loop (tests call it directly)."""
        now = self._clock()
        local = self._local()
        if local is not self._published or now - self._published_at >= self._interval:
            self._publish(local)
            self._published, self._published_at = local, now
        if self._is_leader():
            if now - self._read_at >= self._interval or not self._had_peers:
                self._on_peers(self._gather(now))
                self._read_at, self._had_peers = now, True
        elif self._had_peers:
            self._seen.clear()
            self._on_peers({})
            self._had_peers = False

    # -- the API -------------------------------------------------------------------------------

    def _publish(self, found: Found) -> None:
        annotation = encode(found)
        path = f"{self._collection}/{self.name}"
        spec = {
            "holderIdentity": self.lease.identity,
            "leaseDurationSeconds": REPORT_DURATION,
            "renewTime": micro_time(datetime.now(UTC)),
        }
        try:
            current = send(self.api_client, "GET", path)
        except ApiError as error:
            if error.status != 404:
                raise
            send(self.api_client, "POST", self._collection, self._body(annotation, spec))
            return
        metadata = dict(current.get("metadata") or {})
        body = self._body(annotation, {**(current.get("spec") or {}), **spec})
        body["metadata"]["resourceVersion"] = metadata.get("resourceVersion")
        send(self.api_client, "PUT", path, body)

    def _body(self, annotation: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.lease.namespace,
                "labels": {REPORT_LABEL: "true"},
                "annotations": {REJECTIONS_ANNOTATION: annotation},
            },
            "spec": dict(spec),
        }

    def _gather(self, now: float) -> Found:
        listed = send(self.api_client, "GET", f"{self._collection}?labelSelector={REPORT_LABEL}")
        fresh: list[Found] = []
        seen: dict[str, tuple[str, float]] = {}
        for lease in listed.get("items") or []:
            metadata = lease.get("metadata") or {}
            spec = lease.get("spec") or {}
            name = str(metadata.get("name") or "")
            renewed = str(spec.get("renewTime") or "")
            if name == self.name:
                continue
            before = self._seen.get(name)
            seen_at = before[1] if before is not None and before[0] == renewed else now
            seen[name] = (renewed, seen_at)
            duration = float(spec.get("leaseDurationSeconds") or REPORT_DURATION)
            if renewed and now - seen_at < duration:
                fresh.append(decode((metadata.get("annotations") or {}).get(REJECTIONS_ANNOTATION)))
        self._seen = seen
        return merge_rejections(fresh)
