"""``spec.activeDeadlineSeconds``: a pod that has been active on the node longer fails
(``pkg/kubelet/active_deadline.go``).

The clock starts at ``status.startTime`` (the kubelet sets it when it first reports the pod). Once
``now - startTime >= activeDeadlineSeconds`` the kubelet records a Normal ``DeadlineExceeded`` event,
kills the pod's containers and writes phase Failed with reason ``DeadlineExceeded`` and message
"Pod was active on the node longer than the specified deadline".
"""

from __future__ import annotations

import time

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import parse_epoch

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"


def remaining(pod: Obj, now: float | None = None) -> float | None:
    """Seconds until the pod's deadline (<= 0: exceeded); None without a deadline or a start time."""
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = (pod.get("status") or {}).get("startTime")
    if deadline is None or not started:
        return None
    start = parse_epoch(started)
    if start is None:
        return None
    return start + int(deadline) - (time.time() if now is None else now)


def exceeded(pod: Obj, now: float | None = None) -> bool:
    left = remaining(pod, now)
    return left is not None and left <= 0
