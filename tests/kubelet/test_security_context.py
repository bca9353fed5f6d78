"""The security context as kubelet 1.32 passes it to the CRI (kybernetes.kubelet.security): the
translation, and the runAsNonRoot check with the kubelet's CreateContainerConfigError messages."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.kubelet import runtime as rt
from kybernetes.kubelet import security
from kybernetes.kubelet.cri import CRIClient, api
from kybernetes.kubelet.images import credentials_for, node_pull_configs
from tests.node.conftest import NodeRuntime, remove_sandbox, wait_exited

Obj = dict[str, Any]


def make_pod(psc: Obj | None = None, csc: Obj | None = None, **spec: Any) -> Obj:
    container: Obj = {"name": "c", "image": "busybox:1.36"}
    if csc is not None:
        container["securityContext"] = csc
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [container], "securityContext": psc or {}, **spec}}


def ctx(pod: Obj, **kw: Any) -> api.LinuxContainerSecurityContext:
    return rt.security_context(pod, pod["spec"]["containers"][0], **kw)


def test_effective_context_container_overrides_pod() -> None:
    pod = make_pod({"runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True, "fsGroup": 5,
                    "supplementalGroups": [7, 8]},
                   {"runAsUser": 1001, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}})
    sc = ctx(pod)
    assert (sc.run_as_user.value, sc.run_as_group.value) == (1001, 2000)
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    # The fsGroup first, then the pod's supplemental groups (determineEffectiveSecurityContext).
    assert list(sc.supplemental_groups) == [5, 7, 8]


def test_image_user_only_without_run_as_user() -> None:
    pod = make_pod()
    sc = ctx(pod, user=security.ImageUser(1234))
    assert sc.HasField("run_as_user") and sc.run_as_user.value == 1234 and sc.run_as_username == ""
    named = ctx(pod, user=security.ImageUser(None, "nobody"))
    assert not named.HasField("run_as_user") and named.run_as_username == "nobody"
    assert ctx(make_pod({"runAsUser": 7}), user=security.ImageUser(1234)).run_as_user.value == 7


def test_image_user_from_image_status() -> None:
    assert security.image_user(None) == security.ImageUser(0, "")
    assert security.image_user(api.Image(id="x")) == security.ImageUser(0, "")
    assert security.image_user(api.Image(id="x", uid=api.Int64Value(value=0))) == security.ImageUser(0, "")
    assert security.image_user(api.Image(id="x", uid=api.Int64Value(value=42))) == security.ImageUser(42, "")
    assert security.image_user(api.Image(id="x", username="www")) == security.ImageUser(None, "www")


def test_no_new_privs_only_when_escalation_is_disallowed() -> None:
    assert not ctx(make_pod()).no_new_privs
    assert not ctx(make_pod(csc={"allowPrivilegeEscalation": True})).no_new_privs
    assert ctx(make_pod(csc={"allowPrivilegeEscalation": False})).no_new_privs
    assert ctx(make_pod(csc={"privileged": True})).privileged


def test_seccomp_profiles(tmp_path: Any) -> None:
    unconfined = ctx(make_pod())
    assert unconfined.seccomp.profile_type == api.SecurityProfile.Unconfined
    pod_level = ctx(make_pod({"seccompProfile": {"type": "RuntimeDefault"}}))
    assert pod_level.seccomp.profile_type == api.SecurityProfile.RuntimeDefault
    local = ctx(make_pod({"seccompProfile": {"type": "RuntimeDefault"}},
                         {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}),
                seccomp_root=tmp_path)
    assert local.seccomp.profile_type == api.SecurityProfile.Localhost
    assert local.seccomp.localhost_ref == str(tmp_path / "profiles/audit.json")
    explicit = ctx(make_pod({"seccompProfile": {"type": "RuntimeDefault"}}, {"seccompProfile": {"type": "Unconfined"}}))
    assert explicit.seccomp.profile_type == api.SecurityProfile.Unconfined
    with pytest.raises(rt.ConfigError, match=r"localhostProfile must be set if seccompProfile type is Localhost\."):
        ctx(make_pod(csc={"seccompProfile": {"type": "Localhost"}}))


def test_proc_mount() -> None:
    default = ctx(make_pod(csc={"procMount": "Default"}))
    assert "/proc/kcore" in default.masked_paths and "/proc/sys" in default.readonly_paths
    assert list(ctx(make_pod()).masked_paths) == list(security.DEFAULT_MASKED_PATHS)
    unmasked = ctx(make_pod(csc={"procMount": "Unmasked"}))
    assert list(unmasked.masked_paths) == [] and list(unmasked.readonly_paths) == []


def test_sandbox_security_context(tmp_path: Any) -> None:
    pod = make_pod({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]},
                   initContainers=[{"name": "i", "image": "busybox", "securityContext": {"privileged": True}}])
    sec = rt.sandbox_config(pod, log_root=tmp_path, attempt=0, node_hostname="n").linux.security_context
    assert sec.privileged  # any container of the pod privileged: so is the sandbox
    assert sec.seccomp.profile_type == api.SecurityProfile.RuntimeDefault
    assert (sec.run_as_user.value, sec.run_as_group.value) == (1000, 3000)
    assert list(sec.supplemental_groups) == [2000, 4000]
    plain = rt.sandbox_config(make_pod(), log_root=tmp_path, attempt=0, node_hostname="n").linux.security_context
    assert not plain.privileged and not plain.HasField("run_as_user")


@pytest.mark.parametrize(("psc", "csc", "user", "message"), [
    ({}, None, security.ImageUser(0), None),
    ({"runAsNonRoot": False}, None, security.ImageUser(0), None),
    ({"runAsNonRoot": True}, None, security.ImageUser(1000), None),
    ({"runAsNonRoot": True, "runAsUser": 5}, None, security.ImageUser(0), None),
    ({"runAsNonRoot": True}, None, security.ImageUser(0),
     'container has runAsNonRoot and image will run as root (pod: "web_ns(u1)", container: c)'),
    ({}, {"runAsNonRoot": True, "runAsUser": 0}, security.ImageUser(1000),
     'container\'s runAsUser breaks non-root policy (pod: "web_ns(u1)", container: c)'),
    ({"runAsNonRoot": True, "runAsUser": 0}, {"runAsUser": 9}, security.ImageUser(0), None),
    ({"runAsNonRoot": True}, None, security.ImageUser(None, "www"),
     'container has runAsNonRoot and image has non-numeric user (www), cannot verify user is non-root '
     '(pod: "web_ns(u1)", container: c)'),
    ({"runAsNonRoot": True}, None, security.ImageUser(2**31),
     "container has runAsNonRoot and image has an invalid user id (2147483648). (Must be 1-(2147483647)): "
     'must be between 0 and 2147483647, inclusive (pod: "web_ns(u1)", container: c)'),
])
def test_run_as_non_root(psc: Obj, csc: Obj | None, user: security.ImageUser, message: str | None) -> None:
    pod = make_pod(psc, csc)
    c = pod["spec"]["containers"][0]
    if message is None:
        rt.container_config(pod, c, restart_count=0, env=[], mounts=[], image_user=user)
        return
    with pytest.raises(rt.ConfigError) as err:
        rt.container_config(pod, c, restart_count=0, env=[], mounts=[], image_user=user)
    assert str(err.value) == message


# ---- inside a container of the tests' containerd ----

STATUS_SCRIPT = ("grep -E '^(NoNewPrivs|CapEff|Seccomp):' /proc/self/status; id; "
                 "touch /rootfs-probe 2>/dev/null && echo rootfs=rw || echo rootfs=ro; "
                 "mkdir /tmp/probe 2>/dev/null && echo mkdir=ok || echo mkdir=denied")


async def _run(cri: CRIClient, node: NodeRuntime, pod: Obj, seccomp_root: Path | str = "") -> dict[str, str]:
    """Runs the pod's only container (STATUS_SCRIPT) as the kubelet configures it; returns what it
    printed as {key: value} (`id` as "id")."""
    pod["metadata"]["uid"] = uuid.uuid4().hex
    c = pod["spec"]["containers"][0]
    c.update(image=BUSYBOX_IMAGE, command=["sh", "-c", STATUS_SCRIPT])
    sandbox = rt.sandbox_config(pod, log_root=node.log_root, attempt=0, node_hostname="n")
    Path(sandbox.log_directory).mkdir(parents=True, exist_ok=True)
    sandbox_id = await cri.run_pod_sandbox(sandbox)
    try:
        config = rt.container_config(pod, c, restart_count=0, env=[], mounts=[],
                                     image_user=await security.image_user_of(cri, BUSYBOX_IMAGE),
                                     seccomp_root=seccomp_root)
        cid = await cri.create_container(sandbox_id, config, sandbox)
        await cri.start_container(cid)
        status = await wait_exited(cri, cid)
        lines = [line.split(" ", 3)[3] for line in Path(status.log_path).read_text().splitlines()]
    finally:
        await remove_sandbox(cri, sandbox_id)
    out: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":\t") if ":\t" in line else line.partition("=")
        out["id" if line.startswith("uid=") else key] = line if line.startswith("uid=") else value.strip()
    return out


def _host_cap_eff() -> str:
    return next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapEff:"))


async def test_defaults_run_as_image_user_unconfined(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    assert await security.image_user_of(cri, BUSYBOX_IMAGE) == security.ImageUser(0, "")
    got = await _run(cri, node_runtime, make_pod())
    assert got["id"].startswith("uid=0(root) gid=0(root)") or got["id"].startswith("uid=0 gid=0"), got
    assert (got["NoNewPrivs"], got["Seccomp"], got["rootfs"], got["mkdir"]) == ("0", "0", "rw", "ok"), got


async def test_non_root_read_only_no_new_privs_runtime_default(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    pod = make_pod({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000],
                    "seccompProfile": {"type": "RuntimeDefault"}},
                   {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True})
    got = await _run(cri, node_runtime, pod)
    assert got["id"] == "uid=1000 gid=3000 groups=2000,3000,4000", got
    assert (got["NoNewPrivs"], got["Seccomp"], got["rootfs"]) == ("1", "2", "ro"), got
    assert int(got["CapEff"], 16) == 0, got


async def test_capabilities_and_privileged(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    got = await _run(cri, node_runtime, make_pod(csc={"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}))
    assert int(got["CapEff"], 16) == 1 << 12, got  # CAP_NET_ADMIN alone
    privileged = await _run(cri, node_runtime, make_pod(csc={"privileged": True}))
    assert privileged["CapEff"] == _host_cap_eff(), privileged


async def test_localhost_seccomp_profile(node_runtime: NodeRuntime, cri: CRIClient, tmp_path: Path) -> None:
    root = tmp_path / "seccomp"
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    pod = make_pod(csc={"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"}})
    got = await _run(cri, node_runtime, pod, seccomp_root=root)
    assert (got["Seccomp"], got["mkdir"], got["rootfs"]) == ("2", "denied", "rw"), got


def test_pod_secrets_first_then_the_nodes_docker_config(tmp_path: Path) -> None:
    def secret(kind: str, doc: Obj) -> Obj:
        return {"data": {kind: base64.b64encode(json.dumps(doc).encode()).decode()}}

    assert node_pull_configs(tmp_path) == [] and node_pull_configs(None) == []
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"reg.example:5000": {"username": "node",
                                                                                      "password": "n"}}}))
    (tmp_path / ".dockercfg").write_text(json.dumps({"https://reg.example:5000/team": {
        "auth": base64.b64encode(b"legacy:l").decode()}}))
    node = node_pull_configs(tmp_path)
    pod_secret = secret(".dockerconfigjson", {"auths": {"reg.example:5000": {"username": "pod", "password": "p"}}})
    image = "reg.example:5000/team/app:1"
    assert [a.username for a in credentials_for(image, [pod_secret]) + credentials_for(image, node)] == \
        ["pod", "legacy", "node"]
    # As the kubelet's keyring: no server address (containerd would not match "host:port" with it).
    assert all(a.server_address == "" for a in credentials_for(image, node))
