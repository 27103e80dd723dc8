"""Echo backends for tests, served by one event loop in a background thread.

Who calls it: end-to-end tests that need backends behind Envoy, and the echo tests.

    with EchoBackends() as backends:
        a = backends.start("echo-a")            # port 0: the kernel picks a free port
        b = backends.start("echo-b", namespace="other")
        get(a.url + "/x").json["service"]        # "echo-a"
        a.requests[-1].target                    # "/x": every request it received

What it must not do: leave threads, sockets or pending tasks behind (pytest runs with
warnings as errors, so an unclosed transport would fail a later test).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from xds_server.echo import EchoContext, make_handler
from xds_server.httpd import Handler, Request, Response, close_server, serve, server_port

__all__ = ["EchoBackend", "EchoBackends"]

T = TypeVar("T")
_CALL_TIMEOUT = 10.0


@dataclass(frozen=True)
class EchoBackend:
    """One running echo backend and the identity it reports."""

    service: str
    namespace: str
    pod: str
    host: str
    port: int
    # Every request it received, appended by the backends' loop thread as it arrives.
    requests: list[Request] = field(default_factory=list, compare=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class EchoBackends:
    """Runs any number of echo backends on an event loop in a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="echo-backends", daemon=True)
        self._servers: dict[int, asyncio.Server] = {}
        self._closed = False
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("EchoBackends is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT)

    def start(
        self,
        service: str,
        *,
        namespace: str = "default",
        pod: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> EchoBackend:
        """Start a backend (port 0 by default) and return where it listens."""

        async def start() -> EchoBackend:
            seen: list[Request] = []
            handlers: list[Handler] = []  # the echo's, once the port (in its pod name) is known

            async def handle(request: Request) -> Response:
                seen.append(request)
                return await handlers[0](request)

            server = await serve(handle, host, port, ssl_context=ssl_context)
            bound = server_port(server)
            context = EchoContext(service, namespace, pod or f"{service}-{bound}")
            handlers.append(make_handler(context))
            self._servers[bound] = server
            return EchoBackend(service, context.namespace, context.pod, host, bound, seen)

        return self._call(start())

    def stop(self, backend: EchoBackend) -> None:
        """Stop one backend: it stops listening and its open connections are closed."""
        server = self._servers.pop(backend.port, None)
        if server is not None:
            self._call(close_server(server))

    def close(self) -> None:
        """Stop every backend, then the loop and its thread."""
        if self._closed:
            return
        for port in list(self._servers):
            self._call(close_server(self._servers.pop(port)))
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> EchoBackends:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
