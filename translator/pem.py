"""Checks a TLS Secret's certificate chain and private key before any proxy sees them.

Called by ``translator.tls`` for every Secret a listener refers to. Envoy refuses a whole
SDS update (and keeps its listeners warming) when a key does not parse or does not match
its certificate, so a bad pair must become an ``InvalidCertificateRef`` condition instead.

There is no X.509 library among our dependencies (``cryptography`` is not installed), so
this is a structural check in pure Python: PEM blocks whose bodies are base64, DER that
parses as the ASN.1 shapes of a certificate and of a PKCS#1, SEC 1 or PKCS#8 private key,
and, for RSA and EC keys, that the key's public half is the certificate's public key. It
does not verify signatures, names or validity dates (Envoy serves expired certificates
too); other key types (Ed25519) are accepted when their algorithm matches the certificate's.
Each check returns None or a message, never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"})
_IGNORED_KEY_LABELS = frozenset({"EC PARAMETERS"})  # `openssl ecparam -genkey` writes it

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_VERSION_TAG = 0xA0  # [0] EXPLICIT: a certificate's version
_EC_PUBLIC_KEY_TAG = 0xA1  # [1] EXPLICIT: the public key inside an ECPrivateKey

_RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_EC_OID = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1 id-ecPublicKey


class _DERError(ValueError):
    """Bytes that are not the DER structure expected (caught here, never raised further)."""


@dataclass(frozen=True, slots=True)
class _Node:
    tag: int
    value: bytes


@dataclass(frozen=True, slots=True)
class _PublicKey:
    algorithm: bytes  # the OID's DER content
    rsa: tuple[bytes, bytes] | None  # modulus, exponent
    point: bytes | None  # an EC point, or the raw key of other algorithms


def pair_problem(chain_pem: bytes, key_pem: bytes) -> str | None:
    """None when ``chain_pem`` and ``key_pem`` are a usable certificate chain and key."""
    leaf, problem = _chain(chain_pem)
    if problem is not None or leaf is None:
        return problem
    key, problem = _key(key_pem)
    if problem is not None or key is None:
        return problem
    return _match_problem(leaf, key)


def _chain(pem: bytes) -> tuple[_PublicKey | None, str | None]:
    """The leaf's public key, once every certificate of the chain is well-formed."""
    certs, problem = _blocks(pem, "tls.crt")
    if problem is not None:
        return None, problem
    if any(label != "CERTIFICATE" for label, _ in certs):
        return None, "tls.crt must hold only PEM CERTIFICATE blocks"
    try:
        keys = [_certificate_key(der) for _, der in certs]
    except _DERError as error:
        return None, f"tls.crt: {error}"
    return keys[0], None


def _key(pem: bytes) -> tuple[_PublicKey | None, str | None]:
    blocks, problem = _blocks(pem, "tls.key")
    if problem is not None:
        return None, problem
    keys = [(label, der) for label, der in blocks if label not in _IGNORED_KEY_LABELS]
    if len(keys) != 1 or keys[0][0] not in _KEY_LABELS:
        labels = ", ".join(sorted(_KEY_LABELS))
        return None, f"tls.key must hold exactly one unencrypted PEM private key ({labels})"
    try:
        return _private_key(*keys[0]), None
    except _DERError as error:
        return None, f"tls.key: {error}"


def _blocks(pem: bytes, what: str) -> tuple[list[tuple[str, bytes]], str | None]:
    found = []
    for match in _BLOCK.finditer(pem):
        label = match.group(1).decode("ascii")
        body = match.group(2)
        if b":" in body:
            return [], f"{what}: the {label} block is encrypted (has PEM headers)"
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return [], f"{what}: the {label} block is not valid base64"
        found.append((label, der))
    if not found:
        return [], f"{what} holds no PEM block"
    return found, None


def _read(data: bytes, offset: int = 0) -> tuple[_Node, int]:
    """The DER element at ``offset`` and the offset after it."""
    if offset + 2 > len(data):
        raise _DERError("truncated DER (not a certificate or key)")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise _DERError("unexpected DER tag (not a certificate or key)")
    start = offset + 2
    length = first
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise _DERError("bad DER length (not a certificate or key)")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise _DERError("truncated DER (not a certificate or key)")
    return _Node(tag, data[start:end]), end


def _whole(data: bytes, tag: int, what: str) -> _Node:
    """``data`` is exactly one element with ``tag``."""
    node, end = _read(data)
    if node.tag != tag or end != len(data):
        raise _DERError(f"{what} is not well-formed DER")
    return node


def _children(node: _Node) -> list[_Node]:
    items, offset = [], 0
    while offset < len(node.value):
        child, offset = _read(node.value, offset)
        items.append(child)
    return items


def _expect(nodes: list[_Node], tags: tuple[int, ...], what: str) -> None:
    if len(nodes) < len(tags) or any(n.tag != t for n, t in zip(nodes, tags, strict=False)):
        raise _DERError(f"{what} does not have the structure of its ASN.1 type")


def _certificate_key(der: bytes) -> _PublicKey:
    """The subject public key of an X.509 certificate, checking the certificate's shape."""
    what = "a CERTIFICATE block"
    parts = _children(_whole(der, _SEQUENCE, what))
    _expect(parts, (_SEQUENCE, _SEQUENCE, _BIT_STRING), what)
    tbs = _children(parts[0])
    if tbs and tbs[0].tag == _VERSION_TAG:
        tbs = tbs[1:]
    # serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo
    _expect(tbs, (_INTEGER, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE, _SEQUENCE), what)
    return _spki(tbs[5], what)


def _spki(node: _Node, what: str) -> _PublicKey:
    algorithm, key = _pair(node, (_SEQUENCE, _BIT_STRING), what)
    oid = _children(algorithm)
    _expect(oid, (_OID,), what)
    bits = key.value[1:]  # after the count of unused bits
    if oid[0].value == _RSA_OID:
        return _PublicKey(_RSA_OID, _rsa_numbers(bits, what), None)
    return _PublicKey(oid[0].value, None, bits)


def _pair(node: _Node, tags: tuple[int, int], what: str) -> tuple[_Node, _Node]:
    items = _children(node)
    _expect(items, tags, what)
    return items[0], items[1]


def _rsa_numbers(der: bytes, what: str) -> tuple[bytes, bytes]:
    modulus, exponent = _pair(_whole(der, _SEQUENCE, what), (_INTEGER, _INTEGER), what)
    return modulus.value.lstrip(b"\0"), exponent.value.lstrip(b"\0")


def _private_key(label: str, der: bytes) -> _PublicKey:
    """The public half of a private key, as far as the key itself records it."""
    what = f"the {label} block"
    if label == "RSA PRIVATE KEY":
        return _rsa_private(der, what)
    if label == "EC PRIVATE KEY":
        return _ec_private(der, what)
    parts = _children(_whole(der, _SEQUENCE, what))
    _expect(parts, (_INTEGER, _SEQUENCE, _OCTET_STRING), what)
    oid = _children(parts[1])
    _expect(oid, (_OID,), what)
    if oid[0].value == _RSA_OID:
        return _rsa_private(parts[2].value, what)
    if oid[0].value == _EC_OID:
        return _ec_private(parts[2].value, what)
    return _PublicKey(oid[0].value, None, None)


def _rsa_private(der: bytes, what: str) -> _PublicKey:
    parts = _children(_whole(der, _SEQUENCE, what))
    _expect(parts, (_INTEGER,) * 9, what)  # version, n, e, d, p, q, dp, dq, qinv
    return _PublicKey(_RSA_OID, (parts[1].value.lstrip(b"\0"), parts[2].value.lstrip(b"\0")), None)


def _ec_private(der: bytes, what: str) -> _PublicKey:
    parts = _children(_whole(der, _SEQUENCE, what))
    _expect(parts, (_INTEGER, _OCTET_STRING), what)
    tagged = [p for p in parts[2:] if p.tag == _EC_PUBLIC_KEY_TAG]
    if not tagged:
        return _PublicKey(_EC_OID, None, None)  # no public key recorded: nothing to compare
    bits = _whole(tagged[0].value, _BIT_STRING, what)
    return _PublicKey(_EC_OID, None, bits.value[1:])


def _match_problem(cert: _PublicKey, key: _PublicKey) -> str | None:
    if cert.algorithm != key.algorithm:
        return "tls.key is not a key of the certificate's type"
    if cert.rsa is not None and key.rsa is not None and cert.rsa != key.rsa:
        return "tls.key does not match the certificate's public key"
    if cert.point is not None and key.point is not None and cert.point != key.point:
        return "tls.key does not match the certificate's public key"
    return None
