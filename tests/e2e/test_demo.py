"""`xdsctl demo` as a new user runs it (`make demo`): real Envoy, echo backends, Ctrl-C.

The demo uses its documented fixed ports (8080 Envoy's listener, 18000 xDS, 19000 admin,
9101/9102 echo, 19901 Envoy admin).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import xdsctl
from support.http import get
from support.wait import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.e2e
@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_the_demo_routes_shows_its_proxy_and_stops_on_ctrl_c(delta: bool) -> None:
    port = 8080
    args = ["demo", "--config-dir", str(EXAMPLES)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "xds_server.cli", *args, *(["--delta"] if delta else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def canary_service() -> str | None:
            result = get(f"http://127.0.0.1:{port}/", headers={"x-canary": "true"})
            return result.json["service"] if result.status == 200 and result.json else None

        wait_until(lambda: canary_service() == "echo-v2", 30, ignore=(OSError,))
        status = xdsctl("proxy-status", "-o", "json")
        assert status.returncode == 0, status.stderr
        [proxy] = json.loads(status.stdout)
        assert proxy["gateway"] == "default/demo"
        assert proxy["protocol"] == ("delta" if delta else "sotw")
        wait_until(
            lambda: all(
                t["status"] in ("SYNCED", "IGNORED")
                for t in json.loads(xdsctl("proxy-status", "-o", "json").stdout)[0][
                    "types"
                ].values()
            ),
            10,
        )
        dump = xdsctl("config-dump", "--gateway", "default/demo")
        assert dump.returncode == 0, dump.stderr
        assert json.loads(dump.stdout)["gateways"]["default/demo"]["listeners"]
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=20)
    assert demo.returncode == 0, output
    assert "xdsctl proxy-status" in output  # the printed help names the inspection commands
    assert "stopped: Envoy, the control plane and the echo backends" in output
