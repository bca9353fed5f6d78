"""The restricted checks of Kubernetes 1.32 (``pod-security-admission/policy/check_*.go``).

Restricted is baseline plus these; three of them replace a baseline check from their version on
(restrictedVolumes replaces hostPathVolumes, capabilities_restricted replaces
capabilities_baseline, seccompProfile_restricted replaces seccompProfile_baseline). From 1.25 on,
the Linux-only rules (allowPrivilegeEscalation, capabilities, seccomp) pass a pod whose
``spec.os.name`` is ``windows``.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.podsecurity.checks_baseline import (
    CAPABILITIES_BASELINE_ID,
    HOST_PATH_VOLUMES_ID,
    SECCOMP_BASELINE_ID,
    seccomp_allowed_type,
    seccomp_bad_setters,
)
from kybernetes.apiserver.admission.podsecurity.levels import RESTRICTED, v1
from kybernetes.apiserver.admission.podsecurity.policy import (
    ALLOWED,
    Check,
    CheckResult,
    VersionedCheck,
    as_dict,
    containers,
    containers_phrase,
    is_windows,
    join_quote,
    name_of,
    pluralize,
    security_context,
)


def allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> CheckResult:
    """allowPrivilegeEscalation: every container sets it to false."""
    bad = [name_of(c) for c in containers(spec) if (security_context(c) or {}).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return ALLOWED
    return CheckResult(False, "allowPrivilegeEscalation != false",
                       f"{containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false")


def allow_privilege_escalation_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return ALLOWED if is_windows(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: Obj, spec: Obj) -> CheckResult:
    """capabilities_restricted: every container drops ALL and adds at most NET_BIND_SERVICE."""
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for c in containers(spec):
        caps = (security_context(c) or {}).get("capabilities")
        if not isinstance(caps, dict):
            missing_drop.append(name_of(c))
            continue
        if "ALL" not in (caps.get("drop") or ()):
            missing_drop.append(name_of(c))
        extra = [str(cap) for cap in caps.get("add") or () if cap != "NET_BIND_SERVICE"]
        if extra:
            adding.append(name_of(c))
            forbidden.update(extra)
    details = [f'{containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'] \
        if missing_drop else []
    if adding:
        details.append(f"{containers_phrase(adding)} must not include {join_quote(sorted(forbidden))} in "
                       "securityContext.capabilities.add")
    return CheckResult(False, "unrestricted capabilities", "; ".join(details)) if details else ALLOWED


def capabilities_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return ALLOWED if is_windows(spec) else capabilities_restricted_1_22(meta, spec)


ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                          "projected", "secret")
"""The volume sources a restricted pod may use."""

NAMED_VOLUME_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                        "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                        "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                        "scaleIO", "storageos")
"""The other sources Kubernetes names in the message, in the order it tests them (else ``unknown``)."""


def restricted_volumes_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """restrictedVolumes: only the volume types of :data:`ALLOWED_VOLUME_SOURCES`."""
    bad: list[str] = []
    types: set[str] = set()
    for volume in spec.get("volumes") or ():
        if not isinstance(volume, dict) or any(volume.get(s) is not None for s in ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(str(volume.get("name") or ""))
        types.add(next((s for s in NAMED_VOLUME_SOURCES if volume.get(s) is not None), "unknown"))
    if not bad:
        return ALLOWED
    return CheckResult(False, "restricted volume types", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)} "
                       f"{pluralize('uses', 'use', len(bad))} "
                       f"{pluralize('restricted volume type', 'restricted volume types', len(types))} "
                       f"{join_quote(sorted(types))}")


def _explicit_or_implicit(spec: Obj, field: str, good: object) -> tuple[bool, list[str], list[str]]:
    """For a field set on the pod or per container: whether the pod sets a bad value, the
    containers that set a bad one, and those that set none where the pod does not set a good one."""
    pod_value = as_dict(spec.get("securityContext")).get(field)
    pod_bad = pod_value is not None and pod_value != good
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = (security_context(c) or {}).get(field)
        if value is not None:
            if value != good:
                explicit.append(name_of(c))
        elif pod_value != good:
            implicit.append(name_of(c))
    return pod_bad, explicit, implicit


def run_as_non_root_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """runAsNonRoot: true on the pod or on every container, false nowhere."""
    pod_bad, explicit, implicit = _explicit_or_implicit(spec, "runAsNonRoot", True)
    setters = (["pod"] if pod_bad else []) + ([containers_phrase(explicit)] if explicit else [])
    if setters:
        return CheckResult(False, "runAsNonRoot != true",
                           f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return CheckResult(False, "runAsNonRoot != true",
                           f"pod or {containers_phrase(implicit)} must set securityContext.runAsNonRoot=true")
    return ALLOWED


def run_as_user_1_23(meta: Obj, spec: Obj) -> CheckResult:
    """runAsUser: not 0 on the pod or any container."""
    def root(holder: Obj) -> bool:
        value = (security_context(holder) or {}).get("runAsUser")
        return value == 0 and value is not False
    setters = (["pod"] if root(spec) else [])
    bad = [name_of(c) for c in containers(spec) if root(c)]
    setters += [containers_phrase(bad)] if bad else []
    if not setters:
        return ALLOWED
    return CheckResult(False, "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def seccomp_profile_restricted_1_19(meta: Obj, spec: Obj) -> CheckResult:
    """seccompProfile_restricted: RuntimeDefault or Localhost, set on the pod or on every container."""
    values: set[str] = set()
    pod_bad, explicit = seccomp_bad_setters(spec, values)
    setters = (["pod"] if pod_bad else []) + ([containers_phrase(explicit)] if explicit else [])
    if setters:
        return CheckResult(False, "seccompProfile", f"{' and '.join(setters)} must not set "
                                                    f"securityContext.seccompProfile.type to {join_quote(sorted(values))}")
    pod_set = seccomp_allowed_type(as_dict(spec.get("securityContext")).get("seccompProfile"))
    implicit = [name_of(c) for c in containers(spec)
                if (security_context(c) or {}).get("seccompProfile") is None and not pod_set]
    if implicit:
        return CheckResult(False, "seccompProfile", f"pod or {containers_phrase(implicit)} must set "
                                                    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return ALLOWED


def seccomp_profile_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return ALLOWED if is_windows(spec) else seccomp_profile_restricted_1_19(meta, spec)


RESTRICTED_CHECKS: tuple[Check, ...] = (
    Check("allowPrivilegeEscalation", RESTRICTED, (VersionedCheck(v1(8), allow_privilege_escalation_1_8),
                                                   VersionedCheck(v1(25), allow_privilege_escalation_1_25))),
    Check("capabilities_restricted", RESTRICTED, (
        VersionedCheck(v1(22), capabilities_restricted_1_22, (CAPABILITIES_BASELINE_ID,)),
        VersionedCheck(v1(25), capabilities_restricted_1_25, (CAPABILITIES_BASELINE_ID,)))),
    Check("restrictedVolumes", RESTRICTED, (VersionedCheck(v1(0), restricted_volumes_1_0, (HOST_PATH_VOLUMES_ID,)),)),
    Check("runAsNonRoot", RESTRICTED, (VersionedCheck(v1(0), run_as_non_root_1_0),)),
    Check("runAsUser", RESTRICTED, (VersionedCheck(v1(23), run_as_user_1_23),)),
    Check("seccompProfile_restricted", RESTRICTED, (
        VersionedCheck(v1(19), seccomp_profile_restricted_1_19, (SECCOMP_BASELINE_ID,)),
        VersionedCheck(v1(25), seccomp_profile_restricted_1_25, (SECCOMP_BASELINE_ID,)))),
)
