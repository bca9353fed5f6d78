"""The OpenAPI documents: shape kubectl relies on, self-contained refs, hashes and the cache."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.transport import openapi
from kybernetes.apiserver.transport.openapi_schemas import PATCH_TYPES

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                "image": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            },
        }
    },
}
CRONTAB = Resource("stable.example.com", "v1", "CronTab", "crontabs", short_names=("ct",), builtin=False)


def no_crds(group: str, version: str, kind: str) -> dict[str, Any] | None:
    return None


def crontab_schemas(group: str, version: str, kind: str) -> dict[str, Any] | None:
    return CRONTAB_SCHEMA if (group, version, kind) == ("stable.example.com", "v1", "CronTab") else None


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.builtin()


@pytest.fixture(scope="module")
def apps(catalogue: Catalogue) -> dict[str, Any]:
    return openapi.v3_group_version(catalogue, "apps", "v1", no_crds)


def _all_refs(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.add(v)
            else:
                _all_refs(v, out)
    elif isinstance(node, list):
        for x in node:
            _all_refs(x, out)
    return out


def supports_query_param_v3(doc: dict[str, Any], gvk: dict[str, str], param: str) -> bool:
    """kubectl's query_param_verifier_v3: the first PATCH op for the GVK decides."""
    for path in doc["paths"].values():
        op = path.get("patch")
        if op is None:
            continue
        ext = op.get("x-kubernetes-group-version-kind") or {}
        if (ext.get("group"), ext.get("version"), ext.get("kind")) != (gvk["group"], gvk["version"], gvk["kind"]):
            continue
        return any(p.get("name") == param and p.get("in") == "query" for p in op.get("parameters", []))
    return False


def test_document_header(apps: dict[str, Any]) -> None:
    assert apps["openapi"] == "3.0.0"
    assert apps["info"] == {"title": "Kubernetes", "version": "v1.32.0"}


def test_deployment_component(apps: dict[str, Any]) -> None:
    schemas = apps["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["type"] == "object"
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["properties"]["apiVersion"] == {"description": dep["properties"]["apiVersion"]["description"],
                                               "type": "string"}
    assert dep["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert "io.k8s.api.apps.v1.DeploymentList" in schemas
    for meta in ("Status", "DeleteOptions", "Patch", "WatchEvent", "ObjectMeta"):
        assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{meta}" in schemas
    # Cross-group kinds used by subresources are included.
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas


def test_special_types(apps: dict[str, Any]) -> None:
    schemas = apps["components"]["schemas"]
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string"
    assert {o["type"] for o in ios["oneOf"]} == {"integer", "string"}
    q = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert {o["type"] for o in q["oneOf"]} == {"string", "number"}
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["type"] == "string"


def test_no_json_schema_leftovers(apps: dict[str, Any]) -> None:
    text = orjson.dumps(apps).decode()
    assert "#/$defs/" not in text
    assert '"null"' not in text


def test_every_ref_resolves(catalogue: Catalogue) -> None:
    for key in openapi.v3_keys(catalogue):
        doc = openapi.v3_document(catalogue, key, crontab_schemas)
        assert doc is not None, key
        names = set(doc["components"]["schemas"])
        for ref in _all_refs(doc, set()):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.removeprefix("#/components/schemas/") in names, (key, ref)


def test_paths_and_operations(apps: dict[str, Any]) -> None:
    paths = apps["paths"]
    coll = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["get"]["operationId"] == "listAppsV1NamespacedDeployment"
    assert coll["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert coll["post"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"}
    assert "/apis/apps/v1/deployments" in paths
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {"get", "put", "patch", "delete", "parameters"} <= set(item)
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    patch = item["patch"]
    assert set(patch["requestBody"]["content"]) == set(PATCH_TYPES)
    assert {p["name"] for p in patch["parameters"]} == {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentStatus"
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    # Kubernetes' descriptions, word for word.
    assert [item[v]["description"] for v in ("get", "put", "patch", "delete")] == [
        "read the specified Deployment", "replace the specified Deployment",
        "partially update the specified Deployment", "delete a Deployment"]
    assert status["patch"]["description"] == "partially update status of the specified Deployment"


def test_cluster_scoped_paths(catalogue: Catalogue) -> None:
    doc = openapi.v3_group_version(catalogue, "rbac.authorization.k8s.io", "v1", no_crds)
    assert "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}" in doc["paths"]
    assert doc["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]["operationId"] == \
        "listRbacAuthorizationV1ClusterRole"


def test_field_validation_supported_for_every_builtin_gvk(catalogue: Catalogue) -> None:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in catalogue.all():
        if "patch" not in r.verbs:
            continue  # create-only kinds (Binding) have no PATCH operation to carry it
        doc = docs.get((r.group, r.version))
        if doc is None:
            doc = docs[(r.group, r.version)] = openapi.v3_group_version(catalogue, r.group, r.version, no_crds)
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        assert supports_query_param_v3(doc, gvk, "fieldValidation"), gvk
        # Every PATCH operation of the kind has it, whichever one kubectl meets first.
        for path in doc["paths"].values():
            op = path.get("patch")
            if op and op["x-kubernetes-action"] == "patch":
                assert any(p["name"] == "fieldValidation" for p in op["parameters"])


def test_index_hashes_stable_and_change_with_crd() -> None:
    cat = Catalogue.builtin()
    first = openapi.v3_index(cat, crontab_schemas)
    second = openapi.v3_index(cat, crontab_schemas)
    assert first == second
    url = first["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    h = url.split("=", 1)[1]
    assert len(h) == 128 and h == h.upper()
    assert {"api", "apis", "version", "api/v1", "apis/apps"} <= set(first["paths"])
    assert "apis/stable.example.com/v1" not in first["paths"]
    cat.add(CRONTAB)
    third = openapi.v3_index(cat, crontab_schemas)
    assert "apis/stable.example.com/v1" in third["paths"]
    assert third["paths"]["apis/apps/v1"] == first["paths"]["apis/apps/v1"]


def test_crd_schema_in_document() -> None:
    cat = Catalogue.builtin()
    cat.add(CRONTAB)
    doc = openapi.v3_document(cat, "apis/stable.example.com/v1", crontab_schemas)
    assert doc is not None
    schemas = doc["components"]["schemas"]
    ct = schemas["com.example.stable.v1.CronTab"]
    assert ct["x-kubernetes-group-version-kind"] == [{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}]
    assert ct["properties"]["spec"]["properties"]["replicas"]["maximum"] == 10
    assert ct["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert "com.example.stable.v1.CronTabList" in schemas
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    for ref in _all_refs(doc, set()):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert supports_query_param_v3(doc, {"group": "stable.example.com", "version": "v1", "kind": "CronTab"},
                                   "fieldValidation")
    item = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    assert item["get"]["operationId"] == "readStableExampleComV1NamespacedCronTab"
    # The caller's schema is not modified.
    assert "apiVersion" not in CRONTAB_SCHEMA["properties"]


def test_unknown_documents(catalogue: Catalogue) -> None:
    assert openapi.v3_document(catalogue, "apis/nope/v1", no_crds) is None
    assert openapi.v3_document(catalogue, "apis/apps/v9", no_crds) is None
    version = openapi.v3_document(catalogue, "version", no_crds)
    assert version is not None and "/version/" in version["paths"]


def test_v2_document(catalogue: Catalogue) -> None:
    doc = openapi.v2_document(catalogue, no_crds)
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    for ref in _all_refs(doc, set()):
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in defs, ref
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["consumes"] == list(PATCH_TYPES)
    assert patch["parameters"][0]["in"] == "body"
    assert any(p["name"] == "fieldValidation" and p["type"] == "string" for p in patch["parameters"])


def test_service_memoizes_and_rebuilds_only_changed() -> None:
    cat = Catalogue.builtin()
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    crd_version = [0]
    svc = openapi.OpenAPIService(cat, lambda g, v, k: schemas.get((g, v, k)), lambda: crd_version[0])
    idx = svc.index()
    built = svc.builds
    assert built == len(orjson.loads(idx.body)["paths"])
    apps = svc.document("apis/apps/v1")
    assert apps is not None and apps.hash in orjson.loads(idx.body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert svc.index() is idx and svc.builds == built
    assert svc.document("apis/nope/v1") is None

    cat.add(CRONTAB)
    schemas[("stable.example.com", "v1", "CronTab")] = CRONTAB_SCHEMA
    crd_version[0] += 1
    idx2 = svc.index()
    assert idx2.hash != idx.hash
    assert svc.builds == built + 2  # the new group and its version, nothing else
    assert svc.document("apis/apps/v1") == apps
    ct = svc.document("apis/stable.example.com/v1")
    assert ct is not None and b"com.example.stable.v1.CronTab" in ct.body

    # A schema-only change rebuilds just that group-version.
    schemas[("stable.example.com", "v1", "CronTab")] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    crd_version[0] += 1
    ct2 = svc.document("apis/stable.example.com/v1")
    assert ct2 is not None and ct2.hash != ct.hash
    assert svc.builds == built + 3
    assert svc.v2().etag.startswith('"')
