"""API semantics that clients rely on: status vs spec, generation, dry-run, field validation, CRD versions."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration


def _deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": name}},
                     "template": {"metadata": {"labels": {"a": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def test_status_and_spec_are_written_through_their_own_endpoints(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment(namespace, _deployment("split"))
    assert d.metadata.generation == 1
    # Status sent to the main resource is ignored...
    body = api.sanitize_for_serialization(d)
    body["status"] = {"replicas": 7}
    body["metadata"]["labels"] = {"touched": "yes"}
    d2 = apps.replace_namespaced_deployment("split", namespace, body)
    assert (d2.status.replicas or 0) == 0 and d2.metadata.generation == 1  # metadata-only change: no bump
    # ...and spec sent to /status is ignored, while status is taken.
    body = api.sanitize_for_serialization(d2)
    body["spec"]["replicas"] = 5
    body["status"] = {"replicas": 3, "observedGeneration": 1}
    d3 = apps.replace_namespaced_deployment_status("split", namespace, body)
    assert d3.spec.replicas == 1 and d3.status.replicas == 3 and d3.metadata.generation == 1
    d4 = apps.patch_namespaced_deployment("split", namespace, {"spec": {"replicas": 2}})
    assert d4.metadata.generation == 2 and d4.status.replicas == 3


def test_dry_run_on_every_write(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}, "data": {"a": "1"}})
    rv = cm.metadata.resource_version
    patched = core.patch_namespaced_config_map("dry", namespace, {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    cm.data = {"a": "3"}
    replaced = core.replace_namespaced_config_map("dry", namespace, cm, dry_run="All")
    assert replaced.data == {"a": "3"}
    core.delete_namespaced_config_map("dry", namespace, dry_run="All")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry2"}}, dry_run="All")
    now = core.read_namespaced_config_map("dry", namespace)
    assert now.data == {"a": "1"} and now.metadata.resource_version == rv
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("dry2", namespace)
    assert e.value.status == 404


def test_delete_preconditions(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "pre"}})
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("pre", namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="00000000-0000-0000-0000-000000000000")))
    assert e.value.status == 409
    core.delete_namespaced_config_map("pre", namespace, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=cm.metadata.uid, resource_version=cm.metadata.resource_version)))


def test_field_validation_warn_and_strict(server: ServerProcess, namespace: str) -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fv}\ndata: {a: b}\nbogus: 1\n"
    strict = server.kubectl("-n", namespace, "apply", "-f", "-", input=doc, check=False)
    assert strict.returncode != 0 and 'unknown field "bogus"' in strict.stderr
    warn = server.kubectl("-n", namespace, "apply", "--validate=warn", "-f", "-", input=doc)
    assert 'unknown field "bogus"' in warn.stderr
    assert server.kubectl("-n", namespace, "get", "cm", "fv", "-o", "jsonpath={.data.a}").stdout == "b"


def test_crd_versions_scale_and_status(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: widgets, singular: widget, kind: Widget}
          versions:
          - name: v1beta1
            served: true
            storage: false
            schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
          - name: v1
            served: true
            storage: true
            subresources:
              status: {}
              scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas,
                      labelSelectorPath: .status.selector}
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  spec:
                    type: object
                    properties:
                      replicas: {type: integer}
                      color: {type: string, enum: [red, blue]}
                  status:
                    type: object
                    properties:
                      replicas: {type: integer}
                      selector: {type: string}
        """))
    k("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
    deadline = time.time() + 10
    while k("get", "widgets.v1beta1.example.com", "-n", namespace, check=False).returncode != 0:
        assert time.time() < deadline
        time.sleep(0.2)
    k("-n", namespace, "apply", "-f", "-",
      input="apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w}\nspec: {replicas: 1, color: red}\n")
    as_v1 = json.loads(k("-n", namespace, "get", "widgets.v1.example.com", "w", "-o", "json").stdout)
    assert as_v1["apiVersion"] == "example.com/v1" and as_v1["spec"]["color"] == "red"
    k("-n", namespace, "scale", "widget", "w", "--replicas=4")
    assert k("-n", namespace, "get", "widget", "w", "-o", "jsonpath={.spec.replicas}").stdout == "4"
    bad = k("-n", namespace, "patch", "widget", "w", "--type=merge", "-p", '{"spec":{"color":"green"}}', check=False)
    assert bad.returncode != 0 and "Unsupported value" in bad.stderr
    k("-n", namespace, "patch", "widget", "w", "--subresource=status", "--type=merge",
      "-p", '{"status":{"replicas":4,"selector":"app=w"}}')
    obj = json.loads(k("-n", namespace, "get", "widget", "w", "-o", "json").stdout)
    assert obj["status"]["replicas"] == 4 and obj["metadata"]["generation"] == 2
    k("delete", "crd", "widgets.example.com", "--timeout=20s")
    # Re-creating the CRD finds none of the old objects.
    k("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {plural: widgets, singular: widget, kind: Widget}
          versions:
          - name: v1
            served: true
            storage: true
            schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
        """))
    k("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")
    deadline = time.time() + 10
    while True:
        res = k("-n", namespace, "get", "widgets", "-o", "name", check=False)
        if res.returncode == 0:
            assert res.stdout.strip() == ""
            break
        assert time.time() < deadline
        time.sleep(0.2)
    k("delete", "crd", "widgets.example.com", "--timeout=20s")
