"""``apiregistration.k8s.io/v1``: APIService, the aggregation layer's registration of an API.

Defaults and validation are kube-aggregator 1.32's (``pkg/apis/apiregistration/v1/defaults.go``,
``pkg/apis/apiregistration/validation``), with its wording:

* the name must be a path segment and exactly ``spec.version + "." + spec.group`` (``v1.`` for the
  legacy core group, the only group-less one); the group is a DNS subdomain, the version a DNS-1035
  label;
* ``groupPriorityMinimum`` is 1..20000 and ``versionPriority`` 1..1000;
* a local APIService (no ``service``) may have neither ``caBundle`` nor ``insecureSkipTLSVerify``;
  a service reference needs namespace and name, its port defaults to 443, and
  ``insecureSkipTLSVerify`` may not be combined with a ``caBundle``;
* ``status`` is written only through ``/status`` (the availability controllers), whose condition
  statuses must be True, False or Unknown. The strategy never sets ``metadata.generation``.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, path_segment_name_msgs
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

GROUP = "apiregistration.k8s.io"
CONDITION_STATUSES = ("True", "False", "Unknown")
MAX_GROUP_PRIORITY = 20000
MAX_VERSION_PRIORITY = 1000


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def _validate_name(obj: Obj) -> list[FieldError]:
    spec = as_dict(obj.get("spec"))
    required = f"{spec.get('version') or ''}.{spec.get('group') or ''}"
    name = str(as_dict(obj.get("metadata")).get("name") or "")
    if name and not path_segment_name_msgs(name) and name != required:
        return [v.invalid(Path("metadata", "name"), name, f'must be `spec.version+"."+spec.group`: "{required}"')]
    return []


def _validate_tls(spec: Obj, service: Obj | None) -> list[FieldError]:
    ca = spec.get("caBundle") or ""
    skip = bool(spec.get("insecureSkipTLSVerify"))
    path = Path("spec")
    if service is None:
        errs = []
        if ca:
            errs.append(v.invalid(path.child("caBundle"), f"{_bundle_len(ca)} bytes",
                                  "local APIServices may not have a caBundle"))
        if skip:
            errs.append(v.invalid(path.child("insecureSkipTLSVerify"), skip,
                                  "local APIServices may not have insecureSkipTLSVerify"))
        return errs
    if skip and ca:
        return [v.invalid(path.child("insecureSkipTLSVerify"), skip, "may not be true if caBundle is present")]
    return []


def _bundle_len(ca: Any) -> int:
    """The length of ``caBundle`` as Go's ``[]byte`` (the JSON holds it base64-encoded)."""
    import base64
    import binascii

    try:
        return len(base64.b64decode(str(ca), validate=True))
    except (binascii.Error, ValueError):
        return len(str(ca))


def validate_apiservice(obj: Obj) -> list[FieldError]:
    """``ValidateAPIService`` but for object meta (the generic store validates that)."""
    spec = as_dict(obj.get("spec"))
    group, version = str(spec.get("group") or ""), str(spec.get("version") or "")
    errs = _validate_name(obj)
    path = Path("spec")
    if not group and version != "v1":
        errs.append(v.required(path.child("group"), "only v1 may have an empty group and it better be legacy kube"))
    if group:
        errs += [v.invalid(path.child("group"), group, m) for m in v.is_dns1123_subdomain(group)]
    errs += [v.invalid(path.child("version"), version, m) for m in v.is_dns1035_label(version)]
    gpm, vp = _int(spec.get("groupPriorityMinimum")), _int(spec.get("versionPriority"))
    if not 0 < gpm <= MAX_GROUP_PRIORITY:
        errs.append(v.invalid(path.child("groupPriorityMinimum"), gpm, "must be positive and less than 20000"))
    if not 0 < vp <= MAX_VERSION_PRIORITY:
        errs.append(v.invalid(path.child("versionPriority"), vp, "must be positive and less than 1000"))
    service = spec.get("service")
    if not isinstance(service, dict):
        return errs + _validate_tls(spec, None)
    if not service.get("namespace"):
        errs.append(v.required(path.child("service", "namespace")))
    if not service.get("name"):
        errs.append(v.required(path.child("service", "name")))
    return errs + _validate_tls(spec, service)


def validate_status(obj: Obj) -> list[FieldError]:
    """``ValidateAPIServiceStatus``."""
    errs = []
    at = Path("status", "conditions")
    for i, cond in enumerate(as_list(as_dict(obj.get("status")).get("conditions"))):
        status = as_dict(cond).get("status")
        if status not in CONDITION_STATUSES:
            errs.append(v.not_supported(at.index(i).child("status"), status, CONDITION_STATUSES))
    return errs


class APIServiceStrategy(ClusterScoped):
    kind = "APIService"
    has_status = True
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)

    def default(self, obj: Obj) -> None:
        service = as_dict(obj.get("spec")).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_apiservice(obj)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_status(new)


def available_condition(obj: Obj) -> Obj | None:
    """The APIService's ``Available`` condition, if it has one."""
    for cond in as_list(as_dict(obj.get("status")).get("conditions")):
        if isinstance(cond, dict) and cond.get("type") == "Available":
            return cond
    return None


STRATEGIES: dict[tuple[str, str], Strategy] = {
    (GROUP, "APIService"): APIServiceStrategy(),
}
