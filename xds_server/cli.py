"""`xdsctl`: the one entry point (serve, bootstrap, translate, proxy-status, config-dump, ...).

Each subcommand parses its flags here and calls the module that does the work; this module
holds no logic of its own beyond turning results into output and exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

DEFAULT_XDS = "127.0.0.1:18000"
DEFAULT_ADMIN = "127.0.0.1:19000"
DEFAULT_PORT_OFFSET = 10000  # as translator.TranslateOptions


def _port_offset(text: str) -> int:
    """An offset that keeps every port below 1024 a valid port (0 to 64512)."""
    value = int(text)
    if not 0 <= value <= 65535 - 1023:
        raise argparse.ArgumentTypeError(f"{value} is not from 0 to {65535 - 1023}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and flag; tests parse docker-compose.yaml's commands with it."""
    parser = argparse.ArgumentParser(
        prog="xdsctl", description="gateway-xds: a Gateway API control plane for Envoy"
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the control plane")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-dir", type=Path, help="directory of YAML/JSON")
    source.add_argument(
        "--kubernetes", action="store_true", help="list and watch a Kubernetes API server"
    )
    _add_kubernetes_flags(serve)
    serve.add_argument("--xds-address", default=DEFAULT_XDS, help="ADS gRPC address")
    serve.add_argument("--admin-address", default=DEFAULT_ADMIN, help="admin HTTP address")
    serve.add_argument(
        "--listener-address", default="0.0.0.0", help="address proxies bind listeners to"
    )
    serve.add_argument(
        "--privileged-port-offset",
        type=_port_offset,
        default=DEFAULT_PORT_OFFSET,
        metavar="N",
        help="Gateway listener ports below 1024 bind to port + N (0: as written)",
    )
    serve.add_argument("--debounce", type=float, default=0.02, help="quiet time, seconds")
    serve.add_argument("--max-delay", type=float, default=0.5, help="longest wait, seconds")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    boot = sub.add_parser("bootstrap", help="print an Envoy bootstrap for a Gateway's proxy")
    boot.add_argument("--gateway", required=True, help="NAMESPACE/NAME of the Gateway")
    boot.add_argument("--xds-address", default=DEFAULT_XDS)
    boot.add_argument("--admin-port", type=int, default=19901)
    boot.add_argument(
        "--admin-address",
        default="127.0.0.1",
        help="Envoy admin bind address (0.0.0.0 only inside a container; it can stop Envoy)",
    )
    boot.add_argument("--node-id", default=None)
    boot.add_argument("--delta", action="store_true", help="use delta xDS")
    boot.set_defaults(run=_bootstrap)

    tr = sub.add_parser("translate", help="translate files offline and print the result")
    tr.add_argument("-f", "--filename", action="append", type=Path, required=True)
    tr.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    tr.add_argument("--listener-address", default="0.0.0.0")
    tr.add_argument(
        "--privileged-port-offset", type=_port_offset, default=DEFAULT_PORT_OFFSET, metavar="N"
    )
    tr.set_defaults(run=_translate)

    status = sub.add_parser("proxy-status", help="connected proxies and their sync, per type")
    status.add_argument("--admin-address", default=DEFAULT_ADMIN, help="the server's admin API")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    status.set_defaults(run=_proxy_status)

    dump = sub.add_parser("config-dump", help="a running server's config for one Gateway")
    dump.add_argument("--gateway", required=True, help="NAMESPACE/NAME of the Gateway")
    dump.add_argument("--admin-address", default=DEFAULT_ADMIN, help="the server's admin API")
    dump.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    dump.set_defaults(run=_config_dump)

    echo = sub.add_parser("echo", help="run an HTTP echo backend (demo and tests)")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, required=True)
    echo.add_argument("--name", required=True, help="service name to report")
    echo.add_argument("--namespace", default="default")
    echo.add_argument("--pod", default=None)
    echo.set_defaults(run=_echo)

    demo = sub.add_parser("demo", help="control plane + real Envoy + two echo backends")
    demo.add_argument("--config-dir", type=Path, default=Path("examples"))
    demo.add_argument("--delta", action="store_true", help="Envoy uses delta xDS")
    demo.set_defaults(run=_demo)
    return parser


def _add_kubernetes_flags(serve: argparse.ArgumentParser) -> None:
    """The API client, status write-back and its Lease (only with --kubernetes)."""
    serve.add_argument(
        "--kubeconfig", type=Path, default=None, help="with --kubernetes (default: in-cluster)"
    )
    serve.add_argument(
        "--no-status",
        dest="write_status",
        action="store_false",
        help="with --kubernetes: never write status back (no Lease either)",
    )
    serve.add_argument(
        "--lease-namespace",
        default=None,
        help="with --kubernetes: the status writers' Lease namespace "
        "(default: $POD_NAMESPACE, else the service account's, else default)",
    )
    serve.add_argument(
        "--lease-name",
        default="gateway-xds-status-writer",
        help="with --kubernetes: the Lease whose holder writes status",
    )
    serve.add_argument(
        "--lease-identity",
        default=None,
        help="with --kubernetes: this replica's holderIdentity "
        "(default: $POD_NAME or the host name, with a random suffix)",
    )


def _serve(args: argparse.Namespace) -> int:
    from xds_server import logs, runtime
    from xds_server.app import ControlPlane, ServeSettings, serve_until_signalled

    logs.configure(args.log_level)
    runtime.tune_gc()
    if args.kubernetes:
        problem = _kubernetes_problem(args.kubeconfig)
        if problem:
            print(f"xdsctl serve: {problem}", file=sys.stderr)
            return 2
    elif args.kubeconfig is not None:
        print("xdsctl serve: --kubeconfig needs --kubernetes", file=sys.stderr)
        return 2
    elif not args.config_dir.is_dir():
        print(f"xdsctl serve: {args.config_dir} is not a directory", file=sys.stderr)
        return 2
    settings = ServeSettings(
        config_dir=args.config_dir,
        kubernetes=args.kubernetes,
        kubeconfig=args.kubeconfig,
        write_status=args.write_status,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        lease_identity=args.lease_identity,
        xds_address=args.xds_address,
        admin_address=args.admin_address,
        listener_address=args.listener_address,
        privileged_port_offset=args.privileged_port_offset,
        debounce=args.debounce,
        max_delay=args.max_delay,
    )
    try:
        asyncio.run(serve_until_signalled(ControlPlane(settings)))
    except OSError as error:  # an address in use, most often
        print(f"xdsctl serve: {error}", file=sys.stderr)
        return 1
    return 0


def _kubernetes_problem(kubeconfig: Path | None) -> str:
    """Why no API client can be made from ``kubeconfig`` (or in-cluster), or ""."""
    from watcher.kubernetes import api_client_from

    try:
        api_client_from(kubeconfig).close()
    except Exception as error:  # ConfigException, a missing or malformed file
        where = kubeconfig or "the in-cluster service account"
        return f"cannot configure a Kubernetes client from {where}: {error}"
    return ""


def _bootstrap(args: argparse.Namespace) -> int:
    from xds_server.bootstrap import dump_yaml, render_bootstrap, split_host_port

    try:
        host, port = split_host_port(args.xds_address)
        bootstrap = render_bootstrap(
            args.gateway,
            host,
            port,
            admin_port=args.admin_port,
            admin_address=args.admin_address,
            node_id=args.node_id,
            delta=args.delta,
        )
    except ValueError as error:
        print(f"xdsctl bootstrap: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(dump_yaml(bootstrap))
    return 0


def _translate(args: argparse.Namespace) -> int:
    from translator import TranslateOptions, translate
    from translator.render import result_json
    from watcher.files import load_paths
    from xds_server import logs
    from xds_server.status import stamp

    logs.configure("warning")
    missing = [p for p in args.filename if not p.exists()]
    if missing:
        print(f"xdsctl translate: no such file: {missing[0]}", file=sys.stderr)
        return 2
    snapshot = load_paths(args.filename)
    options = TranslateOptions(args.listener_address, args.privileged_port_offset)
    result = translate(snapshot.bodies(), options)
    output = result_json(result)
    output["status"] = stamp(result.statuses, {}, datetime.now(UTC))
    if args.output == "yaml":
        sys.stdout.write(yaml.dump(output, Dumper=yaml.CSafeDumper, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(output, indent=2) + "\n")
    for error in snapshot.errors:
        print(f"xdsctl translate: {error.source}: {error.message}", file=sys.stderr)
    return 1 if snapshot.errors else 0


def _print_data(data: object, output: str) -> None:
    if output == "yaml":
        sys.stdout.write(yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _proxy_status(args: argparse.Namespace) -> int:
    from xds_server.admin_client import AdminError, get_json
    from xds_server.proxy_table import render

    try:
        answer = get_json(args.admin_address, "/api/clients")
    except AdminError as error:
        print(f"xdsctl proxy-status: {error}", file=sys.stderr)
        return 1
    if answer.status != 200 or not isinstance(answer.body, list):
        print(f"xdsctl proxy-status: the server answered {answer.status}", file=sys.stderr)
        return 1
    if args.output == "json":
        _print_data(answer.body, "json")
    else:
        sys.stdout.write(render(answer.body))
    return 0


def _config_dump(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from xds_server.admin_client import AdminError, get_json

    namespace, slash, name = args.gateway.partition("/")
    if not (namespace and slash and name) or "/" in name:
        print(
            f"xdsctl config-dump: --gateway must be NAMESPACE/NAME, got {args.gateway!r}",
            file=sys.stderr,
        )
        return 2
    try:
        answer = get_json(args.admin_address, "/api/config_dump?gateway=" + quote(args.gateway))
    except AdminError as error:
        print(f"xdsctl config-dump: {error}", file=sys.stderr)
        return 1
    if answer.status == 404:
        print(f"xdsctl config-dump: the server has no Gateway {args.gateway}", file=sys.stderr)
        return 1
    if answer.status != 200:
        reason = answer.body.get("error") if isinstance(answer.body, dict) else answer.body
        print(f"xdsctl config-dump: the server answered {answer.status}: {reason}", file=sys.stderr)
        return 1
    _print_data(answer.body, args.output)
    return 0


def _echo(args: argparse.Namespace) -> int:
    from xds_server.echo import main_echo

    return main_echo(args)


def _demo(args: argparse.Namespace) -> int:
    from xds_server.demo import run_demo

    return run_demo(args.config_dir, args.delta)


if __name__ == "__main__":
    sys.exit(main())
