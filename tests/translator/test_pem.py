"""translator.pem: which certificate/key pairs reach Envoy and which become conditions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.pki import openssl_available

from translator.pem import pair_problem

pytestmark = pytest.mark.skipif(not openssl_available(), reason="needs the openssl tool")

ENCRYPTED_KEY = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
KEYS = {
    "rsa": ["-newkey", "rsa:2048"],
    "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ed25519": ["-newkey", "ed25519"],
}


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Self-signed pairs of each key type, two RSA ones, and legacy (PKCS#1, SEC 1) keys."""
    directory = tmp_path_factory.mktemp("pem")
    for name, key in [*KEYS.items(), ("rsa2", KEYS["rsa"])]:
        _openssl(directory, "req", "-x509", *key, "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.crt", "-subj", f"/CN={name}", "-days", "1")  # fmt: skip
    _openssl(directory, "rsa", "-in", "rsa.key", "-traditional", "-out", "rsa-pkcs1.key")
    _openssl(directory, "ec", "-in", "ec.key", "-out", "ec-sec1.key")
    return {path.name: path.read_bytes() for path in directory.iterdir()}


@pytest.mark.parametrize(
    ("cert", "key"),
    [
        ("rsa.crt", "rsa.key"),
        ("rsa.crt", "rsa-pkcs1.key"),
        ("ec.crt", "ec.key"),
        ("ec.crt", "ec-sec1.key"),
        ("ed25519.crt", "ed25519.key"),
    ],
    ids=["rsa-pkcs8", "rsa-pkcs1", "ec-pkcs8", "ec-sec1", "ed25519"],
)
def test_matching_pairs_pass(pems: dict[str, bytes], cert: str, key: str) -> None:
    """A certificate with its own key passes, whatever the key type and PEM flavour."""
    assert pair_problem(pems[cert], pems[key]) is None


def test_a_chain_checks_every_certificate_and_matches_the_first(pems: dict[str, bytes]) -> None:
    """The leaf comes first; every other certificate of the chain must be well-formed too."""
    assert pair_problem(pems["rsa.crt"] + pems["ec.crt"], pems["rsa.key"]) is None
    assert pair_problem(pems["ec.crt"] + pems["rsa.crt"], pems["rsa.key"]) is not None


@pytest.mark.parametrize(
    ("cert", "key", "expected"),
    [
        ("rsa.crt", "rsa2.key", "does not match"),
        ("rsa.crt", "ec.key", "not a key of the certificate's type"),
        ("ec.crt", "ec-sec1.key", None),
    ],
    ids=["other-rsa-key", "ec-key-for-rsa", "control"],
)
def test_keys_of_other_certificates_fail(
    pems: dict[str, bytes], cert: str, key: str, expected: str | None
) -> None:
    """A key that is not the certificate's (same type or not) is refused with a reason."""
    problem = pair_problem(pems[cert], pems[key])
    assert (problem is None) if expected is None else (problem and expected in problem)


@pytest.mark.parametrize(
    ("cert", "key", "expected"),
    [
        (b"not pem", b"", "tls.crt holds no PEM block"),
        (b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n", b"", "base64"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"", "DER"),
        (None, ENCRYPTED_KEY, "unencrypted"),
        (None, b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n", "tls.key"),
    ],
    ids=["no-block", "bad-base64", "not-der", "encrypted-key", "empty-key"],
)  # fmt: skip
def test_malformed_pem_is_refused(
    pems: dict[str, bytes], cert: bytes | None, key: bytes, expected: str
) -> None:
    """Text that is not PEM, base64 or the DER of a certificate or key is refused, never raised."""
    problem = pair_problem(cert if cert is not None else pems["rsa.crt"], key)
    assert problem is not None
    assert expected in problem
