"""A TCP relay on loopback that a test can cut: every connection dropped, new ones refused.

Who uses it: tests that need a client's connections to break while the server stays up
(the Kubernetes provider's watches while objects change behind its back).

    with TcpRelay(("127.0.0.1", server_port)) as relay:   # client connects to relay.port
        relay.cut()       # open connections closed; new ones accepted and closed at once
        relay.restore()   # new connections are forwarded again
        relay.switch(("127.0.0.1", other_port))  # cut, then forward to another server

Bytes are forwarded unchanged in both directions (TLS passes through). Threads only; each
connection pair has two pump threads, ended by closing both sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

__all__ = ["TcpRelay"]

_CHUNK = 65536


class TcpRelay:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0  # connections forwarded (tests may wait for a reconnect)
        self.refused = 0  # connections closed at once while cut
        self._open = threading.Event()
        self._open.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="tcp relay", daemon=True)
        self._thread.start()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        self._open.clear()
        self._drop_all()

    def restore(self) -> None:
        self._open.set()

    def switch(self, target: tuple[str, int]) -> None:
        """Drop every open connection; new ones go to ``target``."""
        self.cut()
        self.target = target
        self.restore()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="tcp relay pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
