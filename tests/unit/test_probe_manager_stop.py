"""ProbeManager ends its workers even when a cancellation is lost.

Python 3.11's ``asyncio.wait_for`` returns the result, and drops the cancellation, when the task
is cancelled after the call it guards has finished but before ``wait_for`` has woken up. The exec
probe runs ExecSync under ``wait_for``; a worker that lost its cancellation that way used to probe
forever, and ``ProbeManager.stop()`` (which waits for every worker) never returned.
"""

from __future__ import annotations

import asyncio

from kybernetes.kubelet.probes import ProbeManager

POD = {"metadata": {"uid": "u1", "name": "p", "namespace": "t"},
       "spec": {"containers": [{"name": "c", "livenessProbe": {
           "exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 3}}]}}


async def test_a_worker_whose_cancellation_wait_for_dropped_still_ends() -> None:
    calls = 0
    pm: ProbeManager

    async def exec_sync(container_id: str, command: list[str], timeout: int) -> tuple[int, bytes, bytes]:
        nonlocal calls
        calls += 1
        # The container goes away while this ExecSync finishes: the worker is cancelled while it
        # waits inside wait_for, after the call is done, which is when wait_for drops the cancel.
        pm.remove_container("u1", "c")
        return 0, b"", b""

    pm = ProbeManager(exec_sync, lambda *args: None)
    pm.add(POD, "c", "cid", "10.0.0.1")
    await asyncio.wait_for(pm.stop(), 5)  # returned: every worker has ended
    assert calls == 1
