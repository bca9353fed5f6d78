"""Disruption controller: the status of every PodDisruptionBudget.

Kubernetes' ``pkg/controller/disruption`` computes, for each budget, from the pods its selector
matches in its namespace (policy/v1: an empty selector matches all of them, a missing one none):

* ``expectedPods`` - with ``minAvailable`` as a number, simply the number of matching pods;
  with a percentage or ``maxUnavailable``, the sum of the desired replicas of the pods'
  controllers (ReplicaSet - or the Deployment owning it -, ReplicationController, StatefulSet),
  each controller counted once; pods without a known controller count one each;
* ``desiredHealthy`` - ``minAvailable`` (a percentage of ``expectedPods`` rounded up), or
  ``expectedPods - maxUnavailable`` (a percentage rounded up), never below zero;
* ``currentHealthy`` - matching pods that are Ready, not terminating, and not in
  ``disruptedPods`` (pods the eviction subresource just approved for deletion);
* ``disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`` (0 while nothing is expected);
* ``observedGeneration``, and the ``DisruptionAllowed`` condition (``SufficientPods`` /
  ``InsufficientPods``).

``disruptedPods`` entries are dropped once their pod is gone or terminating, or after
``pdb-deletion-timeout`` seconds (2 minutes, as Kubernetes) if the pod never went - the budget is
then re-synced when that time comes. A pod change re-syncs the budgets whose selector matched it
before or after. The status is written through ``/status`` only when it changed, as a
compare-and-swap (the eviction subresource writes the same status).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready
from kybernetes.api.policy import set_disruption_allowed_condition
from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.deployment_util import scaled_value
from kybernetes.controllers.podutil import controller_ref

log = logging.getLogger(__name__)

# Controllers whose desired replica count stands for the pods they own: kind -> (apiVersion, plural).
SCALABLE = {
    ("apps", "ReplicaSet"): ("apps/v1", "replicasets"),
    ("apps", "StatefulSet"): ("apps/v1", "statefulsets"),
    ("apps", "Deployment"): ("apps/v1", "deployments"),
    ("", "ReplicationController"): ("v1", "replicationcontrollers"),
}


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _selector(pdb: Obj) -> LabelSelector | None:
    try:
        return from_label_selector_object(_d(pdb.get("spec")).get("selector"), none_matches=False)
    except errors.StatusError:
        return None


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class DisruptionController(Controller):
    name = "disruption-controller"
    queue_name = "disruption"
    service_account = "disruption-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deletion_timeout = float(ctx.option("pdb-deletion-timeout", 120.0))
        self.pdbs = self.informer("policy/v1", "poddisruptionbudgets")
        self.pods = self.informer("v1", "pods")
        self.pdbs.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))
        self.pods.add_handler(on_add=self._pod_event, on_update=self._pod_updated, on_delete=self._pod_event)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_event(new)
        if _d(old.get("metadata")).get("labels") != _d(new.get("metadata")).get("labels"):
            self._pod_event(old)

    def _pod_event(self, pod: Obj) -> None:
        meta = _d(pod.get("metadata"))
        labels = _d(meta.get("labels"))
        for pdb in self.pdbs.store.by_index("namespace", meta.get("namespace") or ""):
            sel = _selector(pdb)
            if sel is not None and sel.matches(labels):
                self.enqueue(pdb)

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.store.get(key)
        if pdb is None:
            return
        ns = pdb["metadata"]["namespace"]
        sel = _selector(pdb)
        pods = [] if sel is None else [
            p for p in self.pods.store.by_index("namespace", ns) if sel.matches(_d(p["metadata"].get("labels")))]
        spec = _d(pdb.get("spec"))
        expected, desired = await self._expected_and_desired(spec, pods)
        now = dt.datetime.now(dt.UTC)
        disrupted, recheck = self._disrupted(pdb, pods, now)
        healthy = sum(1 for p in pods
                      if not p["metadata"].get("deletionTimestamp")
                      and p["metadata"]["name"] not in disrupted and is_pod_ready(p))
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        old = _d(pdb.get("status"))
        status = {k: val for k, val in old.items() if k not in ("disruptedPods",)}
        status.update(currentHealthy=healthy, desiredHealthy=desired, expectedPods=expected,
                      disruptionsAllowed=allowed,
                      observedGeneration=int(pdb["metadata"].get("generation") or 0))
        if disrupted:
            status["disruptedPods"] = disrupted
        set_disruption_allowed_condition(status)
        if status != old:
            try:
                await self.client.update("policy/v1", "poddisruptionbudgets", {**pdb, "status": status}, ns,
                                         subresource="status")
            except errors.Conflict:
                self.queue.add(key)  # an eviction spent the budget meanwhile: recompute
                return
            except errors.NotFound:
                return
        if recheck is not None:
            self.queue.add_after(key, recheck)

    def _disrupted(self, pdb: Obj, pods: list[Obj], now: dt.datetime) -> tuple[dict[str, str], float | None]:
        """The still-pending entries of disruptedPods, and when the next one expires."""
        by_name = {p["metadata"]["name"]: p for p in pods}
        out: dict[str, str] = {}
        recheck: float | None = None
        for name, stamp in _d(_d(pdb.get("status")).get("disruptedPods")).items():
            pod = by_name.get(name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                continue
            at = parse_rfc3339(stamp)
            if at is None:
                continue
            left = (at + dt.timedelta(seconds=self.deletion_timeout) - now).total_seconds()
            if left <= 0:
                log.info("pdb %s: pod %s was approved for eviction but not deleted", pdb["metadata"]["name"], name)
                continue
            out[name] = stamp
            recheck = left if recheck is None else min(recheck, left)
        return out, recheck

    async def _expected_and_desired(self, spec: Obj, pods: list[Obj]) -> tuple[int, int]:
        min_available = spec.get("minAvailable")
        max_unavailable = spec.get("maxUnavailable")
        if max_unavailable is not None:
            expected = await self._expected_scale(pods)
            unavailable = scaled_value(max_unavailable, expected, True)
            return expected, max(0, expected - unavailable)
        if min_available is not None:
            if isinstance(min_available, int):
                return len(pods), min_available
            expected = await self._expected_scale(pods)
            return expected, scaled_value(min_available, expected, True)
        return len(pods), 0

    async def _expected_scale(self, pods: list[Obj]) -> int:
        """The sum of the desired replicas of the pods' controllers (each once)."""
        total = 0
        seen: set[str] = set()
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                total += 1
                continue
            replicas = await self._replicas(pod["metadata"]["namespace"], ref, seen)
            total += 1 if replicas is None else replicas
        return total

    async def _replicas(self, ns: str, ref: Obj, seen: set[str]) -> int | None:
        """Desired replicas of the controller ``ref`` (0 if already counted, None if unknown)."""
        kind = (_group(str(ref.get("apiVersion") or "")), str(ref.get("kind") or ""))
        target = SCALABLE.get(kind)
        if target is None:
            return None
        try:
            owner = await self.client.get(target[0], target[1], str(ref.get("name")), ns)
        except errors.NotFound:
            return None
        if owner["metadata"].get("uid") != ref.get("uid"):
            return None
        if kind == ("apps", "ReplicaSet"):
            # A Deployment's ReplicaSets share the Deployment's scale.
            parent = controller_ref(owner)
            if parent is not None and (_group(str(parent.get("apiVersion") or "")), parent.get("kind")) == (
                    "apps", "Deployment"):
                up = await self._replicas(ns, parent, seen)
                if up is not None:
                    return up
        uid = str(owner["metadata"].get("uid"))
        if uid in seen:
            return 0
        seen.add(uid)
        replicas = _d(owner.get("spec")).get("replicas")
        return int(replicas) if isinstance(replicas, int) else 1


CONTROLLERS: list[type[Controller]] = [DisruptionController]
