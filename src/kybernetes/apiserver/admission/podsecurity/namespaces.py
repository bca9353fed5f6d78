"""What PodSecurity says about a namespace's labels, beyond refusing bad ones
(``pod-security-admission/admission/admission.go``: ``EvaluatePodsInNamespace``,
``exemptNamespaceWarning``).

When a namespace's enforce level becomes stricter, the pods already in it are checked against
the new level and the violations come back as warnings (the label change itself goes through):
first ``existing pods in namespace "ns" violate the new PodSecurity enforce level
"restricted:latest"``, then one warning per distinct set of reasons, naming the first pod by
name and how many others share it (``web-1 (and 2 other pods): allowPrivilegeEscalation !=
false, ...``), sorted. At most ``max_pods`` pods are checked, one per controller before a
controller's other pods, and checking stops at the deadline; then a warning says how many of
how many were checked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.podsecurity.evaluator import evaluate
from kybernetes.apiserver.admission.podsecurity.levels import (
    AUDIT_LEVEL_LABEL,
    AUDIT_VERSION_LABEL,
    ENFORCE_LEVEL_LABEL,
    ENFORCE_VERSION_LABEL,
    PRIVILEGED,
    WARN_LEVEL_LABEL,
    WARN_VERSION_LABEL,
    LevelVersion,
    Policy,
)
from kybernetes.apiserver.admission.podsecurity.policy import as_dict


def _controller_uid(pod: Obj) -> str | None:
    for ref in as_dict(pod.get("metadata")).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return str(ref.get("uid") or "")
    return None


def prioritize_pods(pods: Iterable[Obj], exempt_runtime_classes: frozenset[str]) -> list[Obj]:
    """``prioritizePods``: pods of exempt runtime classes dropped; one pod per controller (and
    every pod without one) first, the controllers' other pods after."""
    first: list[Obj] = []
    later: list[Obj] = []
    seen: set[str] = set()
    for pod in pods:
        runtime_class = as_dict(pod.get("spec")).get("runtimeClassName")
        if runtime_class and runtime_class in exempt_runtime_classes:
            continue
        uid = _controller_uid(pod)
        if uid is not None and uid in seen:
            later.append(pod)
            continue
        first.append(pod)
        if uid is not None:
            seen.add(uid)
    return first + later


def _decorate(reasons: str, first_pod: str, count: int) -> str:
    if count == 1:
        return f"{first_pod}: {reasons}"
    if count == 2:
        return f"{first_pod} (and 1 other pod): {reasons}"
    return f"{first_pod} (and {count - 1} other pods): {reasons}"


def evaluate_pods_in_namespace(namespace: str, enforce: LevelVersion, pods: Iterable[Obj],
                               exempt_runtime_classes: frozenset[str], max_pods: int, deadline: float) -> list[str]:
    """The warnings for a namespace whose enforce level becomes ``enforce`` (``deadline`` is a
    :func:`time.monotonic` time)."""
    ordered = prioritize_pods(pods, exempt_runtime_classes)
    total = len(ordered)
    ordered = ordered[:max_pods]
    checked = len(ordered)
    by_reasons: dict[str, tuple[str, int]] = {}
    for i, pod in enumerate(ordered):
        result = evaluate(enforce, as_dict(pod.get("metadata")), as_dict(pod.get("spec")))
        if not result.allowed:
            reasons = result.forbidden_reason()
            name = str(as_dict(pod.get("metadata")).get("name") or "")
            first, count = by_reasons.get(reasons, (name, 0))
            by_reasons[reasons] = (min(first, name), count + 1)
        if time.monotonic() >= deadline:
            checked = i + 1
            break
    warnings = []
    if checked < total:
        warnings.append(f"new PodSecurity enforce level only checked against the first {checked} of {total} "
                        "existing pods")
    if by_reasons:
        warnings.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
                        f'"{enforce}"')
    return warnings + sorted(_decorate(r, first, count) for r, (first, count) in by_reasons.items())


def exempt_namespace_warning(namespace: str, policy: Policy, labels: dict[str, str], defaults: Policy) -> str:
    """``exemptNamespaceWarning``: for an exempt namespace labelled with a policy, that the policy
    will be ignored ("" if it is privileged or the default anyway)."""
    if policy.fully_privileged() or policy.equivalent(defaults):
        return ""
    parts = []
    for mode, lv, level_label, version_label in (
            ("enforce", policy.enforce, ENFORCE_LEVEL_LABEL, ENFORCE_VERSION_LABEL),
            ("audit", policy.audit, AUDIT_LEVEL_LABEL, AUDIT_VERSION_LABEL),
            ("warn", policy.warn, WARN_LEVEL_LABEL, WARN_VERSION_LABEL)):
        if lv.level != PRIVILEGED and (level_label in labels or version_label in labels):
            parts.append(f"{mode}={lv}")
    return (f'namespace "{namespace}" is exempt from Pod Security, and the policy ({", ".join(parts)}) '
            "will be ignored")
