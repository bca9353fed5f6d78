"""The security context the kubelet hands to the CRI, and its runAsNonRoot check.

What kubelet 1.32 does (pkg/kubelet/kuberuntime: security_context.go, security_context_others.go,
helpers.go's seccomp profile, kuberuntime_sandbox.go's sandbox config; pkg/securitycontext):

- The effective context of a container is the pod's `securityContext` (runAsUser, runAsGroup,
  runAsNonRoot, seLinuxOptions) overridden field by field by the container's (those and
  capabilities, privileged, readOnlyRootFilesystem, allowPrivilegeEscalation, procMount).
- With no runAsUser anywhere, the image's user is passed on: its numeric uid, or its user name
  (`run_as_username`); an image that names neither runs as root (uid 0).
- runAsNonRoot: true is verified before the container is created; a violation is
  CreateContainerConfigError with the kubelet's message (`verify_run_as_non_root`).
- Supplemental groups: the fsGroup first, then the pod's supplementalGroups.
- no_new_privs exactly when allowPrivilegeEscalation is false.
- procMount `Unmasked` clears the masked and read-only /proc paths; anything else sends the
  default lists (the runtime skips them for privileged containers).
- seccomp: the container's profile, else the pod's, else Unconfined (the kubelet's default while
  `seccompDefault` is off): `RuntimeDefault`, `Unconfined`, or `Localhost` with the file
  `SECCOMP_ROOT/<localhostProfile>` (the kubelet's seccomp root is `ROOT_DIR/seccomp`).
- The sandbox is privileged when any container of the pod is, always runs RuntimeDefault seccomp
  (so that pods may use stricter profiles of their own), and carries the pod's user, group and
  supplemental groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kybernetes.api.obj import Obj
from kybernetes.kubelet.cri import CRIClient, api

DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MAX_USER_ID = 2**31 - 1

_POD_LEVEL = ("seLinuxOptions", "runAsUser", "runAsGroup", "runAsNonRoot")
_CONTAINER_LEVEL = ("seLinuxOptions", "capabilities", "privileged", "runAsUser", "runAsGroup", "runAsNonRoot",
                    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount")


class SecurityContextError(Exception):
    """The container cannot be configured as its security context asks (CreateContainerConfigError)."""


@dataclass(frozen=True)
class ImageUser:
    """Who an image runs as: a numeric `uid`, or only a `username` (uid None)."""

    uid: int | None = 0
    username: str = ""


def image_user(image: api.Image | None) -> ImageUser:
    """The kubelet's getImageUser: the image's uid, else its user name, else root."""
    if image is not None:
        if image.HasField("uid"):
            return ImageUser(image.uid.value)
        if image.username:
            return ImageUser(None, image.username)
    return ImageUser()


async def image_user_of(cri: CRIClient, image: str) -> ImageUser:
    """The user `image` (as the container names it) runs as, from the runtime's ImageStatus."""
    return image_user(await cri.image_status(image))


def _spec(pod: Obj) -> Obj:
    return pod.get("spec") or {}


def effective(pod: Obj, container: Obj) -> Obj:
    """DetermineEffectiveSecurityContext: the pod's fields, overridden by the container's."""
    psc = _spec(pod).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    out = {k: psc[k] for k in _POD_LEVEL if psc.get(k) is not None}
    out.update({k: csc[k] for k in _CONTAINER_LEVEL if csc.get(k) is not None})
    return out


def _pod_ref(pod: Obj) -> str:
    m = pod.get("metadata") or {}
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def verify_run_as_non_root(pod: Obj, container: Obj, user: ImageUser) -> None:
    """verifyRunAsNonRoot; raises SecurityContextError with the kubelet's message."""
    sc = effective(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    where = f"(pod: {_quote(_pod_ref(pod))}, container: {container.get('name', '')})"
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise SecurityContextError(f"container's runAsUser breaks non-root policy {where}")
        return
    if user.uid is None:
        if user.username:
            raise SecurityContextError(f"container has runAsNonRoot and image has non-numeric user "
                                       f"({user.username}), cannot verify user is non-root {where}")
        return
    if user.uid == 0:
        raise SecurityContextError(f"container has runAsNonRoot and image will run as root {where}")
    if not 0 <= user.uid <= MAX_USER_ID:
        raise SecurityContextError(
            f"container has runAsNonRoot and image has an invalid user id ({user.uid}). (Must be 1-({MAX_USER_ID})): "
            f"must be between 0 and {MAX_USER_ID}, inclusive {where}")


def _quote(text: str) -> str:
    # Go's %q for the plain ASCII of a pod reference.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seccomp_profile(pod: Obj, container: Obj, seccomp_root: Path | str) -> api.SecurityProfile:
    """The container's seccomp profile (module doc); a Localhost profile without a name is an error."""
    profile = (container.get("securityContext") or {}).get("seccompProfile")
    if profile is None:
        profile = (_spec(pod).get("securityContext") or {}).get("seccompProfile")
    kind = (profile or {}).get("type")
    if kind == "RuntimeDefault":
        return api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)
    if kind == "Localhost":
        name = (profile or {}).get("localhostProfile")
        if not name:
            raise SecurityContextError("localhostProfile must be set if seccompProfile type is Localhost.")
        return api.SecurityProfile(profile_type=api.SecurityProfile.Localhost,
                                   localhost_ref=str(Path(seccomp_root) / str(name)))
    return api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined)


def supplemental_groups(pod: Obj) -> list[int]:
    psc = _spec(pod).get("securityContext") or {}
    groups = [int(psc["fsGroup"])] if psc.get("fsGroup") is not None else []
    return groups + [int(g) for g in psc.get("supplementalGroups") or []]


def container_security_context(pod: Obj, container: Obj, namespace_options: api.NamespaceOption, *,
                               user: ImageUser | None = None,
                               seccomp_root: Path | str = "") -> api.LinuxContainerSecurityContext:
    """The LinuxContainerSecurityContext of one container (module doc); `user`: the image's user,
    passed on when no runAsUser is set (None: leave it to the runtime)."""
    sc = effective(pod, container)
    out = api.LinuxContainerSecurityContext(
        namespace_options=namespace_options,
        privileged=bool(sc.get("privileged")),
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        supplemental_groups=supplemental_groups(pod),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        seccomp=seccomp_profile(pod, container, seccomp_root),
    )
    caps = sc.get("capabilities")
    if caps is not None:
        out.capabilities.add_capabilities.extend(str(x) for x in caps.get("add") or [])
        out.capabilities.drop_capabilities.extend(str(x) for x in caps.get("drop") or [])
    if sc.get("runAsUser") is not None:
        out.run_as_user.value = int(sc["runAsUser"])
    elif user is not None:
        if user.uid is not None:
            out.run_as_user.value = user.uid
        out.run_as_username = user.username
    if sc.get("runAsGroup") is not None:
        out.run_as_group.value = int(sc["runAsGroup"])
    selinux = sc.get("seLinuxOptions")
    if selinux:
        out.selinux_options.CopyFrom(api.SELinuxOption(user=selinux.get("user", ""), role=selinux.get("role", ""),
                                                       type=selinux.get("type", ""), level=selinux.get("level", "")))
    if sc.get("procMount") != "Unmasked":
        out.masked_paths.extend(DEFAULT_MASKED_PATHS)
        out.readonly_paths.extend(DEFAULT_READONLY_PATHS)
    return out


def has_privileged_container(pod: Obj) -> bool:
    s = _spec(pod)
    return any(((c.get("securityContext") or {}).get("privileged")) is True
               for key in ("initContainers", "containers", "ephemeralContainers") for c in s.get(key) or [])


def sandbox_security_context(pod: Obj, namespace_options: api.NamespaceOption) -> api.LinuxSandboxSecurityContext:
    """The sandbox's LinuxSandboxSecurityContext (module doc)."""
    psc = _spec(pod).get("securityContext") or {}
    out = api.LinuxSandboxSecurityContext(
        namespace_options=namespace_options,
        privileged=has_privileged_container(pod),
        seccomp=api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault),
        supplemental_groups=supplemental_groups(pod),
    )
    if psc.get("runAsUser") is not None:
        out.run_as_user.value = int(psc["runAsUser"])
    if psc.get("runAsGroup") is not None:
        out.run_as_group.value = int(psc["runAsGroup"])
    return out
