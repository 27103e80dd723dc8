"""One collection's list+watch loop against the API server, in a thread of its own.

``watcher.kubernetes`` starts a ``KindWatcher`` per watched kind (and per referenced
Secret), hands it a ``sink`` and ``stop()``s it when it is no longer wanted. The official
client's ``ApiClient`` does the authentication, TLS and request building; bodies are read as
raw JSON (no model classes), one watch event per line.

The loop, and what the sink receives::

    list (paged, limit=500)      -> Listed(items, resourceVersion)   the whole collection
    watch from resourceVersion   -> Event(type, body) per ADDED/MODIFIED/DELETED
      allowWatchBookmarks          BOOKMARK: only the resourceVersion moves on
      server timeout, read timeout, a quiet connection: watch again from where it was
    410 Gone (status or event)   -> relist (a new Listed replaces everything: nothing lost)
    404 (the CRD went away)      -> Missing(reason); the thread ends
    any other error              -> wait with exponential backoff and full jitter, resume

The sink is called from this thread; it must be quick and thread-safe (the provider hands
each update to its event loop). ``stop()`` shuts the open connection down, so a blocked
read returns at once.

What it must not do: block the event loop, retry in a tight loop, or stop for an error
other than 404 (the API server restarting, a network blip, a 500 are all retried).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from urllib3.exceptions import ReadTimeoutError

from watcher.kube_kinds import Resource

log = structlog.get_logger(__name__)

PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class Listed:
    """The whole collection as of ``resource_version``."""

    items: tuple[Mapping[str, Any], ...]
    resource_version: str


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event: ADDED, MODIFIED or DELETED, with the object's raw body."""

    type: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Missing:
    """The API server no longer serves the collection (404): the watcher has stopped."""

    reason: str


Update = Listed | Event | Missing


class ApiError(Exception):
    """An HTTP error status from the API server, or an ERROR event in a watch."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class WatchTiming:
    """Timeouts and backoff, in seconds (tests shorten them)."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # no byte, not even a bookmark, for this long: reconnect
    watch_timeout: tuple[int, int] = (300, 600)  # the server ends each watch within this
    backoff_initial: float = 0.2
    backoff_max: float = 30.0


class Backoff:
    """Exponential backoff with full jitter: a random wait up to a doubling ceiling."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self._initial, self._maximum = initial, maximum
        self._ceiling = initial
        self._rng = rng or random.Random()  # jitter, not cryptography

    def next(self) -> float:
        delay = self._rng.uniform(self._ceiling / 2, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._ceiling = self._initial


class KindWatcher:
    """Lists and watches one ``Resource`` in a daemon thread, until stopped or 404."""

    def __init__(
        self,
        api_client: Any,
        resource: Resource,
        sink: Callable[[Update], None],
        *,
        timing: WatchTiming | None = None,
        resume_from: str | None = None,
    ) -> None:
        self.api_client = api_client
        self.resource = resource
        self._sink = sink
        self._timing = timing or WatchTiming()
        self._backoff = Backoff(self._timing.backoff_initial, self._timing.backoff_max)
        # With ``resume_from`` the first step is a watch from there, not a list.
        self.resource_version: str | None = resume_from
        self.lists = 0  # how many lists completed (a relist counts)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch {resource}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; an open connection is shut down at once."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            _shutdown(response)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
            except ApiError as error:
                if self._stopping.is_set():
                    return
                if error.status == 410:
                    log.info("kube.watch.expired", resource=str(self.resource), error=str(error))
                    self.resource_version = None
                    self._pause()  # a second 410 in a row waits longer
                elif error.status == 404:
                    self._sink(Missing(str(error)))
                    return
                else:
                    log.warning("kube.watch.error", resource=str(self.resource), error=str(error))
                    self._pause()
            except Exception as error:  # the server restarting, a reset connection, bad JSON
                if self._stopping.is_set():
                    return
                log.warning(
                    "kube.watch.error", resource=str(self.resource), error=repr(error)[:300]
                )
                self._pause()

    def _pause(self) -> None:
        self._stopping.wait(self._backoff.next())

    def _list(self) -> None:
        items: list[Mapping[str, Any]] = []
        token = ""
        while True:
            query: dict[str, Any] = {"limit": PAGE_SIZE}
            if token:
                query["continue"] = token
            page = self._get(query)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            if not token:
                break
        version = str(metadata.get("resourceVersion") or "")
        if self._stopping.is_set():
            return
        self._sink(Listed(tuple(items), version))
        self.resource_version = version
        self.lists += 1
        self._backoff.reset()

    def _watch(self) -> None:
        low, high = self._timing.watch_timeout
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version or "",
            "timeoutSeconds": random.randint(low, high),  # spread, not secrecy
        }
        response = self._open(query)
        try:
            for line in _lines(response):
                self._event(json.loads(line))
        except ReadTimeoutError as error:  # quiet too long: watch again from where we were
            log.debug("kube.watch.quiet", resource=str(self.resource), error=str(error))
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        body = event.get("object") or {}
        if kind == "ERROR":
            raise ApiError(int(body.get("code") or 500), str(body.get("message") or body))
        version = (body.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._sink(Event(str(kind), body))
            self._backoff.reset()
        if version:
            self.resource_version = str(version)

    # -- HTTP ----------------------------------------------------------------------------------

    def _request(self, query: Mapping[str, Any]) -> Any:
        params = dict(query)
        if self.resource.field_selector:
            params["fieldSelector"] = self.resource.field_selector
        timeout = (self._timing.connect_timeout, self._timing.read_timeout)
        return request(self.api_client, self.resource.path, params, timeout)

    def _get(self, query: Mapping[str, Any]) -> Mapping[str, Any]:
        return read_json(self._request(query))

    def _open(self, query: Mapping[str, Any]) -> Any:
        raw = self._request(query)
        with self._lock:
            self._response = raw
        if self._stopping.is_set():
            _shutdown(raw)
        return raw


def request(
    api_client: Any, path: str, query: Mapping[str, Any], timeout: tuple[float, float]
) -> Any:
    """GET ``path`` through the client's configuration; the open urllib3 response, if 2xx."""
    method, url, headers, _, _ = api_client.param_serialize(
        "GET",
        path,
        query_params=list(query.items()),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, headers, _request_timeout=timeout)
    raw = response.response
    if not 200 <= response.status <= 299:
        data = raw.read()
        raw.release_conn()
        raise ApiError(response.status, status_message(data))
    return raw


def read_json(raw: Any) -> Mapping[str, Any]:
    """The whole body of an open response, parsed; the connection goes back to the pool."""
    try:
        document: Mapping[str, Any] = json.loads(raw.read())
    finally:
        raw.release_conn()
    return document


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-separated JSON documents of a watch stream, as they arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def status_message(data: bytes) -> str:
    """The message of a Kubernetes ``Status`` body (its reason, else the raw text), bounded."""
    try:
        status = json.loads(data)
    except ValueError:
        return data[:300].decode(errors="replace")
    if isinstance(status, Mapping):
        return str(status.get("message") or status.get("reason") or status)[:1000]
    return str(status)[:300]


def _shutdown(response: Any) -> None:
    """Interrupt a read blocked on ``response`` (urllib3 2.3+), else close it."""
    shutdown = getattr(response, "shutdown", None)
    try:
        if shutdown is not None:
            shutdown()
        else:
            response.close()
    except Exception:  # already closed: nothing left to interrupt
        return
