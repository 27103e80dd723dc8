"""The binaries of the Kubernetes test suite, built from pinned Go modules and cached.

Who calls it: ``support.kube_apiserver`` (kube-apiserver, etcd, the Gateway API CRDs), the
deploy tests (kustomize), and ``tests/kube/build_binaries.sh`` (to build ahead of pytest).

    apiserver = ensure_binary(KUBE_APISERVER)      # builds once, then returns the cached path
    crds = gateway_api_crds("standard")             # the CRD YAML files of the pinned release

What it does: each tool has a build-only Go module under ``tests/kube/go/<dir>`` whose
go.mod and go.sum pin it (kube-apiserver needs ``replace`` lines for the staging modules of
``k8s.io/kubernetes``). ``go build`` runs there with ``-trimpath -mod=readonly``,
``-ldflags=-s -w`` and ``GOTOOLCHAIN=local``; the binary goes to
``<cache>/<name>-<version>-<go version>-<digest>/<name>``, where the digest covers go.mod,
go.sum and the link flags, so a changed pin builds anew and an unchanged one never does.
``build.json`` beside the binary records how long the build took. The cache is
``$GATEWAY_XDS_KUBE_CACHE``, else ``$XDG_CACHE_HOME/gateway-xds/kube``, else
``~/.cache/gateway-xds/kube``. ``$KUBE_BUILD_JOBS`` caps ``go build -p`` (default: Go's).

What it must not do: download a prebuilt binary or another Go toolchain (only Go modules
come from the module proxy), leave a half-written binary where a finished one is expected
(it builds into a temporary name, then renames), or let two processes build one tool at
once (a lock file per tool).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ETCD",
    "GATEWAY_API_MODULE",
    "GO_MODULES",
    "KUBE_APISERVER",
    "KUSTOMIZE",
    "TOOLS",
    "GoTool",
    "KubeBuildError",
    "cache_root",
    "check_disk",
    "ensure_binary",
    "gateway_api_crds",
    "go_available",
]

GO_MODULES = Path(__file__).resolve().parents[1] / "kube" / "go"

# The Gateway API release whose CRDs the suite installs: the newest v1.6 patch, matching
# translator.features.GATEWAY_API_VERSION.
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api@v1.6.3"

_BUILD_TIMEOUT = 3600.0


class KubeBuildError(RuntimeError):
    """Go is missing, or a download or build failed (the message has Go's output)."""


@dataclass(frozen=True, slots=True)
class GoTool:
    """One binary: the Go package to build, in which build-only module, at which version."""

    name: str
    module_dir: str
    package: str
    version: str
    ldflags: tuple[str, ...] = ()
    disk_mb: int = 1000  # free space a cold build needs (module + build caches + binary)

    @property
    def module(self) -> Path:
        return GO_MODULES / self.module_dir


def _kube_version_flags(version: str) -> tuple[str, ...]:
    # What the Kubernetes release build stamps; without it the server reports v0.0.0-master.
    major, minor = version.removeprefix("v").split(".")[:2]
    package = "k8s.io/component-base/version"
    return (
        f"-X {package}.gitVersion={version}",
        f"-X {package}.gitMajor={major}",
        f"-X {package}.gitMinor={minor}",
        f"-X {package}.gitTreeState=clean",
    )


KUBE_APISERVER = GoTool(
    name="kube-apiserver",
    module_dir="apiserver",
    package="k8s.io/kubernetes/cmd/kube-apiserver",
    version="v1.36.3",
    ldflags=_kube_version_flags("v1.36.3"),
    disk_mb=3500,  # measured: ~0.9 GB modules, ~2.4 GB build cache, 0.1 GB binary
)
ETCD = GoTool(name="etcd", module_dir="etcd", package="go.etcd.io/etcd/server/v3", version="v3.6.8")
KUSTOMIZE = GoTool(
    name="kustomize",
    module_dir="kustomize",
    package="sigs.k8s.io/kustomize/kustomize/v5",
    version="v5.8.2",
)
TOOLS = (ETCD, KUSTOMIZE, KUBE_APISERVER)


def go_available() -> bool:
    return shutil.which("go") is not None


def cache_root() -> Path:
    explicit = os.environ.get("GATEWAY_XDS_KUBE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gateway-xds" / "kube"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-trimpath -mod=readonly"
    return env


def _go(*args: str, cwd: Path, timeout: float = _BUILD_TIMEOUT) -> str:
    go = shutil.which("go")
    if go is None:
        raise KubeBuildError("the `go` command is not on PATH; install Go 1.26 or newer")
    result = subprocess.run(
        [go, *args],
        check=False,
        cwd=cwd,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise KubeBuildError(f"go {' '.join(args)} failed ({result.returncode}):\n{tail}")
    return result.stdout


def _ldflags(tool: GoTool) -> str:
    return " ".join(("-s", "-w", *tool.ldflags))


def _digest(tool: GoTool, go_version: str) -> str:
    hasher = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        hasher.update((tool.module / name).read_bytes())
    hasher.update(_ldflags(tool).encode())
    hasher.update(go_version.encode())
    return hasher.hexdigest()[:12]


def binary_path(tool: GoTool) -> Path:
    """Where the binary of ``tool`` is (or will be) cached for the current Go and pins."""
    go_version = _go("env", "GOVERSION", cwd=tool.module).strip()
    key = f"{tool.name}-{tool.version}-{go_version}-{_digest(tool, go_version)}"
    return cache_root() / key / tool.name


def ensure_binary(tool: GoTool) -> Path:
    """The cached binary of ``tool``, built first if it is not cached yet."""
    target = binary_path(tool)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if not target.is_file():
            _build(tool, target)
    return target


def _free_mb(path: Path) -> int:
    """Free megabytes on the file system that holds ``path`` (or its nearest parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free // 2**20


def check_disk(tool: GoTool, target: Path) -> None:
    """Fail at once, saying why, where a cold build would run out of disk half-way."""
    caches = {Path(_go("env", name, cwd=tool.module).strip()) for name in ("GOCACHE", "GOMODCACHE")}
    for place in sorted({*caches, target.parent}):
        free = _free_mb(place)
        if free < tool.disk_mb:
            raise KubeBuildError(
                f"building {tool.name} {tool.version} needs about {tool.disk_mb} MB free for Go's"
                f" module and build caches; {place} has {free} MB. Free disk, or point GOCACHE,"
                " GOMODCACHE and GATEWAY_XDS_KUBE_CACHE at a larger disk (tests/kube/README.md)."
            )


def _build(tool: GoTool, target: Path) -> None:
    check_disk(tool, target)
    started = time.monotonic()
    _go("mod", "download", cwd=tool.module)
    downloaded = time.monotonic()
    partial = target.with_name(f".{tool.name}.partial")
    jobs = os.environ.get("KUBE_BUILD_JOBS")
    parallel = ("-p", jobs) if jobs else ()
    _go("build", *parallel, f"-ldflags={_ldflags(tool)}", "-o", str(partial), tool.package,
        cwd=tool.module)  # fmt: skip
    built = time.monotonic()
    partial.rename(target)
    record = {
        "tool": tool.name,
        "version": tool.version,
        "package": tool.package,
        "download_seconds": round(downloaded - started, 1),
        "build_seconds": round(built - downloaded, 1),
        "bytes": target.stat().st_size,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target.parent / "build.json").write_text(json.dumps(record, indent=2) + "\n")


def gateway_api_crds(channel: str = "standard") -> list[Path]:
    """The CRD files of the pinned Gateway API release's ``config/crd/<channel>``.

    Only CustomResourceDefinitions: the release's ValidatingAdmissionPolicy file
    (``*_vap_*.yaml``, which guards CRD upgrades) is left out.
    """
    if channel not in ("standard", "experimental"):
        raise ValueError(f"unknown Gateway API channel {channel!r}")
    info = json.loads(_go("mod", "download", "-json", GATEWAY_API_MODULE, cwd=GO_MODULES))
    directory = Path(info["Dir"]) / "config" / "crd" / channel
    files = sorted(p for p in directory.glob("*.yaml") if "_vap_" not in p.name)
    files = [p for p in files if p.name != "kustomization.yaml"]
    if not files:
        raise KubeBuildError(f"no CRD files in {directory}")
    return files


def main(argv: list[str]) -> int:
    """Build (or find cached) every tool named in ``argv`` (all by default); print JSON."""
    wanted = set(argv) or {tool.name for tool in TOOLS}
    unknown = wanted - {tool.name for tool in TOOLS}
    if unknown:
        print(f"unknown tools: {sorted(unknown)}", file=sys.stderr)
        return 2
    report = []
    for tool in TOOLS:
        if tool.name in wanted:
            started = time.monotonic()
            path = ensure_binary(tool)
            build = path.parent / "build.json"
            report.append(
                {
                    "tool": tool.name,
                    "path": str(path),
                    "seconds_this_run": round(time.monotonic() - started, 1),
                    "first_build": json.loads(build.read_text()) if build.is_file() else None,
                }
            )
    report.append({"gateway_api_crds": [str(p) for p in gateway_api_crds()]})
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
