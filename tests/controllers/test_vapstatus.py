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
