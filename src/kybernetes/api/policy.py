"""PodDisruptionBudget status rules shared by the eviction subresource and the disruption controller.

Both write a budget's status (the controller recomputes it, an approved eviction spends one
disruption), so both keep its ``DisruptionAllowed`` condition by the same rule, Kubernetes'
``updateDisruptionAllowedCondition`` with ``meta.SetStatusCondition``'s transition-time handling.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339


def set_disruption_allowed_condition(status: Obj) -> None:
    """The budget's DisruptionAllowed condition from its disruptionsAllowed (SetStatusCondition rules)."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    want: dict[str, Any] = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
            "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
            "observedGeneration": int(status.get("observedGeneration") or 0)}
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for i, c in enumerate(conds):
        if c.get("type") == "DisruptionAllowed":
            # The transition time only moves when the status flips.
            want["lastTransitionTime"] = c.get("lastTransitionTime") if c.get("status") == want["status"] else now_rfc3339()
            conds[i] = want
            break
    else:
        want["lastTransitionTime"] = now_rfc3339()
        conds.append(want)
    status["conditions"] = conds
