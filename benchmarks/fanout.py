"""Fan-out: one route change reaching N simulated proxies over ADS, and memory per stream.

The real control plane (`xdsctl serve`) runs in its own process on a temp folder holding one
Gateway, a few HTTPRoutes (one file each) and their Services and EndpointSlices. A second
process opens N ADS streams (one gRPC connection each, ramped), each behaving as Envoy does:

- SotW (``--mode sotw``): wildcard CDS and LDS; EDS for the clusters' service names (a CDS
  response that adds clusters is ACKed only after their endpoints arrived, as Envoy ACKs
  once clusters warmed); RDS for the route names of the listeners' HTTP connection managers;
- Delta (``--mode delta``): the same subscriptions over DeltaAggregatedResources (wildcard
  CDS/LDS, explicit EDS/RDS names subscribed and unsubscribed as clusters and listeners
  come and go), each response ACKed with its nonce.

Every response is ACKed. Route 0's path carries a marker (``/fanout-K``); change K rewrites
that file and the benchmark measures, per proxy, the time from the file write to the proxy's
ACK of the route configuration holding marker K. Memory per stream is the server's VmRSS
with N idle streams minus its VmRSS before any connected, divided by N.

    .venv/bin/python benchmarks/fanout.py [--proxies 1000] [--changes 10] [--mode sotw|delta]

Prints JSON. ``latency_from_write_s`` includes the file watcher's poll and debounce and the
translation; ``fanout_from_first_ack_s`` starts when the first proxy ACKed the change (one
round trip after the new snapshot reached the cache), so it is the ADS fan-out alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import (
    ServerProcess,
    gateway_yaml,
    raise_fd_limit,
    route_yaml,
    services_yaml,
    settle_rss,
    summary,
    write_atomic,
)

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
TYPE = "type.googleapis.com/envoy."
CDS = TYPE + "config.cluster.v3.Cluster"
EDS = TYPE + "config.endpoint.v3.ClusterLoadAssignment"
LDS = TYPE + "config.listener.v3.Listener"
RDS = TYPE + "config.route.v3.RouteConfiguration"
HCM = TYPE + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
MARKER = re.compile(rb"/fanout-(\d+)")


def write_config(folder: Path, marker: int, routes: int = 5, services: int = 3) -> None:
    """One Gateway, ``routes`` route files over ``services`` Services; route 0 holds marker."""
    (folder / "gateway.yaml").write_text(gateway_yaml(8080))
    backends = [(f"svc-{i}", 9000 + i % 1000) for i in range(services)]
    (folder / "services.yaml").write_text(services_yaml(backends))
    for i in range(1, routes):
        text = route_yaml(f"route-{i}", f"host-{i}.example.com", f"/p{i}", f"svc-{i % services}")
        (folder / f"route-{i}.yaml").write_text(text)
    write_route0(folder, marker)


def write_route0(folder: Path, marker: int) -> None:
    write_atomic(
        folder / "route-0.yaml",
        route_yaml("route-0", "host-0.example.com", f"/fanout-{marker}", "svc-0"),
    )


# -- the simulated proxies (run in their own process) ------------------------------------


@dataclass
class Fleet:
    """What all simulated proxies share: when each ACKed each marker, and who failed."""

    size: int
    acks: dict[int, dict[int, float]] = field(default_factory=dict)  # marker -> proxy -> t
    done: dict[int, asyncio.Event] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    responses: int = 0

    def event(self, marker: int) -> asyncio.Event:
        return self.done.setdefault(marker, asyncio.Event())

    def acked(self, proxy: int, routes: list[bytes]) -> None:
        """Proxy ``proxy`` just ACKed route configurations ``routes`` (serialized)."""
        now = time.time()
        for value in routes:
            for match in MARKER.finditer(value):
                marker = int(match.group(1))
                seen = self.acks.setdefault(marker, {})
                if proxy not in seen:
                    seen[proxy] = now
                    if len(seen) == self.size:
                        self.event(marker).set()


def _node(index: int) -> Any:
    from envoy.config.core.v3 import base_pb2

    node = base_pb2.Node(id=f"fanout-{index}", cluster="default/gw")
    node.metadata.fields["gateway"].string_value = "default/gw"
    return node


def _eds_names(values: list[bytes]) -> dict[str, bytes]:
    """Cluster name -> serialized Cluster, for the EDS clusters among ``values``."""
    from envoy.config.cluster.v3 import cluster_pb2

    found: dict[str, bytes] = {}
    for value in values:
        cluster = cluster_pb2.Cluster.FromString(value)
        if cluster.type == cluster_pb2.Cluster.EDS:
            found[cluster.eds_cluster_config.service_name or cluster.name] = value
    return found


def _rds_names(values: list[bytes]) -> set[str]:
    """The route configuration names the listeners' HTTP connection managers use over RDS."""
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2 as hcm_pb2,
    )

    names: set[str] = set()
    for value in values:
        listener = listener_pb2.Listener.FromString(value)
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for filt in chain.filters:
                if filt.typed_config.type_url == HCM:
                    manager = hcm_pb2.HttpConnectionManager.FromString(filt.typed_config.value)
                    if manager.HasField("rds"):
                        names.add(manager.rds.route_config_name)
    return names


async def sotw_proxy(channel: Any, index: int, fleet: Fleet) -> None:
    """One Envoy-like SotW ADS stream: subscribe, follow CDS->EDS and LDS->RDS, ACK all."""
    from envoy.service.discovery.v3 import discovery_pb2 as pb

    call = channel.stream_stream(
        ADS + "StreamAggregatedResources",
        request_serializer=pb.DiscoveryRequest.SerializeToString,
        response_deserializer=pb.DiscoveryResponse.FromString,
    )()
    last: dict[str, tuple[str, str]] = {}  # type -> (version, nonce) of the last response
    eds: dict[str, bytes] = {}
    rds: set[str] = set()
    held: Any = None  # a CDS ACK held until the new clusters' endpoints arrive

    def request(type_url: str, names: Any = ()) -> Any:
        version, nonce = last.get(type_url, ("", ""))
        return pb.DiscoveryRequest(
            type_url=type_url, version_info=version, response_nonce=nonce, resource_names=names
        )

    await call.write(pb.DiscoveryRequest(node=_node(index), type_url=CDS))
    await call.write(pb.DiscoveryRequest(type_url=LDS))
    while (response := await call.read()) is not grpc_eof():
        fleet.responses += 1
        type_url = response.type_url
        last[type_url] = (response.version_info, response.nonce)
        values = [r.value for r in response.resources]
        if type_url == CDS:
            clusters = _eds_names(values)
            added = clusters.keys() - eds.keys()
            if clusters.keys() != eds.keys():
                await call.write(request(EDS, sorted(clusters)))
            eds = clusters
            if added:
                held = request(CDS)
                continue
        elif type_url == LDS:
            routes = _rds_names(values)
            if routes != rds:
                rds = routes
                await call.write(request(RDS, sorted(rds)))
        names = sorted(eds) if type_url == EDS else sorted(rds) if type_url == RDS else []
        await call.write(request(type_url, names))
        if type_url == RDS:
            fleet.acked(index, values)
        elif type_url == EDS and held is not None:
            await call.write(held)
            held = None


async def delta_proxy(channel: Any, index: int, fleet: Fleet) -> None:
    """One Envoy-like Delta ADS stream: wildcard CDS/LDS, explicit EDS/RDS, ACK all."""
    from envoy.service.discovery.v3 import discovery_pb2 as pb

    call = channel.stream_stream(
        ADS + "DeltaAggregatedResources",
        request_serializer=pb.DeltaDiscoveryRequest.SerializeToString,
        response_deserializer=pb.DeltaDiscoveryResponse.FromString,
    )()
    have: dict[str, dict[str, bytes]] = {CDS: {}, EDS: {}, LDS: {}, RDS: {}}
    wanted: dict[str, set[str]] = {EDS: set(), RDS: set()}

    async def follow(type_url: str, names: set[str]) -> None:
        """Subscribe to ``names`` of ``type_url`` (and drop the rest), as Envoy's watches do."""
        old = wanted[type_url]
        if names != old:
            wanted[type_url] = names
            await call.write(
                pb.DeltaDiscoveryRequest(
                    type_url=type_url,
                    resource_names_subscribe=sorted(names - old),
                    resource_names_unsubscribe=sorted(old - names),
                )
            )

    await call.write(pb.DeltaDiscoveryRequest(node=_node(index), type_url=CDS))
    await call.write(pb.DeltaDiscoveryRequest(type_url=LDS))
    while (response := await call.read()) is not grpc_eof():
        fleet.responses += 1
        type_url = response.type_url
        resources = have.setdefault(type_url, {})
        for name in response.removed_resources:
            resources.pop(name, None)
        changed = []
        for resource in response.resources:
            resources[resource.name] = resource.resource.value
            changed.append(resource.resource.value)
        if type_url == CDS:
            await follow(EDS, set(_eds_names(list(resources.values()))))
        elif type_url == LDS:
            await follow(RDS, _rds_names(list(resources.values())))
        await call.write(pb.DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce))
        if type_url == RDS:
            fleet.acked(index, changed)


def grpc_eof() -> Any:
    import grpc

    return grpc.aio.EOF


async def run_proxy(address: str, index: int, mode: str, fleet: Fleet) -> None:
    import grpc

    # A local subchannel pool: every simulated proxy has its own TCP connection, as Envoys do.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    proxy = sotw_proxy if mode == "sotw" else delta_proxy
    try:
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            await proxy(channel, index, fleet)
            fleet.errors[index] = "stream ended by the server"
    except asyncio.CancelledError:
        raise
    except Exception as error:  # the benchmark reports it; the other proxies go on
        fleet.errors[index] = repr(error)[:300]


async def _fleet_main(pipe: Connection, address: str, size: int, mode: str, ramp: float) -> None:
    fleet = Fleet(size)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    for index in range(size):
        tasks.append(asyncio.create_task(run_proxy(address, index, mode, fleet)))
        await asyncio.sleep(max(0.0, started + (index + 1) / ramp - time.monotonic()))
    try:
        while True:
            command = await asyncio.to_thread(pipe.recv)
            if command["cmd"] == "stop":
                break
            marker, timeout = command["marker"], command["timeout"]
            cpu = time.process_time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fleet.event(marker).wait(), timeout)
            seen = fleet.acks.get(marker, {})
            pipe.send(
                {
                    "times": [seen.get(i) for i in range(size)],
                    "errors": dict(list(fleet.errors.items())[:5]),
                    "error_count": len(fleet.errors),
                    "responses": fleet.responses,
                    "connect_s": time.monotonic() - started,
                    "cpu_s": time.process_time() - cpu,
                }
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def fleet_process(pipe: Connection, address: str, size: int, mode: str, ramp: float) -> None:
    """Entry point of the load generator's process."""
    asyncio.run(_fleet_main(pipe, address, size, mode, ramp))


# -- the benchmark ------------------------------------------------------------------------


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config = workdir / "config"
    config.mkdir()
    write_config(config, 0, args.routes, args.services)
    server_args = ["--log-level", args.server_log_level]
    if args.debounce is not None:
        server_args += ["--debounce", str(args.debounce)]
    if args.max_delay is not None:
        server_args += ["--max-delay", str(args.max_delay)]
    server = ServerProcess(config, workdir, server_args)
    server.start()
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    fleet = context.Process(
        target=fleet_process,
        args=(theirs, server.xds_address, args.proxies, args.mode, args.ramp),
        daemon=True,
    )
    try:
        rss = {"before": settle_rss(server.pid)}
        fleet.start()
        connect_timeout = args.proxies / args.ramp + 60
        ours.send({"cmd": "await", "marker": 0, "timeout": connect_timeout})
        initial = ours.recv()
        connected = sum(t is not None for t in initial["times"])
        if connected < args.proxies:
            raise RuntimeError(f"only {connected}/{args.proxies} proxies configured: {initial}")
        rss["idle"] = settle_rss(server.pid)
        streams = server.metric("gateway_xds_connected_proxies")
        changes = [run_change(server, config, ours, k, args) for k in range(1, args.changes + 1)]
        rss["after_changes"] = settle_rss(server.pid)
        ours.send({"cmd": "stop"})
    finally:
        fleet.join(30)
        if fleet.is_alive():
            fleet.terminate()
        server.stop()
    return report(args, initial, streams, rss, changes)


def run_change(
    server: ServerProcess, config: Path, pipe: Connection, marker: int, args: argparse.Namespace
) -> dict[str, Any]:
    cpu_before = server.cpu_seconds()
    written = time.time()
    write_route0(config, marker)
    pipe.send({"cmd": "await", "marker": marker, "timeout": args.timeout})
    result = pipe.recv()
    cpu = server.cpu_seconds() - cpu_before
    times = [t for t in result["times"] if t is not None]
    first = min(times, default=written)
    return {
        "acked": len(times),
        "latencies_s": [t - written for t in times],
        "first_ack_s": first - written,
        "spread_s": [t - first for t in times],
        "server_cpu_s": round(cpu, 3),
        "proxies_cpu_s": round(result["cpu_s"], 3),
        "errors": result["errors"],
        "error_count": result["error_count"],
    }


def report(
    args: argparse.Namespace,
    initial: dict[str, Any],
    streams: float | None,
    rss: dict[str, int],
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    complete = [c for c in changes if c["acked"] == args.proxies]
    all_acked = [max(c["latencies_s"]) for c in complete]
    pooled = [t for c in changes for t in c["latencies_s"]]
    spread_all = [max(c["spread_s"]) for c in complete]
    spread_pooled = [t for c in changes for t in c["spread_s"]]
    last = changes[-1] if changes else initial
    return {
        "benchmark": "fanout",
        "mode": args.mode,
        "proxies": args.proxies,
        "changes": args.changes,
        "changes_fully_acked": len(complete),
        "routes": args.routes,
        "services": args.services,
        "connect_ramp_per_s": args.ramp,
        "initial_config_all_acked_s": round(initial["connect_s"], 3),
        "server_streams": streams,
        "latency_from_write_s": {
            "all_acked_per_change": summary(all_acked),
            "per_proxy": summary(pooled),
        },
        "fanout_from_first_ack_s": {
            "all_acked_per_change": summary(spread_all),
            "per_proxy": summary(spread_pooled),
        },
        "write_to_first_ack_s": summary([c["first_ack_s"] for c in changes]),
        "server_cpu_s_per_change": summary([c["server_cpu_s"] for c in changes], 3),
        "proxies_cpu_s_per_change": summary([c["proxies_cpu_s"] for c in changes], 3),
        "server_rss_kib": rss,
        "server_kib_per_stream": round((rss["idle"] - rss["before"]) / args.proxies, 2),
        "responses_received": initial["responses"],
        "proxy_errors": last["error_count"],
        "error_samples": last["errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw")
    parser.add_argument("--routes", type=int, default=5, help="HTTPRoutes, one file each")
    parser.add_argument("--services", type=int, default=3, help="Services (one cluster each)")
    parser.add_argument("--ramp", type=float, default=300.0, help="new connections per second")
    parser.add_argument("--timeout", type=float, default=30.0, help="per change, seconds")
    parser.add_argument("--debounce", type=float, default=None, help="passed to xdsctl serve")
    parser.add_argument("--max-delay", type=float, default=None, help="passed to xdsctl serve")
    parser.add_argument("--server-log-level", default="info")
    args = parser.parse_args()
    raise_fd_limit(4 * args.proxies + 1024)
    with tempfile.TemporaryDirectory(prefix="fanout-") as workdir:
        result = measure(args, Path(workdir))
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
