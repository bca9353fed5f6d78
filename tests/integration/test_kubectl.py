"""The stock kubectl against a real ``kyb server`` process: the everyday commands, end to end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


def test_api_resources_and_versions(server: ServerProcess) -> None:
    out = server.kubectl("api-resources").stdout
    for line in ("pods", "deployments", "customresourcedefinitions", "leases", "endpointslices"):
        assert line in out
    assert "deploy" in out and "apps/v1" in out
    versions = server.kubectl("api-versions").stdout.split()
    assert "apps/v1" in versions and "v1" in versions and "batch/v1" in versions
    ver = json.loads(server.kubectl("version", "-o", "json").stdout)
    assert ver["serverVersion"]["minor"] == "32"


def test_create_get_output_formats(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=DEPLOYMENT)
    obj = json.loads(k("-n", namespace, "get", "deployment", "web", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted by the server
    assert obj["metadata"]["generation"] == 1
    assert yaml.safe_load(k("-n", namespace, "get", "deploy", "web", "-o", "yaml").stdout)["kind"] == "Deployment"
    assert k("-n", namespace, "get", "deploy", "-o", "name").stdout.strip() == "deployment.apps/web"
    assert k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout == "nginx:1.25"
    cc = k("-n", namespace, "get", "deploy", "-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas").stdout
    assert cc.split() == ["NAME", "REPLICAS", "web", "2"]
    table = k("-n", namespace, "get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = k("-n", namespace, "get", "deploy", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "nginx:1.25" in wide[1] and "app=web" in wide[1]
    everything = k("-n", namespace, "get", "all").stdout
    assert "deployment.apps/web" in everything
    across = k("get", "deploy", "-A").stdout
    assert namespace in across


def test_apply_client_side_is_idempotent_and_updates(server: ServerProcess, namespace: str, tmp_path: Path) -> None:
    k = server.kubectl
    f = tmp_path / "d.yaml"
    f.write_text(DEPLOYMENT)
    assert "created" in k("-n", namespace, "apply", "-f", str(f)).stdout
    rv1 = k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    assert "unchanged" in k("-n", namespace, "apply", "-f", str(f)).stdout
    rv2 = k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    assert rv1 == rv2
    f.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26").replace("replicas: 2", "replicas: 3"))
    diff = k("-n", namespace, "diff", "-f", str(f), check=False)
    assert diff.returncode == 1 and "nginx:1.26" in diff.stdout
    assert "configured" in k("-n", namespace, "apply", "-f", str(f)).stdout
    obj = json.loads(k("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["generation"] == 2
    assert k("-n", namespace, "diff", "-f", str(f), check=False).returncode == 0
    # A container removed from the manifest goes from the object (three-way merge).
    two = DEPLOYMENT.replace("        ports:\n        - containerPort: 80\n",
                             "      - name: side\n        image: busybox\n")
    f.write_text(two)
    k("-n", namespace, "apply", "-f", str(f))
    names = k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}").stdout
    assert names.split() == ["nginx", "side"]
    f.write_text(DEPLOYMENT)
    k("-n", namespace, "apply", "-f", str(f))
    names = k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}").stdout
    assert names.split() == ["nginx"]


def test_apply_server_side_and_conflicts(server: ServerProcess, namespace: str, tmp_path: Path) -> None:
    k = server.kubectl
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n  b: '2'\n")
    assert "serverside-applied" in k("-n", namespace, "apply", "--server-side", "-f", str(f)).stdout
    assert "serverside-applied" in k("-n", namespace, "apply", "--server-side", "-f", str(f)).stdout
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n")
    k("-n", namespace, "apply", "--server-side", "-f", str(f))
    data = json.loads(k("-n", namespace, "get", "cm", "ssa", "-o", "json").stdout)["data"]
    assert data == {"a": "1"}  # b was owned by this manager only, so it went
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: 'changed'\n")
    res = k("-n", namespace, "apply", "--server-side", "--field-manager", "other", "-f", str(other), check=False)
    assert res.returncode != 0 and "conflict" in res.stderr.lower()
    k("-n", namespace, "apply", "--server-side", "--force-conflicts", "--field-manager", "other", "-f", str(other))
    assert json.loads(k("-n", namespace, "get", "cm", "ssa", "-o", "json").stdout)["data"]["a"] == "changed"
    mf = json.loads(k("-n", namespace, "get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    managers = {m["manager"] for m in mf["metadata"]["managedFields"]}
    assert "other" in managers


def test_patch_label_annotate_edit(server: ServerProcess, namespace: str, tmp_path: Path) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=DEPLOYMENT)
    k("-n", namespace, "patch", "deploy", "web", "-p", '{"spec":{"replicas":5}}')
    k("-n", namespace, "patch", "deploy", "web", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    k("-n", namespace, "patch", "deploy", "web", "--type=json",
      "-p", '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.27"}]')
    k("-n", namespace, "patch", "deploy", "web", "-p",
      '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"A","value":"1"}]}]}}}}')
    obj = json.loads(k("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert obj["spec"]["replicas"] == 5 and obj["metadata"]["labels"]["tier"] == "front"
    assert c["image"] == "nginx:1.27" and c["env"] == [{"name": "A", "value": "1"}]
    assert c["ports"][0]["containerPort"] == 80  # strategic merge kept the rest of the container
    k("-n", namespace, "label", "deploy", "web", "color=blue")
    k("-n", namespace, "annotate", "deploy", "web", "note=hello")
    k("-n", namespace, "label", "deploy", "web", "tier-")
    meta = json.loads(k("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)["metadata"]
    assert meta["labels"].get("color") == "blue" and "tier" not in meta["labels"]
    assert meta["annotations"]["note"] == "hello"
    assert k("-n", namespace, "get", "deploy", "-l", "color=blue", "-o", "name").stdout.strip() == "deployment.apps/web"
    assert k("-n", namespace, "get", "deploy", "-l", "color=red", "-o", "name").stdout.strip() == ""
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 5/replicas: 7/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    k("-n", namespace, "edit", "deploy", "web", env={"EDITOR": str(editor), "KUBE_EDITOR": str(editor)})
    assert k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "7"
    k("-n", namespace, "scale", "deploy", "web", "--replicas=1")
    assert k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "1"


def test_describe_and_explain(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=DEPLOYMENT)
    out = k("-n", namespace, "describe", "deployment", "web").stdout
    assert "Name:" in out and "web" in out and "nginx:1.25" in out
    explain = k("explain", "deployment.spec.replicas").stdout
    assert "replicas" in explain and "integer" in explain
    explain = k("explain", "pods.spec.containers", "--recursive").stdout
    assert "image" in explain


def test_delete_wait_and_watch(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    env = dict(os.environ, KUBECONFIG=str(server.kubeconfig))
    watcher = subprocess.Popen([KUBECTL, "-n", namespace, "get", "configmaps", "-w", "--request-timeout=20s"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    assert watcher.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or []), daemon=True)
    reader.start()
    try:
        # No wait for the watch to start: `get -w` lists, then watches from the list's version, so
        # w1 shows whether it was created before the list or after.
        k("-n", namespace, "create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w1\n")
        k("-n", namespace, "wait", "--for=jsonpath={.metadata.name}=w1", "configmap/w1", "--timeout=10s")
        k("-n", namespace, "delete", "configmap", "w1", "--wait=true")
        k("-n", namespace, "wait", "--for=delete", "configmap/w1", "--timeout=10s")
        deadline = time.time() + 10
        while not any("w1" in line for line in list(lines)):
            assert time.time() < deadline and watcher.poll() is None, f"the watch did not show w1: {lines}"
            time.sleep(0.05)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        reader.join(10)
        for pipe in (watcher.stdout, watcher.stderr):
            if pipe is not None:
                pipe.close()


def test_delete_with_finalizers(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: fin
          finalizers: [example.com/hold]
        """))
    k("-n", namespace, "delete", "cm", "fin", "--wait=false")
    obj = json.loads(k("-n", namespace, "get", "cm", "fin", "-o", "json").stdout)
    assert obj["metadata"]["deletionTimestamp"]
    k("-n", namespace, "patch", "cm", "fin", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    res = k("-n", namespace, "get", "cm", "fin", check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_dry_run_writes_nothing(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    out = k("-n", namespace, "create", "-f", "-", "--dry-run=server", "-o", "json", input=DEPLOYMENT).stdout
    assert json.loads(out)["spec"]["strategy"]["type"] == "RollingUpdate"
    res = k("-n", namespace, "get", "deploy", "web", check=False)
    assert res.returncode != 0


def test_custom_resource(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    crd = textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: crontabs.stable.example.com
        spec:
          group: stable.example.com
          scope: Namespaced
          names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
          versions:
          - name: v1
            served: true
            storage: true
            subresources: {status: {}}
            additionalPrinterColumns:
            - {name: Spec, type: string, jsonPath: .spec.cronSpec}
            - {name: Replicas, type: integer, jsonPath: .spec.replicas}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      cronSpec: {type: string}
                      image: {type: string}
                      replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
                  status:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true
        """)
    k("apply", "-f", "-", input=crd)
    k("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=10s")
    deadline = time.time() + 10
    while "crontabs" not in k("api-resources", "--api-group=stable.example.com").stdout:
        assert time.time() < deadline, "CRD not served within 10 s"
        time.sleep(0.2)
    obj = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: my-cron\nspec:\n  cronSpec: '* * * * */5'\n  image: my-image\n"
    k("-n", namespace, "apply", "-f", "-", input=obj)
    got = json.loads(k("-n", namespace, "get", "ct", "my-cron", "-o", "json").stdout)
    assert got["spec"]["replicas"] == 1  # defaulted from the schema
    table = k("-n", namespace, "get", "crontabs").stdout.splitlines()
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS"]
    assert "my-cron" in table[1]
    bad = k("-n", namespace, "apply", "-f", "-", check=False,
            input=obj.replace("my-cron", "bad").replace("image: my-image", "image: x\n  replicas: 50"))
    assert bad.returncode != 0 and "replicas" in bad.stderr
    k("-n", namespace, "patch", "ct", "my-cron", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    assert k("-n", namespace, "get", "ct", "my-cron", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    k("-n", namespace, "label", "ct", "my-cron", "x=y")
    explain = k("explain", "crontabs.spec").stdout
    assert "cronSpec" in explain
    k("delete", "crd", "crontabs.stable.example.com", "--timeout=20s")
    res = k("-n", namespace, "get", "crontabs", check=False)
    assert res.returncode != 0


def test_restart_keeps_everything(fresh_server: ServerProcess) -> None:
    k = fresh_server.kubectl
    k("create", "-f", "-", input=DEPLOYMENT)
    uid = k("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}").stdout
    svc_ip = k("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert fresh_server.stop() == 0
    restarted = ServerProcess.start(fresh_server.data_dir, port=fresh_server.port)
    try:
        assert restarted.kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}").stdout == uid
        assert restarted.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout == svc_ip
        mode = stat.S_IMODE(os.stat(restarted.kubeconfig).st_mode)
        assert mode == 0o600
    finally:
        restarted.stop()


def test_typed_create_commands_send_protobuf(server: ServerProcess, namespace: str) -> None:
    """kubectl's generator commands send Kubernetes protobuf bodies; they must work unchanged."""
    k = server.kubectl
    k("-n", namespace, "create", "configmap", "pb", "--from-literal=a=b")
    k("-n", namespace, "create", "secret", "generic", "pbs", "--from-literal=pw=x")
    k("-n", namespace, "create", "deployment", "pbd", "--image=nginx", "--replicas=3", "--port=80")
    k("-n", namespace, "create", "service", "clusterip", "pbsvc", "--tcp=80:8080")
    k("-n", namespace, "create", "job", "pbj", "--image=busybox", "--", "echo", "hi")
    k("-n", namespace, "create", "cronjob", "pbc", "--image=busybox", "--schedule=*/5 * * * *")
    k("-n", namespace, "create", "serviceaccount", "pbsa")
    k("-n", namespace, "create", "role", "pbr", "--verb=get", "--resource=pods")
    k("-n", namespace, "create", "rolebinding", "pbrb", "--role=pbr", "--serviceaccount=" + namespace + ":pbsa")
    k("create", "namespace", namespace + "-pb")
    assert k("-n", namespace, "get", "cm", "pb", "-o", "jsonpath={.data.a}").stdout == "b"
    assert k("-n", namespace, "get", "deploy", "pbd", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    assert k("-n", namespace, "get", "svc", "pbsvc", "-o", "jsonpath={.spec.ports[0].targetPort}").stdout == "8080"
    assert k("get", "ns", namespace + "-pb", "-o", "jsonpath={.status.phase}").stdout == "Active"
