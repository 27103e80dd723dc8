"""A background loop of HTTP requests for e2e tests that change config under live traffic.

``Traffic(url, paths).run`` (on a thread) sends GETs round-robin over ``paths`` until
``stop`` is set or ``max_requests`` were sent, counting answers by path and the answering
backend's service and recording every failure. Tests assert there were none.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from support.http import get


@dataclass
class Traffic:
    """A bounded loop of requests over ``paths`` of ``url``, counting answers and failures.

    ``answered`` is keyed "<path> <service>", or just "<service>" when the only path is "".
    """

    url: str
    paths: tuple[str, ...] = ("",)
    max_requests: int = 20_000  # bounds the loop whatever happens
    answered: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        for count in range(self.max_requests):
            if self.stop.is_set():
                return
            path = self.paths[count % len(self.paths)]
            where = f"{path}: " if path else ""
            try:
                result = get(self.url + path, timeout=5)
            except OSError as error:
                self.failures.append(f"{where}{error!r}")
                continue
            if result.status == 200 and result.json is not None:
                service = result.json["service"]
                self.answered[f"{path} {service}" if path else service] += 1
            else:
                self.failures.append(f"{where}{result.status} {result.text[:100]}")

    @property
    def total(self) -> int:
        return sum(self.answered.values())
