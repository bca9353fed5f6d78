"""Static pod manifests: parsing, identity across scans and edits, and mirror pods in a real API server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kybernetes.client.rest import Client
from kybernetes.kubelet.staticpods import (
    CONFIG_HASH,
    CONFIG_MIRROR,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    StaticPodSource,
    is_mirror,
    is_static,
)

WEB = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: busybox:1.36
    command: [httpd, -f, -p, "8080"]
"""


def write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.write_text(text)
    return p


def test_scan_parses_defaults_and_names(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", WEB)
    write(tmp_path, "etcd.json", json.dumps({"apiVersion": "v1", "kind": "Pod",
                                             "metadata": {"name": "etcd", "namespace": "kube-system"},
                                             "spec": {"containers": [{"name": "etcd", "image": "etcd:3"}]}}))
    write(tmp_path, ".web.yaml.swp", "garbage")
    write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: Pod\nspec: [")
    write(tmp_path, "service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    (tmp_path / "subdir").mkdir()
    source = StaticPodSource(tmp_path, "Node-A")
    pods = {p["metadata"]["name"]: p for p in source.scan()}
    assert set(pods) == {"web-node-a", "etcd-node-a"}
    assert set(source.errors) == {str(tmp_path / "broken.yaml"), str(tmp_path / "service.yaml")}
    web = pods["web-node-a"]
    meta = web["metadata"]
    assert meta["namespace"] == "default" and pods["etcd-node-a"]["metadata"]["namespace"] == "kube-system"
    assert meta["labels"] == {"app": "web"}
    assert len(meta["uid"]) == 32 and meta["annotations"][CONFIG_HASH] == meta["uid"]
    assert meta["annotations"][CONFIG_SOURCE] == "file" and meta["annotations"][CONFIG_SEEN]
    assert web["spec"]["nodeName"] == "Node-A"
    assert web["spec"]["restartPolicy"] == "Always" and web["spec"]["terminationGracePeriodSeconds"] == 30
    assert web["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert {"operator": "Exists", "effect": "NoExecute"} in web["spec"]["tolerations"]
    assert is_static(web) and not is_mirror(web)
    assert web["status"] == {"phase": "Pending"}


def test_uid_stable_across_scans_and_changes_with_content(tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", WEB)
    source = StaticPodSource(tmp_path, "node-a")
    first = source.scan()[0]
    again = source.scan()[0]
    assert first == again  # config.seen included: re-scanning is not a change
    # Another source (a kubelet restart) derives the same uid; another node a different one.
    assert StaticPodSource(tmp_path, "node-a").scan()[0]["metadata"]["uid"] == first["metadata"]["uid"]
    assert StaticPodSource(tmp_path, "node-b").scan()[0]["metadata"]["uid"] != first["metadata"]["uid"]
    path.write_text(WEB.replace("busybox:1.36", "busybox:1.37"))
    changed = source.scan()[0]
    assert changed["metadata"]["uid"] != first["metadata"]["uid"]
    assert changed["metadata"]["name"] == first["metadata"]["name"]
    path.unlink()
    assert source.scan() == []
    assert StaticPodSource(tmp_path / "missing", "node-a").scan() == []


@pytest.mark.integration
async def test_mirror_pod_is_accepted_by_the_api_server(client: Client, tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", WEB)
    source = StaticPodSource(tmp_path, "node-a")
    pod = source.scan()[0]
    node = await client.create("v1", "nodes", {"metadata": {"name": "node-a"}})
    mirror = source.mirror_of(pod, node["metadata"]["uid"])
    assert "uid" not in mirror["metadata"] and "status" not in mirror
    created = await client.create("v1", "pods", mirror, "default")
    meta = created["metadata"]
    assert meta["name"] == "web-node-a" and meta["uid"] != pod["metadata"]["uid"]
    assert meta["annotations"][CONFIG_MIRROR] == pod["metadata"]["uid"]
    assert meta["annotations"][CONFIG_HASH] == pod["metadata"]["uid"]
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "node-a",
                                        "uid": node["metadata"]["uid"], "controller": True}]
    assert created["spec"]["nodeName"] == "node-a"
    assert not created["spec"].get("volumes")  # mirror pods get no service-account token
    assert is_mirror(created) and is_static(created)
    # The source pod was not modified by building its mirror.
    assert CONFIG_MIRROR not in pod["metadata"]["annotations"]
