"""The baseline checks of Kubernetes 1.32 (``pod-security-admission/policy/check_*.go``).

Each check is a small function of the pod's metadata and spec with the wording Kubernetes gives
(``forbiddenReason`` and ``forbiddenDetail``); :data:`BASELINE_CHECKS` gives each its check ID and
the version it applies from. The ``UserNamespacesPodSecurityStandards`` relaxation (alpha, off by
default in 1.32) is not implemented, so ``hostUsers: false`` relaxes nothing, as by default.
"""

from __future__ import annotations

from kybernetes.api.fieldpath import go_quote
from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.podsecurity.levels import BASELINE, v1
from kybernetes.apiserver.admission.podsecurity.policy import (
    ALLOWED,
    Check,
    CheckFn,
    CheckResult,
    VersionedCheck,
    as_dict,
    containers,
    containers_phrase,
    join_quote,
    name_of,
    pluralize,
    security_context,
)


def _setters(pod_bad: bool, bad_containers: list[str]) -> list[str]:
    """``pod`` and/or ``container(s) "a", ...``: who set a forbidden value."""
    setters = ["pod"] if pod_bad else []
    if bad_containers:
        setters.append(containers_phrase(bad_containers))
    return setters


def host_process_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """windowsHostProcess: no ``securityContext.windowsOptions.hostProcess=true``."""
    def host_process(holder: Obj) -> bool:
        return as_dict(as_dict(holder.get("securityContext")).get("windowsOptions")).get("hostProcess") is True
    bad = [name_of(c) for c in containers(spec) if host_process(c)]
    setters = _setters(host_process(spec), bad)
    if not setters:
        return ALLOWED
    return CheckResult(False, "hostProcess",
                       f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


def host_namespaces_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """hostNamespaces: no hostNetwork, hostPID or hostIPC."""
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return CheckResult(False, "host namespaces", ", ".join(used)) if used else ALLOWED


def privileged_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """privileged: no ``securityContext.privileged=true``."""
    bad = [name_of(c) for c in containers(spec) if (security_context(c) or {}).get("privileged") is True]
    if not bad:
        return ALLOWED
    return CheckResult(False, "privileged", f"{containers_phrase(bad)} must not set securityContext.privileged=true")


CAPABILITIES_ALLOWED_1_0 = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
"""The container runtime's default capabilities: the only ones baseline lets a container add."""


def capabilities_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """capabilities_baseline: ``capabilities.add`` only from the default set."""
    bad: list[str] = []
    forbidden: set[str] = set()
    for c in containers(spec):
        added = [str(cap) for cap in as_dict((security_context(c) or {}).get("capabilities")).get("add") or ()]
        extra = [cap for cap in added if cap not in CAPABILITIES_ALLOWED_1_0]
        if extra:
            bad.append(name_of(c))
            forbidden.update(extra)
    if not bad:
        return ALLOWED
    return CheckResult(False, "non-default capabilities", f"{containers_phrase(bad)} must not include "
                                                          f"{join_quote(sorted(forbidden))} in securityContext.capabilities.add")


def host_path_volumes_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """hostPathVolumes: no hostPath volume."""
    bad = [str(v.get("name") or "") for v in spec.get("volumes") or () if isinstance(v, dict)
           and v.get("hostPath") is not None]
    if not bad:
        return ALLOWED
    return CheckResult(False, "hostPath volumes", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}")


def host_ports_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """hostPorts: no container port with a hostPort."""
    bad: list[str] = []
    ports: set[str] = set()
    for c in containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or () if isinstance(p, dict) and p.get("hostPort")]
        if used:
            bad.append(name_of(c))
            ports.update(used)
    if not bad:
        return ALLOWED
    return CheckResult(False, "hostPort", f"{containers_phrase(bad)} {pluralize('uses', 'use', len(bad))} "
                                          f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_annotation_ok(value: str) -> bool:
    return value in ("", "runtime/default") or value.startswith("localhost/")


def app_armor_profile_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """appArmorProfile: profile type RuntimeDefault or Localhost; the beta annotations
    ``runtime/default``, ``localhost/*`` or empty."""
    values: set[str] = set()

    def bad_type(holder: Obj) -> bool:
        profile = (security_context(holder) or {}).get("appArmorProfile")
        if not isinstance(profile, dict) or profile.get("type") in ("RuntimeDefault", "Localhost"):
            return False
        values.add(str(profile.get("type") or ""))
        return True
    pod_bad = bad_type(spec)
    setters = _setters(pod_bad, [name_of(c) for c in containers(spec) if bad_type(c)])
    annotations = sorted(f"{k}={go_quote(str(v))}" for k, v in as_dict(meta.get("annotations")).items()
                         if k.startswith(APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_ok(str(v)))
    bad_values = sorted(values) + annotations
    if annotations:
        setters.append(pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return ALLOWED
    return CheckResult(False, pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
                       f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(bad_values)}")


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux_options(spec: Obj, allowed_types: frozenset[str]) -> CheckResult:
    bad_types: set[str] = set()
    set_user = set_role = False

    def bad(holder: Obj) -> bool:
        nonlocal set_user, set_role
        opts = (security_context(holder) or {}).get("seLinuxOptions")
        if not isinstance(opts, dict):
            return False
        type_ = str(opts.get("type") or "")
        if type_ not in allowed_types:
            bad_types.add(type_)
        set_user = set_user or bool(opts.get("user"))
        set_role = set_role or bool(opts.get("role"))
        return type_ not in allowed_types or bool(opts.get("user")) or bool(opts.get("role"))
    setters = _setters(bad(spec), [name_of(c) for c in containers(spec) if bad(c)])
    if not setters:
        return ALLOWED
    data = [f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}"] if bad_types else []
    data += ["user may not be set"] if set_user else []
    data += ["role may not be set"] if set_role else []
    return CheckResult(False, "seLinuxOptions", f"{' and '.join(setters)} set forbidden "
                                                f"securityContext.seLinuxOptions: {'; '.join(data)}")


def se_linux_options_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """seLinuxOptions: type empty or container_t/container_init_t/container_kvm_t; no user, no role."""
    return _se_linux_options(spec, SELINUX_TYPES_1_0)


def se_linux_options_1_31(meta: Obj, spec: Obj) -> CheckResult:
    """seLinuxOptions from 1.31: container_engine_t is allowed too."""
    return _se_linux_options(spec, SELINUX_TYPES_1_31)


def proc_mount_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """procMount: unset or ``Default``."""
    bad: list[str] = []
    types: set[str] = set()
    for c in containers(spec):
        proc_mount = (security_context(c) or {}).get("procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad.append(name_of(c))
            types.add(str(proc_mount))
    if not bad:
        return ALLOWED
    return CheckResult(False, "procMount", f"{containers_phrase(bad)} must not set securityContext.procMount to "
                                           f"{join_quote(sorted(types))}")


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp_allowed_type(profile: object) -> bool:
    """Whether a seccompProfile (dict) has type RuntimeDefault or Localhost."""
    return as_dict(profile).get("type") in ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    """seccompProfile_baseline before 1.19: the alpha annotations only runtime/default,
    docker/default or localhost/*."""
    annotations = as_dict(meta.get("annotations"))
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + name_of(c) for c in containers(spec)]
    forbidden: set[str] = set()
    for key in keys:
        value = annotations.get(key)
        if value is not None and not (value in ("runtime/default", "docker/default")
                                      or str(value).startswith("localhost/")):
            forbidden.add(f"{key}={go_quote(str(value))}")
    if not forbidden:
        return ALLOWED
    return CheckResult(False, "seccompProfile", f"forbidden {pluralize('annotation', 'annotations', len(forbidden))} "
                                                f"{', '.join(sorted(forbidden))}")


def seccomp_bad_setters(spec: Obj, values: set[str]) -> tuple[bool, list[str]]:
    """Whether the pod, and which containers, set a seccompProfile type other than RuntimeDefault or
    Localhost (their types go into ``values``)."""
    def bad(holder: Obj) -> bool:
        profile = (security_context(holder) or {}).get("seccompProfile")
        if profile is None or seccomp_allowed_type(profile):
            return False
        values.add(str(as_dict(profile).get("type") or ""))
        return True
    return bad(spec), [name_of(c) for c in containers(spec) if bad(c)]


def seccomp_profile_baseline_1_19(meta: Obj, spec: Obj) -> CheckResult:
    """seccompProfile_baseline from 1.19: a set profile type is RuntimeDefault or Localhost."""
    values: set[str] = set()
    setters = _setters(*seccomp_bad_setters(spec, values))
    if not setters:
        return ALLOWED
    return CheckResult(False, "seccompProfile", f"{' and '.join(setters)} must not set "
                                                f"securityContext.seccompProfile.type to {join_quote(sorted(values))}")


SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                         "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                               "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(spec: Obj, allowed: frozenset[str]) -> CheckResult:
    sysctls = as_dict(spec.get("securityContext")).get("sysctls") or ()
    bad = [str(s.get("name") or "") for s in sysctls if isinstance(s, dict) and s.get("name") not in allowed]
    return CheckResult(False, "forbidden sysctls", ", ".join(bad)) if bad else ALLOWED


def sysctls_1_0(meta: Obj, spec: Obj) -> CheckResult:
    return _sysctls(spec, SYSCTLS_1_0)


def sysctls_1_27(meta: Obj, spec: Obj) -> CheckResult:
    return _sysctls(spec, SYSCTLS_1_27)


def sysctls_1_29(meta: Obj, spec: Obj) -> CheckResult:
    return _sysctls(spec, SYSCTLS_1_29)


def sysctls_1_32(meta: Obj, spec: Obj) -> CheckResult:
    return _sysctls(spec, SYSCTLS_1_32)


CAPABILITIES_BASELINE_ID = "capabilities_baseline"
HOST_PATH_VOLUMES_ID = "hostPathVolumes"
SECCOMP_BASELINE_ID = "seccompProfile_baseline"


def _one(check_id: str, fn: CheckFn) -> Check:
    """A baseline check with one version, from v1.0."""
    return Check(check_id, BASELINE, (VersionedCheck(v1(0), fn),))


BASELINE_CHECKS: tuple[Check, ...] = (
    _one("appArmorProfile", app_armor_profile_1_0),
    _one(CAPABILITIES_BASELINE_ID, capabilities_baseline_1_0),
    _one("hostNamespaces", host_namespaces_1_0),
    _one(HOST_PATH_VOLUMES_ID, host_path_volumes_1_0),
    _one("hostPorts", host_ports_1_0),
    _one("privileged", privileged_1_0),
    _one("procMount", proc_mount_1_0),
    Check("seLinuxOptions", BASELINE, (VersionedCheck(v1(0), se_linux_options_1_0),
                                       VersionedCheck(v1(31), se_linux_options_1_31))),
    Check(SECCOMP_BASELINE_ID, BASELINE, (VersionedCheck(v1(0), seccomp_profile_baseline_1_0),
                                          VersionedCheck(v1(19), seccomp_profile_baseline_1_19))),
    Check("sysctls", BASELINE, (VersionedCheck(v1(0), sysctls_1_0), VersionedCheck(v1(27), sysctls_1_27),
                                VersionedCheck(v1(29), sysctls_1_29), VersionedCheck(v1(32), sysctls_1_32))),
    _one("windowsHostProcess", host_process_1_0),
)
