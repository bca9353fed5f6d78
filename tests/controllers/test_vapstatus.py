"""The ValidatingAdmissionPolicy status controller against a real API server."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.controllers.vapstatus import ValidatingAdmissionPolicyStatusController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import run_controllers, wait_for

pytestmark = pytest.mark.integration
API, PLURAL = "admissionregistration.k8s.io/v1", "validatingadmissionpolicies"


def policy(expression: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "p"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                                "resources": ["configmaps"]}]},
        "validations": [{"expression": expression}]}}


async def test_status_follows_the_generation(srv: ServerProcess) -> None:
    async with run_controllers(srv, ValidatingAdmissionPolicyStatusController) as env:
        c = env.client
        await c.create(API, PLURAL, policy("true"))

        async def observed(generation: int) -> bool:
            status = (await c.get(API, PLURAL, "p")).get("status") or {}
            return status == {"observedGeneration": generation, "typeChecking": {}}

        await wait_for(lambda: observed(1), 10, "status of generation 1")
        p = await c.get(API, PLURAL, "p")
        p["spec"]["validations"] = [{"expression": "object.metadata.name != 'x'"}]
        await c.update(API, PLURAL, p)
        await wait_for(lambda: observed(2), 10, "status of generation 2")


TYPO = "ERROR: <input>:1:12: undefined field 'replicsa'\n | object.spec.replicsa > 1\n | ...........^\n"


async def test_expressions_are_type_checked_against_the_matched_kinds(srv: ServerProcess) -> None:
    """object typed by each matched kind's schema (apps/v1 Deployment and StatefulSet), params by
    the paramKind's (ConfigMap): a field neither has is a warning per kind, in cel-go's words;
    fixed, the warnings go."""
    body = {"apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "typed"}, "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"],
                                                "resources": ["statefulsets", "deployments", "deployments/scale"]}]},
        "validations": [
            {"expression": "object.spec.replicsa > 1", "messageExpression": "'max ' + params.dataa.max"},
            {"expression": "object.metadata.name.startsWith('a') && object.spec.template.spec.containers.all("
                           "c, c.image != '') && object.metadata.labels['x'] == params.data.x"}]}}
    async with run_controllers(srv, ValidatingAdmissionPolicyStatusController) as env:
        c = env.client
        await c.create(API, PLURAL, body)

        async def type_checking(generation: int) -> dict[str, Any] | None:
            status = (await c.get(API, PLURAL, "typed")).get("status") or {}
            return status.get("typeChecking") if status.get("observedGeneration") == generation else None

        async def checked(generation: int) -> bool:
            return await type_checking(generation) is not None

        await wait_for(lambda: checked(1), 10, "type checking of generation 1")
        dataa = "ERROR: <input>:1:16: undefined field 'dataa'\n | 'max ' + params.dataa.max\n | ...............^\n"
        assert await type_checking(1) == {"expressionWarnings": [
            {"fieldRef": "spec.validations[0].expression",
             "warning": f"apps/v1, Kind=Deployment: {TYPO}\napps/v1, Kind=StatefulSet: {TYPO}"},
            {"fieldRef": "spec.validations[0].messageExpression",
             "warning": f"apps/v1, Kind=Deployment: {dataa}\napps/v1, Kind=StatefulSet: {dataa}"}]}
        p = await c.get(API, PLURAL, "typed")
        p["spec"]["validations"][0] = {"expression": "object.spec.replicas > 1"}
        await c.update(API, PLURAL, p)
        await wait_for(lambda: checked(2), 10, "type checking of generation 2")
        assert await type_checking(2) == {}


async def test_custom_resources_are_checked_through_the_published_openapi(srv: ServerProcess) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.typed.example.com"},
           "spec": {"group": "typed.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer"}}}}}}}]}}
    async with run_controllers(srv, ValidatingAdmissionPolicyStatusController) as env:
        c = env.client
        await c.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)

        async def served() -> bool:
            try:
                await c.request("GET", "/openapi/v3/apis/typed.example.com/v1")
            except Exception:
                return False
            return True

        await wait_for(served, 10, "the CRD's OpenAPI")
        body = {"apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "widgets"}, "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": ["typed.example.com"], "apiVersions": ["v1"],
                                                    "operations": ["CREATE"], "resources": ["widgets"]}]},
            "validations": [{"expression": "object.spec.size < 10 && object.metadata.name != '' && object.spec.colour"}]}}
        await c.create(API, PLURAL, body)

        async def warnings() -> list[dict[str, str]] | None:
            status = (await c.get(API, PLURAL, "widgets")).get("status") or {}
            return (status.get("typeChecking") or {}).get("expressionWarnings") if "typeChecking" in status else None

        await wait_for(warnings, 10, "type checking of the widget policy")
        source = "object.spec.size < 10 && object.metadata.name != '' && object.spec.colour"
        assert await warnings() == [{"fieldRef": "spec.validations[0].expression", "warning": (
            "typed.example.com/v1, Kind=Widget: ERROR: <input>:1:67: undefined field 'colour'\n"
            f" | {source}\n | {'.' * 66}^\n")}]
