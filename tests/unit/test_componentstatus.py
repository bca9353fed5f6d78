"""ComponentStatus health from leader-election Leases (the scheduler's and controller manager's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kybernetes.apiserver.componentstatus import lease_condition

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def lease(holder: str = "node-1_abc", renewed_ago: float = 5, duration: int = 15) -> dict[str, Any]:
    renew = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"namespace": "kube-system", "name": "kube-scheduler"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renew}}


@pytest.mark.parametrize(("obj", "condition"), [
    (lease(), {"type": "Healthy", "status": "True", "message": "ok"}),
    (lease(renewed_ago=15), {"type": "Healthy", "status": "True", "message": "ok"}),
    (lease(renewed_ago=45), {"type": "Healthy", "status": "False",
                             "error": "lease kube-system/kube-scheduler held by node-1_abc expired 30s ago"}),
    (lease(holder=""), {"type": "Healthy", "status": "False",
                        "error": "lease kube-system/kube-scheduler has no holder: no instance is leading"}),
    (None, {"type": "Healthy", "status": "Unknown",
            "error": "no leader election lease: the component has not run"}),
])
def test_lease_condition(obj: dict[str, Any] | None, condition: dict[str, Any]) -> None:
    assert lease_condition(obj, NOW) == condition
