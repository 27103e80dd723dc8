"""A real Kubernetes API server on loopback for tests: etcd + kube-apiserver + Gateway API CRDs.

Who calls it: the ``kube`` test suite (tests/kube/conftest.py) and anything that must talk
to a real API server through the official ``kubernetes`` client.

    with KubeApiServer(tmp_path) as api:                 # etcd, kube-apiserver, /readyz
        api.install_gateway_api_crds()                   # config/crd/standard, Established
        client = api.client()                            # kubernetes.client.ApiClient (admin)
        api.kubeconfig                                   # a kubeconfig file for the admin

What it does: builds or finds the cached binaries (support.kube_binaries), makes with
`openssl` a CA, a serving certificate for 127.0.0.1 and localhost, an admin client
certificate (group ``system:masters``) and a service-account signing key, picks free
loopback ports, starts etcd (in-memory-fast: ``--unsafe-no-fsync``) and kube-apiserver
with ``--authorization-mode=RBAC``, a static token file (``TOKEN_USER`` with ``TOKEN``,
in no group, so RBAC decides what it may do), and waits for ``/readyz`` with a deadline.
Logs go to ``etcd.log`` and ``kube-apiserver.log`` in the directory; a failure to start
raises KubeApiServerError with their tails.

What it must not do: listen anywhere but 127.0.0.1, leave a process running (``stop``
terminates, waits, then kills, apiserver before etcd), or wait by sleeping a fixed time.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .http import free_port
from .kube_binaries import ETCD, KUBE_APISERVER, ensure_binary, gateway_api_crds
from .pki import Pki, openssl
from .wait import WaitTimeoutError, wait_until

__all__ = ["TOKEN", "TOKEN_USER", "KubeApiServer", "KubeApiServerError"]

TOKEN_USER = "gateway-xds-test"  # noqa: S105 - a user name, not a secret
TOKEN = "gateway-xds-test-token"  # noqa: S105 - a throwaway credential of a loopback test server

_LOG_TAIL_LINES = 30


class KubeApiServerError(RuntimeError):
    """etcd or kube-apiserver failed to start or exited early (the message has log tails)."""


def _make_pki(directory: Path) -> None:
    """ca.crt/key, serving.crt/key, admin.crt/key, sa.key/sa.pub in ``directory``."""
    pki = Pki.create(directory)
    pki.sign("serving", "/CN=kube-apiserver",
             "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc")  # fmt: skip
    pki.sign("admin", "/O=system:masters/CN=admin", usage="clientAuth")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "sa.key", cwd=directory)  # fmt: skip
    openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def _tail(path: Path) -> str:
    if not path.is_file():
        return f"({path.name}: no log)"
    lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return f"--- {path.name} ---\n" + "\n".join(lines)


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON to etcd's HTTP gateway (plain HTTP on loopback)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


class KubeApiServer:
    """One etcd and one kube-apiserver, on loopback, in ``directory``."""

    def __init__(
        self, directory: Path, *, ready_timeout: float = 120.0, extra_args: Sequence[str] = ()
    ) -> None:
        """``extra_args`` go to kube-apiserver after ours (a later flag wins), e.g.
        ``--etcd-compaction-interval=...`` for a test of 410 Gone."""
        self.directory = directory
        self.extra_args = tuple(extra_args)
        self.ready_timeout = ready_timeout
        self.pki = directory / "pki"
        self.kubeconfig = directory / "kubeconfig.yaml"
        self.port = 0
        self.etcd_port = 0
        self.etcd_data = directory / "etcd-data"
        self.start_seconds = 0.0
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> KubeApiServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd and kube-apiserver (keeping etcd's data), then wait for /readyz."""
        apiserver, etcd = ensure_binary(KUBE_APISERVER), ensure_binary(ETCD)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.pki / "ca.crt").is_file():
            _make_pki(self.pki)
            (self.pki / "tokens.csv").write_text(f"{TOKEN},{TOKEN_USER},{TOKEN_USER}\n")
        started = time.monotonic()
        self.start_etcd(etcd)
        self.start_apiserver(apiserver)
        self.start_seconds = time.monotonic() - started
        self._write_kubeconfig()

    def start_etcd(self, binary: Path) -> None:
        self.etcd_port = self.etcd_port or free_port()
        peer = free_port()
        client_url, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        args = [
            str(binary), "--name=test", f"--data-dir={self.etcd_data}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        ]  # fmt: skip
        self._etcd = self._spawn(args, "etcd.log")
        self._wait(lambda: self._http_ok(f"{client_url}/health"), self._etcd, "etcd /health")

    def start_apiserver(self, binary: Path) -> None:
        self.port = self.port or free_port()
        pki = self.pki
        args = [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}", f"--cert-dir={self.directory / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--endpoint-reconciler-type=none",  # no Endpoints for a loopback "kubernetes" Service
            "--profiling=false",
            *self.extra_args,
        ]  # fmt: skip
        self._apiserver = self._spawn(args, "kube-apiserver.log")
        self._wait(self._ready, self._apiserver, "kube-apiserver /readyz")

    def stop_apiserver(self) -> None:
        self._apiserver = self._terminate(self._apiserver)

    def stop(self) -> None:
        self.stop_apiserver()
        self._etcd = self._terminate(self._etcd)

    def compact_etcd(self) -> int:
        """Compact etcd's history to its current revision, as the API server does every
        ``--etcd-compaction-interval``: a watch from an older resourceVersion that reaches
        etcd (no watch cache in between) then gets 410 Gone. Returns the revision."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        every_key = {"key": base64.b64encode(b"\0").decode(), "keys_only": True, "limit": 1}
        revision = int(_post_json(f"{base}/range", every_key)["header"]["revision"])
        _post_json(f"{base}/compaction", {"revision": str(revision), "physical": True})
        return revision

    def kubeconfig_via(self, port: int, path: Path) -> Path:
        """A copy of the admin kubeconfig whose server is ``https://127.0.0.1:<port>``
        (a relay in front of the API server; the serving certificate covers 127.0.0.1)."""
        document = yaml.safe_load(self.kubeconfig.read_text())
        document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as the admin (system:masters)."""
        from kubernetes import config

        new_client: Any = config.new_client_from_config  # untyped in the client library
        return new_client(config_file=str(self.kubeconfig))

    def token_client(self) -> Any:
        """An ApiClient authenticated as ``TOKEN_USER``: only what RBAC grants it."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.pki / "ca.crt")
        configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
        return client.ApiClient(configuration)

    def install_gateway_api_crds(self, channel: str = "standard", timeout: float = 60.0) -> None:
        """Create the pinned Gateway API CRDs and wait until each is Established."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(self.client())
        names = []
        for path in gateway_api_crds(channel):
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    api.create_custom_resource_definition(body=document)
                    names.append(document["metadata"]["name"])

        def established() -> bool:
            for name in names:
                status = api.read_custom_resource_definition(name).status
                conditions = (status.conditions if status else None) or []
                if not any(c.type == "Established" and c.status == "True" for c in conditions):
                    return False
            return True

        wait_until(established, timeout=timeout, interval=0.1, message="CRDs Established")

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.directory / log_name).open("ab") as log:
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory, start_new_session=True,
            )  # fmt: skip

    def _wait(self, ready: Any, process: subprocess.Popen[bytes], what: str) -> None:
        def check() -> bool:
            if process.poll() is not None:
                raise KubeApiServerError(f"{what}: exited with {process.returncode}")
            return bool(ready())

        try:
            wait_until(check, timeout=self.ready_timeout, interval=0.05, max_interval=0.5,
                       ignore=(OSError,), message=what)  # fmt: skip
        except (KubeApiServerError, WaitTimeoutError) as exc:
            logs = "\n".join(_tail(self.directory / n) for n in ("etcd.log", "kube-apiserver.log"))
            raise KubeApiServerError(f"{exc}\n{logs}") from exc

    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def _ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2, context=context) as r:
                return bool(r.status == 200)
        except urllib.error.HTTPError:
            return False  # 500 while post-start hooks run

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": self.url, "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(pki / "admin.crt"),
                "client-key": str(pki / "admin.key")}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }  # fmt: skip
        self.kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False))

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
