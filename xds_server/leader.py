"""Leader election with a ``coordination.k8s.io/v1`` Lease: which replica writes status.

Who calls it: ``xds_server.app`` (``xdsctl serve --kubernetes``) starts one
``LeaderElector`` per replica and hands ``is_leader`` to the status writer. Every replica
serves xDS whether it leads or not; only the leader writes status.

How (the rules of client-go's leaderelection, re-stated, not copied)::

    every retry_period:  GET the Lease
      absent                          -> create it with us as holder          (leading)
      held by us                      -> update renewTime                     (renewed)
      held by another, record changed within leaseDurationSeconds (our clock)
                                      -> wait: not ours
      held by nobody, or unchanged for leaseDurationSeconds
                                      -> update: us as holder, leaseTransitions + 1
      every update carries the resourceVersion read: a 409 means someone else won

- Expiry is judged by when *this* replica saw the record change (a monotonic clock), never
  by the holder's renewTime, so skewed clocks cannot make two leaders.
- The leader counts as leading only while its last successful renewal (the time the request
  was *sent*) is younger than ``renew_deadline`` < ``lease_duration``: it stops writing
  before any other replica may take the Lease. A replica that loses the Lease, or cannot
  renew it in time, stops writing at once.
- A waiting replica tries again exactly when the Lease it watches would expire, so a dead
  leader is replaced within ``lease_duration`` (plus at most one ``retry_period``) of its
  last renewal.
- ``stop(release=True)`` (a clean shutdown) empties holderIdentity so another replica takes
  over at its next try, not after the lease duration.

What it must not do: run on the event loop (it blocks on HTTP in its own thread), write
anything but its one Lease, or report leading after ``renew_deadline`` without a renewal.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from xds_server import app_metrics
from xds_server.kube_rest import ApiError, send

log = structlog.get_logger(__name__)

DEFAULT_LEASE_NAME = "gateway-xds-status-writer"
LEASE_VERBS = ("get", "create", "update")  # on leases.coordination.k8s.io, its namespace only


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Which Lease, who we are, and the timing (seconds; client-go's defaults)."""

    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        if not self.identity:
            raise ValueError("the lease identity must not be empty")

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquires and renews one Lease in a daemon thread; ``is_leader`` says if we hold it."""

    def __init__(
        self,
        api_client: Any,
        settings: LeaseSettings,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client
        self.settings = settings
        self._on_change = on_change
        self._clock = clock
        self._leading = False
        self._renewed = 0.0  # clock() when the last successful acquire/renew was sent
        self._observed: tuple[Any, ...] | None = None  # the Lease record last seen
        self._observed_at = 0.0  # clock() when that record was first seen
        self.transitions = 0  # times this replica became leader
        self._stopping = threading.Event()
        self._rng = random.Random()  # jitter, not cryptography
        self._thread = threading.Thread(
            target=self._run, name=f"lease {settings.name}", daemon=True
        )

    @property
    def is_leader(self) -> bool:
        """We hold the Lease and renewed it less than ``renew_deadline`` ago."""
        if not self._leading:
            return False
        return self._clock() - self._renewed < self.settings.renew_deadline

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Stop renewing; with ``release`` hand the Lease back so another replica takes it now."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        was_leading = self._leading
        self._set_leading(False)
        if release and was_leading:
            try:
                self._release()
            except Exception as error:  # the API server is gone: the Lease simply expires
                log.warning("lease.release_failed", error=repr(error)[:300])

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        settings = self.settings
        while not self._stopping.is_set():
            sent = self._clock()
            try:
                held = self._try_acquire_or_renew(sent)
            except Exception as error:  # the API server is down or refuses us
                log.warning("lease.try_failed", lease=settings.name, error=repr(error)[:300])
                held = False
            if held:
                self._renewed = sent
                self._set_leading(True)
            elif self._leading and self._clock() - self._renewed >= settings.renew_deadline:
                self._set_leading(False)
            elif self._leading and self._holder() != settings.identity:
                self._set_leading(False)  # someone else holds it now
            self._stopping.wait(self._next_wait())

    def _holder(self) -> str:
        return str(self._observed[0]) if self._observed is not None else ""

    def _next_wait(self) -> float:
        settings = self.settings
        if self._leading:
            return settings.retry_period
        wait = settings.retry_period * self._rng.uniform(1.0, 1.2)
        if self._observed is not None and self._observed[0]:
            duration = float(self._observed[2] or settings.lease_duration)
            expires_in = self._observed_at + duration - self._clock()
            wait = min(wait, max(0.01, expires_in + 0.01))
        return wait

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        app_metrics.LEADER.set(1 if leading else 0)
        if leading:
            self.transitions += 1
        log.info(
            "lease.leading" if leading else "lease.lost",
            lease=f"{self.settings.namespace}/{self.settings.name}",
            identity=self.settings.identity,
        )
        if self._on_change is not None:
            self._on_change(leading)

    # -- one try -------------------------------------------------------------------------------

    def _try_acquire_or_renew(self, now: float) -> bool:
        settings = self.settings
        try:
            lease = send(self.api_client, "GET", settings.path)
        except ApiError as error:
            if error.status != 404:
                raise
            return self._create()
        spec: Mapping[str, Any] = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or settings.lease_duration)
        ours = holder == settings.identity
        if holder and not ours and self._observed_at + duration > now:
            return False
        wall = micro_time(_now())
        transitions = int(spec.get("leaseTransitions") or 0)
        new_spec = {
            **spec,
            "holderIdentity": settings.identity,
            "leaseDurationSeconds": int(settings.lease_duration),
            "renewTime": wall,
            "acquireTime": spec.get("acquireTime") if ours else wall,
            "leaseTransitions": transitions if ours else transitions + 1,
        }
        body = {**lease, "spec": new_spec}
        try:
            updated = send(self.api_client, "PUT", settings.path, body)
        except ApiError as error:
            if error.status == 409:
                return False  # another replica updated it first
            raise
        self._observe(updated, now)
        return True

    def _create(self) -> bool:
        settings = self.settings
        wall = micro_time(_now())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": settings.name, "namespace": settings.namespace},
            "spec": {
                "holderIdentity": settings.identity,
                "leaseDurationSeconds": int(settings.lease_duration),
                "acquireTime": wall,
                "renewTime": wall,
                "leaseTransitions": 0,
            },
        }
        collection = settings.path.rsplit("/", 1)[0]
        try:
            created = send(self.api_client, "POST", collection, body)
        except ApiError as error:
            if error.status == 409:
                return False  # another replica created it first
            raise
        self._observe(created, self._clock())
        return True

    def _observe(self, lease: Mapping[str, Any], now: float) -> None:
        spec = lease.get("spec") or {}
        self._observed = (
            str(spec.get("holderIdentity") or ""),
            spec.get("renewTime"),
            spec.get("leaseDurationSeconds"),
        )
        self._observed_at = now

    def _release(self) -> None:
        lease = send(self.api_client, "GET", self.settings.path)
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.settings.identity:
            return
        released = {
            **spec,
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "renewTime": micro_time(_now()),
        }
        send(self.api_client, "PUT", self.settings.path, {**lease, "spec": released})
        log.info("lease.released", lease=self.settings.name, identity=self.settings.identity)
