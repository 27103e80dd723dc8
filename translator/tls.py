"""TLS on Gateway listeners: the ``tls`` block, Secrets, and resolved certificateRefs.

Three callers, three steps:
- ``translator.parse`` calls ``parse_listener_tls`` for each listener (the Gateway CRD's TLS
  rules become ``Problem`` values: the listener is then not accepted) and ``parse_secret``
  for each core Secret;
- ``translator.translate`` calls ``resolve_certificates`` after the Gateway step: each HTTPS
  listener and TLS listener in Terminate mode gets its usable certificates, and a
  ResolvedRefs problem for the others (``RefNotPermitted`` without a ReferenceGrant,
  ``InvalidCertificateRef`` for a missing, mistyped or malformed Secret, checked by
  ``translator.pem``). A listener left without any certificate is not programmed.

Key material only ever travels inside ``TLSCertificate`` values; no message here quotes it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from translator import conditions as c
from translator import hostnames, kube, names, pem
from translator.conditions import Condition, Problem
from translator.gateways import GatewayState, ListenerState
from translator.ir import TLSCertificate
from translator.model import ListenerTLS, Meta, Secret, SecretRef, TLSMode, object_name

if TYPE_CHECKING:
    from translator.parse import Inventory

R_INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
OVERLAPPING_TLS_CONFIG = "OverlappingTLSConfig"
R_OVERLAPPING_HOSTNAMES = "OverlappingHostnames"
TLS_SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 (a Secret type, not a password)
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
TERMINATING = frozenset({"HTTPS", "TLS"})
_MODES: frozenset[str] = frozenset({"Terminate", "Passthrough"})


def parse_listener_tls(
    raw: Mapping[str, Any], protocol: str
) -> tuple[ListenerTLS | None, list[Problem]]:
    """A listener's ``tls`` block, with the CRD's rules for each protocol."""
    block = kube.field(raw, "tls")
    if protocol not in TERMINATING:
        if block is not None:
            return None, [_invalid(f"tls must not be specified for protocol {protocol}")]
        return None, []
    if not isinstance(block, Mapping):
        return None, [_invalid(f"tls is required for protocol {protocol}")]
    mode = kube.string(block, "mode", default="Terminate")
    if mode not in _MODES:
        return None, [_invalid(f"tls mode {mode!r} is not Terminate or Passthrough")]
    problems = []
    if protocol == "HTTPS" and mode != "Terminate":
        problems.append(_invalid("tls mode must be Terminate for protocol HTTPS"))
    refs = tuple(_secret_ref(kube.mapping(r)) for r in kube.items(block, "certificateRefs"))
    if mode == "Terminate" and not refs:
        problems.append(_invalid("tls.certificateRefs are required when tls mode is Terminate"))
    if kube.mapping(block.get("options")):
        problems.append(_invalid("tls.options are not supported"))
    return ListenerTLS(cast(TLSMode, mode), refs), problems


def _secret_ref(raw: Mapping[str, Any]) -> SecretRef:
    return SecretRef(
        group=kube.string(raw, "group"),
        kind=kube.string(raw, "kind", default="Secret"),
        namespace=kube.optional_string(raw, "namespace"),
        name=kube.string(raw, "name"),
    )


def _invalid(message: str) -> Problem:
    return Problem(c.R_UNSUPPORTED_VALUE, message)


def parse_secret(body: Mapping[str, Any], meta: Meta) -> Secret:
    """A Secret with its ``data`` decoded; ``stringData`` wins, as the API server merges it."""
    data: dict[str, bytes] = {}
    bad = []
    for key, value in kube.mapping(body.get("data")).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            bad.append(str(key))
    for key, value in kube.mapping(body.get("stringData")).items():
        data[str(key)] = str(value).encode("utf-8")
        if key in bad:
            bad.remove(key)
    return Secret(meta, kube.string(body, "type", default="Opaque"), data, tuple(bad))


def resolve_certificates(
    states: tuple[GatewayState, ...], inv: Inventory
) -> tuple[GatewayState, ...]:
    """``states`` with the certificates of every listener that terminates TLS, and the
    OverlappingTLSConfig condition on HTTPS and TLS listeners whose hostnames overlap."""
    return tuple(
        dataclasses.replace(
            state,
            listeners=_with_overlaps(tuple(_with_certificates(ls, inv) for ls in state.listeners)),
        )
        for state in states
    )


def _with_overlaps(listeners: tuple[ListenerState, ...]) -> tuple[ListenerState, ...]:
    """Listeners of one port whose hostnames overlap (one covers the other) are marked.

    A client reusing a connection for another hostname may then be served by the wrong
    listener (HTTP/2 connection coalescing): the Gateway API says to report it, and only
    when true. Listeners already conflicted (same hostname) or not accepted are left out.
    """
    candidates = [
        ls
        for ls in listeners
        if ls.listener.protocol in TERMINATING and ls.accepted is None and ls.conflict is None
    ]
    result = []
    for ls in listeners:
        others = [
            other.listener.name
            for other in candidates
            if other is not ls and ls in candidates and _overlap(ls, other)
        ]
        if not others:
            result.append(ls)
            continue
        message = f"hostname overlaps those of listener(s) {', '.join(others)} on the same port"
        condition = Condition(OVERLAPPING_TLS_CONFIG, True, R_OVERLAPPING_HOSTNAMES, message)
        result.append(dataclasses.replace(ls, extra=(*ls.extra, condition)))
    return tuple(result)


def _overlap(a: ListenerState, b: ListenerState) -> bool:
    if a.listener.port != b.listener.port:
        return False
    first, second = a.listener.hostname, b.listener.hostname
    return hostnames.covers(first, second or hostnames.ANY) or hostnames.covers(
        second, first or hostnames.ANY
    )


def terminates(ls: ListenerState) -> bool:
    tls = ls.listener.tls
    return ls.listener.protocol in TERMINATING and tls is not None and tls.mode == "Terminate"


def mode_of(ls: ListenerState) -> TLSMode | None:
    tls = ls.listener.tls
    return tls.mode if tls is not None and ls.listener.protocol in TERMINATING else None


def _with_certificates(ls: ListenerState, inv: Inventory) -> ListenerState:
    tls = ls.listener.tls
    if tls is None or not terminates(ls) or ls.accepted is not None:
        return ls
    certificates: list[TLSCertificate] = []
    problems: list[Problem] = []
    for ref in tls.certificate_refs:
        certificate, problem = _resolve(ref, ls.gateway_namespace, inv)
        if certificate is not None:
            certificates.append(certificate)
        if problem is not None:
            problems.append(problem)
    problem = c.join_problems(problems) if problems else None
    unique = tuple({cert.name: cert for cert in certificates}.values())
    return dataclasses.replace(ls, certificates=unique, certificate_problem=problem)


def _resolve(
    ref: SecretRef, gateway_namespace: str, inv: Inventory
) -> tuple[TLSCertificate | None, Problem | None]:
    namespace = ref.namespace or gateway_namespace
    target = f"{namespace}/{ref.name}"
    if ref.group not in {"", "core"} or ref.kind != "Secret":
        shown = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
        return None, _bad_ref(
            f"certificateRef to {shown} {target}: only core Secrets are supported"
        )
    if namespace != gateway_namespace and not secret_granted(
        inv, gateway_namespace, namespace, ref.name
    ):
        message = f"certificateRef to Secret {target} is not permitted by any ReferenceGrant"
        return None, Problem(c.R_REF_NOT_PERMITTED, message)
    secret = inv.secrets.get(object_name(namespace, ref.name))
    if secret is None:
        return None, _bad_ref(f"Secret {target} not found")
    invalid = secret_problem(secret)
    if invalid is not None:
        return None, _bad_ref(f"Secret {target}: {invalid}")
    name = names.secret(namespace, ref.name)
    return TLSCertificate(name, secret.data[CERT_KEY], secret.data[KEY_KEY]), None


def secret_problem(secret: Secret) -> str | None:
    """None when ``secret`` holds a usable certificate chain and key."""
    if secret.type != TLS_SECRET_TYPE:
        return f"type is {secret.type}, not {TLS_SECRET_TYPE}"
    if secret.problems:
        return f"data of {', '.join(secret.problems)} is not valid base64"
    missing = [key for key in (CERT_KEY, KEY_KEY) if not secret.data.get(key)]
    if missing:
        return f"{' and '.join(missing)} missing"
    return pem.pair_problem(secret.data[CERT_KEY], secret.data[KEY_KEY])


def secret_granted(inv: Inventory, gateway_namespace: str, namespace: str, name: str) -> bool:
    """True if a ReferenceGrant in ``namespace`` lets Gateways of ``gateway_namespace`` use it."""
    for grant in inv.grants.get(namespace, ()):
        source_ok = any(
            f.group == kube.GATEWAY_GROUP
            and f.kind == "Gateway"
            and f.namespace == gateway_namespace
            for f in grant.sources
        )
        target_ok = any(
            t.group in {"", "core"} and t.kind == "Secret" and t.name in {None, name}
            for t in grant.targets
        )
        if source_ok and target_ok:
            return True
    return False


def _bad_ref(message: str) -> Problem:
    return Problem(R_INVALID_CERTIFICATE_REF, message)


def certificates_of(listeners: tuple[ListenerState, ...]) -> tuple[TLSCertificate, ...]:
    """Every certificate the valid listeners use, once each, sorted by name."""
    found = {cert.name: cert for ls in listeners if ls.valid for cert in ls.certificates}
    return tuple(found[name] for name in sorted(found))
