"""certificates.k8s.io/v1 CertificateSigningRequest: the strategy of the main resource and of its
``status`` and ``approval`` subresources, as ``pkg/registry/certificates/certificates/strategy.go``
and ``pkg/apis/certificates/validation`` of Kubernetes 1.32.

What is guaranteed:

* create: ``spec.username``, ``uid``, ``groups`` and ``extra`` are the requesting user's, whatever
  the client sent (the :func:`set_requestor` create step, installed by :func:`install`: Kubernetes'
  PrepareForCreate reads the user from the request context, which strategies here do not see; it
  is a registry step, not admission); ``status`` starts empty, so nobody creates a pre-approved
  request; a ``kube-apiserver-client`` request for ``O=system:masters`` is refused after
  validation (403, the CertificateSubjectRestriction admission plugin,
  :mod:`kybernetes.apiserver.admission.certsubjectrestriction`);
* PUT/PATCH of the object changes only metadata: spec and status come from the stored object;
* ``/status`` takes everything but spec; Approved and Denied conditions it cannot add, remove or
  change (the stored ones are kept when their count is unchanged, a change of count is refused);
* ``/approval`` takes only ``status.conditions``; ``status.certificate`` stays as stored;
* both subresources fill in ``lastUpdateTime`` and ``lastTransitionTime`` of conditions that lack
  them (the transition time of an unchanged type and status is kept);
* validation (one 422 with every cause, Kubernetes' paths and messages): ``spec.request`` is a PEM
  CERTIFICATE REQUEST with a valid signature, ``spec.usages`` non-empty, known and unique,
  ``spec.signerName`` well-formed (not the legacy name), ``spec.expirationSeconds`` >= 600,
  conditions typed, Approved/Denied/Failed only True and Approved/Denied not both,
  ``status.certificate`` only CERTIFICATE blocks; no update removes an Approved, Denied or Failed
  condition, only ``/status`` sets the certificate and only once.

Kubernetes tolerates some of these faults in an *update* when the stored object already has them
(data written by older versions); kybernetes never stored such objects, so those allowances are
kept only where they cost one line. The diff Kubernetes appends to "updates may not modify a
condition" comes from go-cmp, whose output is deliberately unstable; here it is the two lists.
"""

from __future__ import annotations

from typing import Any

from kybernetes import errors
from kybernetes.api import certificates as certs
from kybernetes.api import validation as v
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import path_segment_name_msgs
from kybernetes.apiserver.registry.request import RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.registry.strategy import Obj, Strategy

KIND = "CertificateSigningRequest"
_TRUE_ONLY = (certs.APPROVED, certs.DENIED, certs.FAILED)
_STATUSES = ("False", "True", "Unknown")


def decode_bytes(value: Any) -> bytes:
    """A ``[]byte`` field decoded as Go decodes it; a 400 with Go's decoding error otherwise."""
    try:
        return certs.decode_bytes(value)
    except certs.CSRError as e:
        raise errors.BadRequest(f'{KIND} in version "v1" cannot be handled as a {KIND}: {e}') from None


class GoBytes(bytes):
    """A ``[]byte`` shown as Go's ``%#v`` shows it in a field error: ``[]byte{0x2d, ...}``, or
    ``[]byte(nil)`` for a field that was not sent at all."""

    nil = False

    def __str__(self) -> str:
        if self.nil:
            return "[]byte(nil)"
        return "[]byte{" + ", ".join(f"0x{b:x}" for b in self) + "}"


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _conditions(obj: Obj) -> list[Obj]:
    conds = _status(obj).get("conditions")
    return [c if isinstance(c, dict) else {} for c in conds] if isinstance(conds, list) else []


def _of_type(obj: Obj, type_: str) -> list[Obj]:
    return [c for c in _conditions(obj) if c.get("type") == type_]


# --- validation ----------------------------------------------------------------------------------


def validate_signer_name(path: Path, name: Any) -> list[FieldError]:
    """``ValidateSignerName``: ``example.com/signer-name``, domain of DNS labels, path of subdomains."""
    if not name:
        return [v.required(path)]
    name = str(name)
    parts = name.split("/")
    if len(parts) != 2:
        return [v.invalid(path, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")]
    domain, rest = parts
    errs: list[FieldError] = []
    if len(domain) > v.DNS1123_SUBDOMAIN_MAX:
        errs.append(v.too_long(path, v.DNS1123_SUBDOMAIN_MAX))
    labels = domain.split(".")
    for label in labels:
        msgs = v.is_dns1123_label(label)
        if msgs:
            errs += [v.invalid(path, domain, f'validating label "{label}": {m}') for m in msgs]
            break
    if len(labels) < 2:
        errs.append(v.invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for label in rest.split("."):
        msgs = v.is_dns1123_subdomain(label)
        if msgs:
            errs += [v.invalid(path, rest, f'validating label "{label}": {m}') for m in msgs]
            break
    max_len = v.DNS1123_SUBDOMAIN_MAX + (v.DNS1123_SUBDOMAIN_MAX + v.DNS1123_LABEL_MAX + 1) + 1
    if len(name) > max_len:
        errs.append(v.too_long(path, max_len))
    return errs


def _validate_request(spec: Obj, path: Path) -> list[FieldError]:
    raw = decode_bytes(spec.get("request"))
    try:
        certs.check_signature(certs.parse_csr(raw))
    except certs.CSRError as e:
        shown = GoBytes(raw)
        shown.nil = spec.get("request") is None
        return [v.invalid(path, shown, str(e))]
    return []


def _validate_usages(usages: Any, path: Path, lenient: bool) -> list[FieldError]:
    usages = usages if isinstance(usages, list) else []
    if not usages:
        return [v.required(path)]
    errs: list[FieldError] = []
    if not lenient:
        errs += [v.not_supported(path.index(i), u, sorted(certs.USAGES))
                 for i, u in enumerate(usages) if u not in certs.USAGES]
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if u in seen:
                errs.append(v.duplicate(path.index(i), u))
            seen.add(u)
    return errs


def _validate_conditions(obj: Obj, old: Obj | None) -> list[FieldError]:
    path = Path("status", "conditions")
    tolerate_both = old is not None and bool(_of_type(old, certs.APPROVED)) and bool(_of_type(old, certs.DENIED))
    errs: list[FieldError] = []
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(_conditions(obj)):
        p, type_, status = path.index(i), str(c.get("type") or ""), c.get("status")
        if not type_:
            errs.append(v.required(p.child("type")))
        allowed = ("True",) if type_ in _TRUE_ONLY else _STATUSES
        if not status:
            errs.append(v.required(p.child("status")))
        elif status not in allowed:
            errs.append(v.not_supported(p.child("status"), status, allowed))
        if not tolerate_both and type_ in (certs.APPROVED, certs.DENIED):
            approved, denied = approved or type_ == certs.APPROVED, denied or type_ == certs.DENIED
            if approved and denied:
                errs.append(v.invalid(p.child("type"), type_, "Approved and Denied conditions are mutually exclusive"))
        if type_ in seen:
            errs.append(v.duplicate(p.child("type"), type_))
        seen.add(type_)
    return errs


def validate_csr(obj: Obj, old: Obj | None = None) -> list[FieldError]:
    """``validateCertificateSigningRequest`` (everything but metadata) of a new or updated object."""
    spec, sp = _spec(obj), Path("spec")
    lenient_usages = old is not None and any(u not in certs.USAGES for u in _spec(old).get("usages") or [])
    errs = _validate_request(spec, sp.child("request"))
    errs += _validate_usages(spec.get("usages"), sp.child("usages"), lenient_usages)
    signer = spec.get("signerName")
    if signer == certs.LEGACY_UNKNOWN and not (old is not None and _spec(old).get("signerName") == signer):
        errs.append(v.invalid(sp.child("signerName"), signer, "the legacy signerName is not allowed via this API version"))
    elif signer != certs.LEGACY_UNKNOWN:
        errs += validate_signer_name(sp.child("signerName"), signer)
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds < 600:
        errs.append(v.invalid(sp.child("expirationSeconds"), seconds,
                              "may not specify a duration less than 600 seconds (10 minutes)"))
    errs += _validate_conditions(obj, old)
    cert = _status(obj).get("certificate")
    unchanged = old is not None and cert == _status(old).get("certificate")
    if not unchanged:
        try:
            certs.parse_certificates(decode_bytes(cert))
        except certs.CSRError as e:
            errs.append(v.invalid(Path("status", "certificate"), "<certificate data>", str(e)))
    return errs


def validate_csr_update(new: Obj, old: Obj, *, approval: bool = False, certificate: bool = False) -> list[FieldError]:
    """``validateCertificateSigningRequestUpdate``: what each update path may change."""
    errs = validate_csr(new, old)
    path = Path("status", "conditions")
    for t in (certs.APPROVED, certs.DENIED, certs.FAILED):
        if len(_of_type(new, t)) < len(_of_type(old, t)):
            errs.append(v.forbidden(path, f'updates may not remove a condition of type "{t}"'))
    if not approval:
        for t in (certs.APPROVED, certs.DENIED):
            was, now = _of_type(old, t), _of_type(new, t)
            if len(now) > len(was):
                errs.append(v.forbidden(path, f'updates may not add a condition of type "{t}"'))
            elif len(now) == len(was) and now != was:
                errs.append(v.forbidden(path, f'updates may not modify a condition of type "{t}"\n{was} != {now}'))
    new_cert, old_cert = _status(new).get("certificate") or "", _status(old).get("certificate") or ""
    if decode_bytes(new_cert) != decode_bytes(old_cert):
        if not certificate:
            errs.append(v.forbidden(Path("status", "certificate"), "updates may not set certificate content"))
        elif old_cert:
            errs.append(v.forbidden(Path("status", "certificate"), "updates may not modify existing certificate content"))
    return errs


# --- the strategy --------------------------------------------------------------------------------


def _populate_condition_timestamps(new: Obj, old: Obj) -> None:
    now = now_rfc3339()
    for c in _conditions(new):
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            c["lastTransitionTime"] = next(
                (o["lastTransitionTime"] for o in _conditions(old)
                 if o.get("type") == c.get("type") and o.get("status") == c.get("status") and o.get("lastTransitionTime")),
                now)


def _keep_approval_conditions(new: Obj, old: Obj) -> None:
    """The stored Approved/Denied conditions replace the new ones, when their count is unchanged."""
    conds = _conditions(new)
    for t in (certs.APPROVED, certs.DENIED):
        new_at = [i for i, c in enumerate(conds) if c.get("type") == t]
        old_ones = _of_type(old, t)
        if len(new_at) == len(old_ones):
            for i, c in zip(new_at, old_ones, strict=True):
                conds[i] = c
    if conds:
        _status(new)["conditions"] = conds


class CertificateSigningRequestStrategy(Strategy):
    kind = KIND
    has_status = True
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)
    """Kubernetes does not care what requests are called (``ValidateCertificateRequestName``)."""
    update_subresources = ("approval",)
    field_selectors = {"spec.signerName": lambda obj: str(_spec(obj).get("signerName") or "")}

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for f in ("username", "uid", "groups", "extra"):
                spec.pop(f, None)
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        for f in ("spec", "status"):
            if f in old:
                new[f] = old[f]
            else:
                new.pop(f, None)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_csr(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        if "spec" in old:
            new["spec"] = old["spec"]
        if not isinstance(new.get("status"), dict):
            new["status"] = {}
        _keep_approval_conditions(new, old)
        _populate_condition_timestamps(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, certificate=True)

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """``/approval``: only the conditions are taken from the request."""
        _populate_condition_timestamps(new, old)
        conds = _status(new).get("conditions")
        status = dict(_status(old))
        if conds:
            status["conditions"] = conds
        else:
            status.pop("conditions", None)
        new["status"] = status
        if "spec" in old:
            new["spec"] = old["spec"]

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, approval=True)


async def set_requestor(registry: Registry, r: Any, obj: Obj, old: Obj | None, ctx: RequestContext) -> None:
    """Create hook: the requesting user becomes ``spec.username/uid/groups/extra``."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    user = ctx.user
    spec["username"] = user.name
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(vals) for k, vals in user.extra.items()}


def install(registry: Registry) -> None:
    """Register the create step that records who asked (:func:`set_requestor`)."""
    registry.create_hooks.setdefault(("certificates.k8s.io", KIND), []).append(set_requestor)


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("certificates.k8s.io", KIND): CertificateSigningRequestStrategy(),
}

__all__ = ["STRATEGIES", "decode_bytes", "install", "set_requestor", "validate_csr", "validate_csr_update",
           "validate_signer_name"]
