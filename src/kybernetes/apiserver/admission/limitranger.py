"""LimitRanger (Kubernetes' ``plugin/pkg/admission/limitranger``, on by default; CREATE and UPDATE
of pods and PersistentVolumeClaims).

Each LimitRange of the namespace is applied in turn, as kube-apiserver 1.32 does:

* **mutating** (pods, on create): every container and init container gets the LimitRange's
  ``Container`` ``default`` limits and ``defaultRequest`` requests it does not set itself, and the
  pod is annotated ``kubernetes.io/limit-ranger: LimitRanger plugin set: cpu, memory request for
  container c; ...`` (:func:`apply_defaults`);
* **validating**: ``Container`` min/max/maxLimitRequestRatio per container and init container,
  ``Pod`` min/max/maxLimitRequestRatio over the pod's effective requests and limits (app
  containers and sidecars add up, each plain init container runs alone), and
  ``PersistentVolumeClaim`` min/max over the claim's requests (:func:`pod_violations`,
  :func:`pvc_violations`). The first LimitRange with a violation refuses the object with 403
  ``pods "p" is forbidden: maximum cpu usage per Container is 1, but limit is 2`` (several
  violations of one LimitRange are listed in brackets, as ``utilerrors.NewAggregate`` prints them).

Pod updates are not checked (containers cannot be added or changed), nor subresources, nor
objects already being deleted. The LimitRanges are read from the watch cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from kybernetes.api import quantity as q
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import pod_resource_totals
from kybernetes.apiserver.admission.chain import CREATE, UPDATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.registry.store import Registry

NAME = "LimitRanger"

ANNOTATION = "kubernetes.io/limit-ranger"

_MAX_MILLI_VALUE = (2**63 - 1) // 1000
"""``resource.MaxMilliValue``: beyond it Kubernetes compares whole units, not thousandths."""


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(limit_range: Obj, limit_type: str) -> list[dict[str, Any]]:
    return [_d(i) for i in (_d(limit_range.get("spec")).get("limits") or []) if _d(i).get("type") == limit_type]


def _containers(pod: Obj) -> Iterable[tuple[str, dict[str, Any]]]:
    spec = _d(pod.get("spec"))
    for c in spec.get("containers") or []:
        yield "container", _d(c)
    for c in spec.get("initContainers") or []:
        yield "init container", _d(c)


# --- defaults (mutating) --------------------------------------------------------------------------


def apply_defaults(limit_range: Obj, pod: Obj) -> None:
    """``PodMutateLimitFunc``: fill in the LimitRange's container defaults the pod lacks, in place,
    and say which in the ``kubernetes.io/limit-ranger`` annotation (left alone if nothing was set)."""
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    for item in _items(limit_range, "Container"):
        requests.update(_d(item.get("defaultRequest")))
        limits.update(_d(item.get("default")))
    notes: list[str] = []
    for prefix, container in _containers(pod):
        resources = container.setdefault("resources", {})
        for field, defaults, word in (("requests", requests, "request"), ("limits", limits, "limit")):
            current = resources.get(field) if isinstance(resources.get(field), dict) else None
            missing = sorted(k for k in defaults if current is None or k not in current)
            if missing:
                resources[field] = {**(current or {}), **{k: defaults[k] for k in missing}}
                notes.append(f"{', '.join(missing)} {word} for {prefix} {container.get('name', '')}")
    if notes:
        meta = pod.setdefault("metadata", {})
        meta["annotations"] = {**_d(meta.get("annotations")),
                               ANNOTATION: "LimitRanger plugin set: " + "; ".join(notes)}


# --- checks (validating) --------------------------------------------------------------------------


def _comparable(*values: Fraction) -> list[int]:
    """``requestLimitEnforcedValues``: whole thousandths, or whole units when one would overflow."""
    units = [q.to_bytes(q.Quantity(x)) for x in values]
    if all(u <= _MAX_MILLI_VALUE for u in units):
        return [q.cpu_millis(q.Quantity(x)) for x in values]
    return units


def _value(resources: Mapping[str, Any], name: str) -> Fraction | None:
    raw = resources.get(name)
    return None if raw is None else q.parse_quantity(raw)


def _text(raw: Any) -> str:
    return q.canonical_resource(raw)


def min_violation(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                  limits: Mapping[str, Any]) -> str | None:
    """``minConstraint``: a request is required and neither it nor the limit may be below the minimum."""
    req, lim = _value(requests, name), _value(limits, name)
    least = f"minimum {name} usage per {kind} is {_text(enforced)}"
    if req is None:
        return f"{least}.  No request is specified"
    r, lv, e = _comparable(req, lim or Fraction(0), q.parse_quantity(enforced))
    if r < e:
        return f"{least}, but request is {_text(requests[name])}"
    if lim is not None and lv < e:
        return f"{least}, but limit is {_text(limits[name])}"
    return None


def max_violation(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                  limits: Mapping[str, Any]) -> str | None:
    """``maxConstraint``: a limit is required and neither it nor the request may exceed the maximum."""
    req, lim = _value(requests, name), _value(limits, name)
    most = f"maximum {name} usage per {kind} is {_text(enforced)}"
    if lim is None:
        return f"{most}.  No limit is specified"
    r, lv, e = _comparable(req or Fraction(0), lim, q.parse_quantity(enforced))
    if lv > e:
        return f"{most}, but limit is {_text(limits[name])}"
    if req is not None and r > e:
        return f"{most}, but request is {_text(requests[name])}"
    return None


def max_request_violation(kind: str, name: str, enforced: Any, requests: Mapping[str, Any]) -> str | None:
    """``maxRequestConstraint`` (claims have no limits): the request may not exceed the maximum."""
    req = _value(requests, name)
    most = f"maximum {name} usage per {kind} is {_text(enforced)}"
    if req is None:
        return f"{most}.  No request is specified"
    r, e = _comparable(req, q.parse_quantity(enforced))
    return f"{most}, but request is {_text(requests[name])}" if r > e else None


def ratio_violation(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                    limits: Mapping[str, Any]) -> str | None:
    """``limitRequestRatioConstraint``: limit / request may not exceed maxLimitRequestRatio."""
    req, lim = _value(requests, name), _value(limits, name)
    head = f"{name} max limit to request ratio per {kind} is {_text(enforced)}"
    r, lv, _e = _comparable(req or Fraction(0), lim or Fraction(0), q.parse_quantity(enforced))
    if req is None or r == 0:
        return f"{head}, but no request is specified or request is 0"
    if lim is None or lv == 0:
        return f"{head}, but no limit is specified or limit is 0"
    ratio = lv / r
    enforced_value = q.parse(enforced)
    if q.to_bytes(enforced_value) <= _MAX_MILLI_VALUE:
        exceeded = ratio * 1000 > q.cpu_millis(enforced_value)
    else:
        exceeded = ratio > q.to_bytes(enforced_value)
    return f"{head}, but provided ratio is {ratio:f}" if exceeded else None


def _check(kind: str, item: Mapping[str, Any], requests: Mapping[str, Any], limits: Mapping[str, Any]) -> list[str]:
    found = [min_violation(kind, k, v, requests, limits) for k, v in _d(item.get("min")).items()]
    found += [max_violation(kind, k, v, requests, limits) for k, v in _d(item.get("max")).items()]
    found += [ratio_violation(kind, k, v, requests, limits) for k, v in _d(item.get("maxLimitRequestRatio")).items()]
    return [f for f in found if f is not None]


def _pod_totals(pod: Obj, field: str) -> dict[str, q.Quantity]:
    """The pod's effective requests or limits (spec only, no overhead); a sum keeps the first
    term's format, as ``Quantity.Add`` does (two ``512Mi`` make ``1Gi``)."""
    return pod_resource_totals(
        _d(pod.get("spec")),
        lambda c: {k: q.parse(v) for k, v in _d(_d(c.get("resources")).get(field)).items()},
        lambda a, b: q.Quantity(a.value + b.value, a.format), lambda a, b: a.value > b.value, {})


def pod_violations(limit_range: Obj, pod: Obj) -> list[str]:
    """``PodValidateLimitFunc``: what the LimitRange's Container and Pod items find wrong with the pod."""
    found: list[str] = []
    for item in _d(limit_range.get("spec")).get("limits") or []:
        item = _d(item)
        if item.get("type") == "Container":
            for _prefix, c in _containers(pod):
                res = _d(c.get("resources"))
                found += _check("Container", item, _d(res.get("requests")), _d(res.get("limits")))
        elif item.get("type") == "Pod":
            found += _check("Pod", item, _pod_totals(pod, "requests"), _pod_totals(pod, "limits"))
    return found


def pvc_violations(limit_range: Obj, pvc: Obj) -> list[str]:
    """``PersistentVolumeClaimValidateLimitFunc``: min/max of the claim's requested storage."""
    requests = _d(_d(_d(pvc.get("spec")).get("resources")).get("requests"))
    found: list[str | None] = []
    for item in _items(limit_range, "PersistentVolumeClaim"):
        found += [min_violation("PersistentVolumeClaim", k, v, requests, {}) for k, v in _d(item.get("min")).items()]
        found += [max_request_violation("PersistentVolumeClaim", k, v, requests)
                  for k, v in _d(item.get("max")).items()]
    return [f for f in found if f is not None]


def aggregate(messages: list[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: one message alone, several in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --- the plugin -----------------------------------------------------------------------------------


class LimitRanger(Handler):
    operations = frozenset({CREATE, UPDATE})
    resources = frozenset({("", "pods"), ("", "persistentvolumeclaims")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        limit_ranges = registry.catalogue.get("", "v1", "limitranges")
        assert limit_ranges is not None
        self.limit_ranges = limit_ranges

    def _supports(self, attrs: Attributes) -> bool:
        """``SupportsAttributes`` plus the skip of objects being deleted."""
        if attrs.subresource or attrs.object is None or not attrs.namespace:
            return False
        if attrs.resource == "pods" and attrs.operation == UPDATE:
            return False
        old_meta = _d(_d(attrs.old_object).get("metadata"))
        return not old_meta.get("deletionTimestamp")

    async def _ranges(self, namespace: str) -> list[Obj]:
        cache = await self.registry.cacher.cache_for(self.limit_ranges.key_prefix)
        return [obj for _key, obj in cache.list(self.limit_ranges.namespace_prefix(namespace))]

    async def admit(self, attrs: Attributes) -> None:
        if attrs.resource != "pods" or not self._supports(attrs):
            return
        assert attrs.object is not None
        for limit_range in await self._ranges(attrs.namespace):
            apply_defaults(limit_range, attrs.object)

    async def validate(self, attrs: Attributes) -> None:
        if not self._supports(attrs):
            return
        assert attrs.object is not None
        check = pod_violations if attrs.resource == "pods" else pvc_violations
        for limit_range in await self._ranges(attrs.namespace):
            found = check(limit_range, attrs.object)
            if found:
                raise forbidden(attrs, aggregate(found))


def new(init: PluginInit) -> LimitRanger:
    return LimitRanger(init.registry)
