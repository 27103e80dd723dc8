"""Test certificates: a private CA and server certificates it signs, made with `openssl`.

Who calls it: end-to-end tests of HTTPS and TLS listeners (tests/e2e/test_tls_l4.py).

    pki = Pki.create(tmp_path)                     # a CA valid for a day
    leaf = pki.issue("a.example.com")              # leaf.cert, leaf.key: PEM files
    ssl.create_default_context(cafile=pki.ca_cert)  # clients verify against the CA

Keys are EC P-256 (small and quick). What it must not do: depend on a Python X.509
library (``cryptography`` is not among our dependencies); it needs the `openssl`
command-line tool, and ``openssl_available`` says whether it is there.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Leaf", "Pki", "openssl", "openssl_available"]

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Leaf:
    """A server certificate (PEM file) for ``names`` and its key (PEM file)."""

    names: tuple[str, ...]
    cert: Path
    key: Path

    def secret_yaml(self, name: str, namespace: str = "default") -> str:
        """A kubernetes.io/tls Secret holding this certificate and key (stringData)."""
        cert = "".join(f"    {line}\n" for line in self.cert.read_text().splitlines())
        key = "".join(f"    {line}\n" for line in self.key.read_text().splitlines())
        return (
            f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            f"type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{cert}  tls.key: |\n{key}"
        )


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        openssl(
            "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=gateway-xds test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        return cls(directory)

    def issue(self, *names: str) -> Leaf:
        """A certificate for DNS ``names`` (the first is also its file name), signed by the CA."""
        stem = names[0].replace("*", "wildcard")
        alt_names = ",".join(f"DNS:{n}" for n in names)
        return self.sign(stem, f"/CN={names[0]}", f"subjectAltName={alt_names}", names=names)

    def sign(
        self,
        stem: str,
        subject: str,
        extra: str = "",
        *,
        usage: str = "serverAuth",
        names: tuple[str, ...] = (),
    ) -> Leaf:
        """A leaf ``<stem>.crt``/``<stem>.key`` for ``subject`` (e.g. ``/O=group/CN=user``)
        with extended key usage ``usage`` and ``extra`` extension lines, signed by the CA."""
        extensions = self.directory / f"{stem}.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\n"
            f"authorityKeyIdentifier=keyid\n{extra}\n"
        )
        openssl(
            "req", *_EC, "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subject,
            cwd=self.directory,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{stem}.crt", "-days", "1", "-extfile", extensions.name,
            cwd=self.directory,
        )  # fmt: skip
        return Leaf(names, self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
