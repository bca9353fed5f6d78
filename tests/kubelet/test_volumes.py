"""The volume manager against a real API server: every volume type, refresh, subPath, teardown.

Pods are created through the API so that they carry a real uid and the service-account admission's
``kube-api-access-*`` projected volume; the volumes are materialised under the test's tmp_path.
Memory-backed volumes are real tmpfs mounts when the tests run as root (they are unmounted by
``teardown``, which the tests check).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.fieldpath import format_map
from kybernetes.client.rest import Client
from kybernetes.kubelet.containerd import mounts_under
from kybernetes.kubelet.volume_host import VolumeError
from kybernetes.kubelet.volumes import CONFIGMAP, EMPTY_DIR, PROJECTED, SECRET, VolumeManager
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
ROOT = os.geteuid() == 0
NS = "vol"


def prepare_server(s: ServerProcess) -> None:
    """Run by the ``srv`` fixture once the server is up."""
    s.kubectl("create", "namespace", NS)
    # The API-only server's controllers (testing.API_ONLY_CONTROLLERS) make the default account; the
    # kube-root-ca.crt ConfigMap the root-ca-cert-publisher would make is made here.
    deadline = time.monotonic() + 30
    while s.kubectl("-n", NS, "get", "serviceaccount", "default", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the default ServiceAccount never came"
        time.sleep(0.1)
    s.kubectl("-n", NS, "create", "configmap", "kube-root-ca.crt",
              f"--from-file=ca.crt={s.data_dir / 'tls' / 'ca.crt'}")


class Clock:
    """A wall clock the test can move forward (for token renewal)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def make_pod(client: Client, name: str, volumes: list[Obj], mounts: list[Obj] | None = None,
                   **spec: Any) -> Obj:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": {"app": "demo", "tier": "web"},
                        "annotations": {"note": "hello", "quote": 'say "hi"\n'}},
           "spec": {"nodeName": "node-a", "volumes": volumes, **spec,
                    "containers": [{"name": "main", "image": "busybox",
                                    "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
                                    "volumeMounts": mounts or []}]}}
    return await client.create("v1", "pods", pod, NS)


def read(p: Path) -> str:
    return p.read_text()


def api_get_with_token(srv: ServerProcess, token: str) -> int:
    """The code of a discovery GET with ``token``: 200 when it authenticates (every authenticated
    user may read discovery; the pod's account may list nothing until bound), 401 when not."""
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
    ctx.check_hostname = False
    req = urllib.request.Request(f"{srv.url}/api/v1",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


async def test_api_volumes_emptydir_token_refresh_and_teardown(srv: ServerProcess, client: Client,
                                                               tmp_path: Path) -> None:
    await client.create("v1", "configmaps", {"metadata": {"name": "cfg"},
                                             "data": {"app.conf": "v=1\n", "other": "x"},
                                             "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()}}, NS)
    await client.create("v1", "secrets", {"metadata": {"name": "sec"},
                                          "data": {"password": base64.b64encode(b"s3cret").decode()}}, NS)
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf/app.conf",
                                                                "mode": 0o600}, {"key": "blob", "path": "blob"}]}},
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu",
                                                 "divisor": "1m"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                                 "divisor": "1Mi"}},
            {"path": "ephemeral", "resourceFieldRef": {"containerName": "main",
                                                       "resource": "limits.ephemeral-storage"}},
        ]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    pod = await make_pod(client, "api-volumes", volumes)
    uid = pod["metadata"]["uid"]
    token_volume = next(v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    clock = Clock()
    vm = VolumeManager(client, tmp_path / "pods", "node-a", clock=clock,
                       allocatable=lambda: {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "10Gi"})
    try:
        paths = await vm.setup(pod)
        assert set(paths) == {v["name"] for v in pod["spec"]["volumes"]}
        assert paths["cfg"] == tmp_path / "pods" / uid / "volumes" / CONFIGMAP / "cfg"

        # configMap: items, nested paths, modes, binaryData; the AtomicWriter layout.
        cfg = paths["cfg"]
        assert read(cfg / "conf" / "app.conf") == "v=1\n"
        assert (cfg / "blob").read_bytes() == b"\x00\x01"
        assert stat.S_IMODE(os.stat(cfg / "conf" / "app.conf").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(cfg / "blob").st_mode) == 0o644
        assert os.readlink(cfg / "conf") == "..data/conf" and (cfg / "..data").is_symlink()
        assert os.readlink(cfg / "..data").startswith("..")
        assert sorted(p.name for p in cfg.iterdir() if not p.name.startswith("..")) == ["blob", "conf"]
        assert sorted(p.name for p in paths["all"].iterdir() if not p.name.startswith("..")) == [
            "app.conf", "blob", "other"]

        # secret: decoded, defaultMode, on a tmpfs when we may mount.
        sec = paths["sec"]
        assert read(sec / "password") == "s3cret"
        assert stat.S_IMODE(os.stat(sec / "password").st_mode) == 0o400
        assert sec == tmp_path / "pods" / uid / "volumes" / SECRET / "sec"

        # downward API.
        info = paths["info"]
        assert read(info / "name") == "api-volumes"
        assert read(info / "labels") == 'app="demo"\ntier="web"'
        assert read(info / "annotations") == 'note="hello"\nquote="say \\"hi\\"\\n"'
        assert read(info / "labels") == format_map(pod["metadata"]["labels"])
        assert read(info / "note") == "hello"
        assert read(info / "node") == "node-a"
        assert read(info / "cpu") == "250"
        assert read(info / "mem") == "64"
        assert read(info / "ephemeral") == str(10 * 1024**3)  # no limit: the node's allocatable

        # emptyDir: a world-writable directory; Memory: a tmpfs of the requested size.
        assert paths["scratch"] == tmp_path / "pods" / uid / "volumes" / EMPTY_DIR / "scratch"
        assert stat.S_IMODE(os.stat(paths["scratch"]).st_mode) == 0o777
        if ROOT:
            mounted = mounts_under(tmp_path)
            assert str(paths["ram"]) in mounted and str(sec) in mounted
            st = os.statvfs(paths["ram"])
            assert st.f_blocks * st.f_frsize == 16 * 1024 * 1024

        # The projected service-account volume: a bound token that authenticates, the CA, the namespace.
        proj = paths[token_volume]
        assert proj.parent.name == PROJECTED
        token = read(proj / "token")
        assert token.count(".") == 2
        assert read(proj / "namespace") == NS
        assert read(proj / "ca.crt") == read(srv.data_dir / "tls" / "ca.crt")
        assert api_get_with_token(srv, token) == 200
        assert api_get_with_token(srv, token[:-4] + "AAAA") == 401

        # refresh: nothing changed -> nothing rewritten (same ..data target, same token).
        before = os.readlink(cfg / "..data")
        await vm.refresh(pod)
        assert os.readlink(cfg / "..data") == before
        assert read(proj / "token") == token

        # A ConfigMap update shows up atomically; the old timestamped directory is gone.
        await client.patch("v1", "configmaps", "cfg", {"data": {"app.conf": "v=2\n"}}, NS)
        await vm.refresh(pod)
        assert read(cfg / "conf" / "app.conf") == "v=2\n"
        assert os.readlink(cfg / "..data") != before and not (cfg / before).exists()
        assert read(paths["all"] / "app.conf") == "v=2\n"

        # A label change reaches the downward API files.
        pod = await client.patch("v1", "pods", "api-volumes", {"metadata": {"labels": {"tier": None}}}, NS)
        await vm.refresh(pod)
        assert read(info / "labels") == 'app="demo"'

        # Past 80% of the token's lifetime (3607 s) the kubelet re-issues it.
        clock.offset = 0.5 * 3607
        await vm.refresh(pod)
        assert read(proj / "token") == token
        clock.offset = 0.81 * 3607
        await vm.refresh(pod)
        renewed = read(proj / "token")
        assert renewed != token and api_get_with_token(srv, renewed) == 200

        assert vm.orphaned(set()) == [uid]
        assert vm.orphaned({uid}) == []
    finally:
        await vm.teardown(uid)
    assert not (tmp_path / "pods" / uid).exists()
    assert mounts_under(tmp_path) == []
    assert vm.orphaned(set()) == []


async def test_missing_objects_fail_unless_optional(client: Client, tmp_path: Path) -> None:
    await client.create("v1", "configmaps", {"metadata": {"name": "partial"}, "data": {"a": "1"}}, NS)
    pod = await make_pod(client, "missing", [
        {"name": "gone", "configMap": {"name": "nope"}},
        {"name": "ok", "emptyDir": {}},
    ], automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    uid = pod["metadata"]["uid"]
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod)
    assert str(e.value) == 'MountVolume.SetUp failed for volume "gone" : configmap "nope" not found'
    assert e.value.reason == "FailedMount"
    # What could be set up is; once the ConfigMap exists the retry succeeds.
    assert (tmp_path / "pods" / uid / "volumes" / EMPTY_DIR / "ok").is_dir()
    await client.create("v1", "configmaps", {"metadata": {"name": "nope"}, "data": {"k": "v"}}, NS)
    paths = await vm.setup(pod)
    assert read(paths["gone"] / "k") == "v"

    optional = await make_pod(client, "optional", [
        {"name": "o1", "configMap": {"name": "absent", "optional": True}},
        {"name": "o2", "secret": {"secretName": "absent", "optional": True}},
        {"name": "o3", "configMap": {"name": "partial", "optional": True,
                                     "items": [{"key": "a", "path": "a"}, {"key": "b", "path": "b"}]}},
    ], automountServiceAccountToken=False)
    paths = await vm.setup(optional)
    assert [p.name for p in paths["o1"].iterdir() if not p.name.startswith("..")] == []
    assert [p.name for p in paths["o3"].iterdir() if not p.name.startswith("..")] == ["a"]

    bad_key = await make_pod(client, "badkey", [
        {"name": "k", "configMap": {"name": "partial", "items": [{"key": "b", "path": "b"}]}},
    ], automountServiceAccountToken=False)
    with pytest.raises(VolumeError, match="configmap references non-existent config key: b"):
        await vm.setup(bad_key)
    for p in (pod, optional, bad_key):
        await vm.teardown(p["metadata"]["uid"])
    assert list((tmp_path / "pods").iterdir()) == []


async def test_host_path_types(client: Client, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("data")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(host / "sock"))
    try:
        pod = await make_pod(client, "hostpaths", [
            {"name": "d", "hostPath": {"path": str(host), "type": "Directory"}},
            {"name": "doc", "hostPath": {"path": str(host / "new" / "dir"), "type": "DirectoryOrCreate"}},
            {"name": "f", "hostPath": {"path": str(host / "file"), "type": "File"}},
            {"name": "foc", "hostPath": {"path": str(host / "created"), "type": "FileOrCreate"}},
            {"name": "s", "hostPath": {"path": str(host / "sock"), "type": "Socket"}},
            {"name": "any", "hostPath": {"path": str(host / "whatever")}},
        ], automountServiceAccountToken=False)
        vm = VolumeManager(client, tmp_path / "pods", "node-a")
        paths = await vm.setup(pod)
        assert paths["d"] == host and paths["f"] == host / "file" and paths["s"] == host / "sock"
        assert (host / "new" / "dir").is_dir()
        assert (host / "created").is_file() and stat.S_IMODE(os.stat(host / "created").st_mode) == 0o644
        assert not (host / "whatever").exists()
        for vol, message in [
            ({"path": str(host / "file"), "type": "Directory"}, f"hostPath type check failed: {host / 'file'} is not a directory"),
            ({"path": str(host), "type": "File"}, f"hostPath type check failed: {host} is not a file"),
            ({"path": str(host / "file"), "type": "Socket"}, f"hostPath type check failed: {host / 'file'} is not a socket file"),
            ({"path": str(host / "missing"), "type": "Directory"}, "is not a directory"),
            ({"path": str(host / "file"), "type": "CharDevice"}, "is not a character device"),
        ]:
            bad = {"metadata": {"uid": "bad-" + vol["type"], "namespace": NS, "name": "x"},
                   "spec": {"volumes": [{"name": "h", "hostPath": vol}]}}
            with pytest.raises(VolumeError, match=message):
                await vm.setup(bad)
            await vm.teardown("bad-" + vol["type"])
        # Tearing down never touches hostPath data.
        await vm.teardown(pod["metadata"]["uid"])
        assert (host / "file").read_text() == "data"
    finally:
        sock.close()


async def test_pvc_bound_to_host_path_pv(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "pv-data"
    data.mkdir()
    await client.create("v1", "persistentvolumes", {
        "metadata": {"name": "pv-host"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": str(data), "type": "Directory"},
                 "claimRef": {"namespace": NS, "name": "claim"}}}, "")
    await client.create("v1", "persistentvolumeclaims", {
        "metadata": {"name": "claim"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, NS)
    pod = await make_pod(client, "pvc-user", [{"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}],
                         mounts=[{"name": "data", "mountPath": "/data"}], automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    with pytest.raises(VolumeError, match=f"PVC {NS}/claim is not bound"):
        await vm.setup(pod)
    # Bind it as the PV controller would.
    await client.patch("v1", "persistentvolumeclaims", "claim", {"spec": {"volumeName": "pv-host"}}, NS)
    await client.patch("v1", "persistentvolumeclaims", "claim", {"status": {"phase": "Bound"}}, NS,
                       subresource="status")
    paths = await vm.setup(pod)
    assert paths["data"] == data
    mounts = vm.mounts_for(pod, pod["spec"]["containers"][0], paths)
    assert mounts == [{"container_path": "/data", "host_path": str(data), "readonly": False, "propagation": 0,
                       "sub_path": ""}]
    missing = await make_pod(client, "pvc-missing", [{"name": "d", "persistentVolumeClaim": {"claimName": "none"}}],
                             automountServiceAccountToken=False)
    with pytest.raises(VolumeError, match='persistentvolumeclaim "none" not found'):
        await vm.setup(missing)
    for p in (pod, missing):
        await vm.teardown(p["metadata"]["uid"])
    assert data.is_dir()


async def bound_local_claim(client: Client, claim: str, pv: str, path: Path, *, owner: Obj | None = None,
                            volume_mode: str = "Filesystem", node: str = "node-a") -> None:
    """A local PV at ``path`` on ``node`` and a claim Bound to it, as the PV controller leaves them
    (the Node ``node-a``, the volume manager's, exists: the kubelet checks a PV's node affinity)."""
    with contextlib.suppress(errors.AlreadyExists):
        await client.create("v1", "nodes", {"metadata": {"name": "node-a",
                                                         "labels": {"kubernetes.io/hostname": "node-a"}}}, "")
    await client.create("v1", "persistentvolumes", {
        "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "volumeMode": volume_mode,
                 "local": {"path": str(path)}, "claimRef": {"namespace": NS, "name": claim},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}, "")
    meta: Obj = {"name": claim}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    await client.create("v1", "persistentvolumeclaims", {
        "metadata": meta, "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": volume_mode, "volumeName": pv,
                                   "resources": {"requests": {"storage": "1Gi"}}}}, NS)
    await client.patch("v1", "persistentvolumeclaims", claim, {"status": {"phase": "Bound"}}, NS,
                       subresource="status")


async def test_local_pv_claim_read_only_and_sub_path(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "local-data"
    data.mkdir()
    await bound_local_claim(client, "local-claim", "pv-local", data)
    pod = await make_pod(client, "local-user",
                         [{"name": "rw", "persistentVolumeClaim": {"claimName": "local-claim"}},
                          {"name": "ro", "persistentVolumeClaim": {"claimName": "local-claim", "readOnly": True}}],
                         mounts=[{"name": "rw", "mountPath": "/data", "subPath": "app"},
                                 {"name": "rw", "mountPath": "/all", "readOnly": True},
                                 {"name": "ro", "mountPath": "/ro"},
                                 {"name": "rw", "mountPath": "/per-pod", "subPathExpr": "$(POD)"}],
                         automountServiceAccountToken=False)
    container = dict(pod["spec"]["containers"][0], env=[{"name": "POD", "value": "local-user"}])
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    paths = await vm.setup(pod)
    assert paths == {"rw": data, "ro": data}
    assert [(m["container_path"], m["host_path"], m["readonly"]) for m in vm.mounts_for(pod, container, paths)] == [
        ("/data", str(data / "app"), False), ("/all", str(data), True), ("/ro", str(data), True),
        ("/per-pod", str(data / "local-user"), False)]
    assert (data / "app").is_dir() and (data / "local-user").is_dir()
    await vm.teardown(pod["metadata"]["uid"])
    assert (data / "app").is_dir()


async def test_ephemeral_volume_is_the_pods_own_claim(client: Client, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    pod = await make_pod(client, "eph", [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}],
                         mounts=[{"name": "scratch", "mountPath": "/scratch"}], automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    with pytest.raises(VolumeError, match='persistentvolumeclaim "eph-scratch" not found'):
        await vm.setup(pod)
    await bound_local_claim(client, "eph-scratch", "pv-eph", scratch, owner=pod)
    assert await vm.setup(pod) == {"scratch": scratch}
    # a claim of that name that the pod does not own is refused
    other = await make_pod(client, "eph2", [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}],
                           automountServiceAccountToken=False)
    await bound_local_claim(client, "eph2-scratch", "pv-eph2", scratch)
    with pytest.raises(VolumeError, match=f"PVC {NS}/eph2-scratch was not created for pod {NS}/eph2 "
                                          r"\(pod is not owner\)"):
        await vm.setup(other)
    for p in (pod, other):
        await vm.teardown(p["metadata"]["uid"])


async def test_local_pv_of_another_node_is_not_mounted(client: Client, tmp_path: Path) -> None:
    await bound_local_claim(client, "elsewhere-claim", "pv-elsewhere", tmp_path, node="node-b")
    pod = await make_pod(client, "elsewhere-user",
                         [{"name": "d", "persistentVolumeClaim": {"claimName": "elsewhere-claim"}}],
                         mounts=[{"name": "d", "mountPath": "/d"}], automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    with pytest.raises(VolumeError) as failure:
        await vm.setup(pod)
    assert str(failure.value) == ('MountVolume.NodeAffinity check failed for volume "pv-elsewhere" : '
                                  "no matching NodeSelectorTerms")
    await vm.teardown(pod["metadata"]["uid"])


async def test_block_claim_in_volume_mounts_is_refused(client: Client, tmp_path: Path) -> None:
    await bound_local_claim(client, "block-claim", "pv-block", tmp_path, volume_mode="Block")
    pod = await make_pod(client, "block-user", [{"name": "dev", "persistentVolumeClaim": {"claimName": "block-claim"}}],
                         mounts=[{"name": "dev", "mountPath": "/dev-as-dir"}], automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    with pytest.raises(VolumeError, match="volume dev has volumeMode Block, but is specified in volumeMounts"):
        await vm.setup(pod)
    await vm.teardown(pod["metadata"]["uid"])


async def test_mounts_for_subpath_and_readonly(client: Client, tmp_path: Path) -> None:
    await client.create("v1", "configmaps", {"metadata": {"name": "sub"}, "data": {"one": "1", "two": "2"}}, NS)
    mounts: list[Obj] = [
        {"name": "cfg", "mountPath": "/etc/one", "subPath": "one"},
        {"name": "work", "mountPath": "/work", "readOnly": True},
        {"name": "work", "mountPath": "/logs", "subPath": "logs/app", "mountPropagation": "HostToContainer"},
        {"name": "work", "mountPath": "/by-pod", "subPathExpr": "$(POD)/x"},
    ]
    pod = await make_pod(client, "subpaths", [{"name": "cfg", "configMap": {"name": "sub"}},
                                              {"name": "work", "emptyDir": {}}],
                         mounts=mounts, automountServiceAccountToken=False)
    container = dict(pod["spec"]["containers"][0], env=[{"name": "POD", "value": "p1"}])
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    paths = await vm.setup(pod)
    got = vm.mounts_for(pod, container, paths)
    ts = os.readlink(paths["cfg"] / "..data")
    assert got == [
        {"container_path": "/etc/one", "host_path": str(paths["cfg"] / ts / "one"), "readonly": True,
         "propagation": 0, "sub_path": "one"},
        {"container_path": "/work", "host_path": str(paths["work"]), "readonly": True, "propagation": 0,
         "sub_path": ""},
        {"container_path": "/logs", "host_path": str(paths["work"] / "logs" / "app"), "readonly": False,
         "propagation": 1, "sub_path": "logs/app"},
        {"container_path": "/by-pod", "host_path": str(paths["work"] / "p1" / "x"), "readonly": False,
         "propagation": 0, "sub_path": "p1/x"},
    ]
    assert (paths["work"] / "logs" / "app").is_dir()
    # A symlink planted in a volume must not lead out of it; '..' is refused outright.
    os.symlink("/etc", paths["work"] / "escape")
    for sub in ("escape", "../x"):
        bad = dict(container, volumeMounts=[{"name": "work", "mountPath": "/x", "subPath": sub}])
        with pytest.raises(VolumeError):
            vm.mounts_for(pod, bad, paths)
    await vm.teardown(pod["metadata"]["uid"])
    assert os.path.isdir("/etc")
    assert list((tmp_path / "pods").iterdir()) == []


async def test_token_for_missing_service_account(srv: ServerProcess, client: Client, tmp_path: Path) -> None:
    # A pod may only be created with an account that exists (ServiceAccount admission): the account
    # goes away after the pod is made, as it may in a real cluster.
    await client.create("v1", "serviceaccounts", {"metadata": {"name": "ghost"}}, NS)
    pod = await make_pod(client, "nosa", [{"name": "tok", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 600, "audience": "vault"}}]}}],
        automountServiceAccountToken=False, serviceAccountName="ghost")
    await client.delete("v1", "serviceaccounts", "ghost", NS)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    with pytest.raises(VolumeError, match="failed to fetch token"):
        await vm.setup(pod)
    await client.create("v1", "serviceaccounts", {"metadata": {"name": "ghost"}}, NS)
    paths = await vm.setup(pod)
    token = read(paths["tok"] / "token")
    # A token for another audience is not accepted by the API server.
    assert token.count(".") == 2
    assert api_get_with_token(srv, token) == 401
    await vm.teardown(pod["metadata"]["uid"])
