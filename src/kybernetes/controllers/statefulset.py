"""The StatefulSet controller (``pkg/controller/statefulset``).

A StatefulSet's pods have identities: ``<set>-<ordinal>`` for ordinals ``start .. start+replicas-1``
(``spec.ordinals.start``, default 0), each with its own PersistentVolumeClaims
``<claim template>-<set>-<ordinal>`` that outlive the pod. Labels on every pod:
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash`` (the name of the ControllerRevision the pod was made from).

Revisions: each distinct pod template is a ControllerRevision (see :mod:`.history`). The
*update revision* is the current template's; the *current revision* is the one all pods had when
the last rollout finished (``status.currentRevision``). A template equal to an older revision
reuses it with a new revision number.

One sync (``updateStatefulSet``, in Kubernetes' order):

1. claim pods and revisions; find or create the update revision;
2. sort pods into *replicas* (ordinal in range, by index) and *condemned* (out of range);
3. replace failed or succeeded replicas; create missing ones - PVCs first, then the pod, from the
   current revision's template below the partition and the update revision's at or above it;
   with ``OrderedReady`` stop at the first pod that is missing, terminating, or not Running and
   Ready, so ordinal N+1 is only created once N is ready (``Parallel`` does not wait);
4. delete condemned pods from the highest ordinal down, one at a time (``OrderedReady``) and only
   when every other pod is healthy; PVCs of scaled-down ordinals get the pod as owner when
   ``whenScaled: Delete`` (the garbage collector removes them with it);
5. ``RollingUpdate``: delete the highest-ordinal pod at or above ``partition`` that is not at the
   update revision, waiting for every pod to be healthy first (the recreated pod comes from the
   update revision); ``OnDelete`` leaves replacement to the user;
6. status, and when every pod is updated and ready the update revision becomes current;
   old revisions beyond ``revisionHistoryLimit`` that no pod uses are deleted.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.podutil import is_pod_terminal, is_running_and_ready
from kybernetes.api.selectors import LabelSelector, from_label_selector_object
from kybernetes.controllers import history
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.podutil import (
    claim_objects,
    controller_ref,
    int_field,
    is_pod_available,
    is_terminating,
    labels_of,
    matching_owners,
    meta,
    obj_key,
    owner_reference,
    pod_from_template,
    seconds_until_available,
    spec_of,
    status_of,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(pod: Obj, set_name: str) -> int | None:
    """The ordinal in ``<set>-<ordinal>``, or None if the name is not of that form."""
    name = str(meta(pod).get("name") or "")
    prefix = f"{set_name}-"
    if not name.startswith(prefix):
        return None
    tail = name[len(prefix):]
    return int(tail) if tail.isdigit() else None


def start_ordinal(sts: Obj) -> int:
    return int_field(spec_of(sts).get("ordinals") or {}, "start")


def claim_name(template: dict[str, Any], sts: Obj, ordinal: int) -> str:
    return f"{meta(template).get('name')}-{meta(sts).get('name')}-{ordinal}"


class StatefulSetController(Controller):
    name = "statefulset-controller"
    workers = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = self.informer("apps/v1", "statefulsets")
        self.pods = self.informer("v1", "pods")
        self.revisions = self.informer("apps/v1", "controllerrevisions")
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                              on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)

    # --- handlers ----------------------------------------------------------------------------

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        ns = meta(pod).get("namespace", "")
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{ns}/{ref.get('name')}")
            return
        for sts in matching_owners(pod, self.sets.store):
            self.enqueue(sts)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            self._pod_changed(old)
        self._pod_changed(new)

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.sets.store.get(key)
        if cached is None:
            return
        sts = copy.deepcopy(cached)
        ns, _ = split_key(key)
        try:
            selector = from_label_selector_object(spec_of(sts).get("selector"), none_matches=True)
        except errors.StatusError as e:
            self.recorder.event(sts, "Warning", "InvalidSelector", str(e))
            return
        candidates = [p for p in self.pods.store.by_index("namespace", ns)]
        pods = await claim_objects(self.client, sts, "apps/v1", "StatefulSet", selector, candidates, "v1", "pods",
                                   filter_fn=lambda p: ordinal_of(p, meta(sts)["name"]) is not None)
        revisions = await self._claim_revisions(sts, selector, ns)
        if is_terminating(sts):
            return
        current, update, collision = await self._get_revisions(sts, revisions)
        status = await self._update(sts, pods, current, update, collision)
        await self._write_status(sts, status)
        # Truncate history: keep what pods use and the current/update revisions.
        live = {labels_of(p).get(history.CONTROLLER_REVISION_HASH, "") for p in pods}
        live |= {meta(current)["name"], meta(update)["name"]}
        limit = int_field(spec_of(sts), "revisionHistoryLimit", 10)
        all_revs = [r for r in self._owned_revisions(sts, ns)]
        await history.truncate_history(self.client, all_revs, live, limit)

    def _owned_revisions(self, sts: Obj, ns: str) -> list[Obj]:
        uid = meta(sts).get("uid")
        return [r for r in self.revisions.store.by_index("namespace", ns)
                if (ref := controller_ref(r)) is not None and ref.get("uid") == uid]

    async def _claim_revisions(self, sts: Obj, selector: LabelSelector, ns: str) -> list[Obj]:
        candidates = self.revisions.store.by_index("namespace", ns)
        return await claim_objects(self.client, sts, "apps/v1", "StatefulSet", selector, candidates,
                                   "apps/v1", "controllerrevisions")

    async def _get_revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count) - ``getStatefulSetRevisions``."""
        revisions = history.sort_revisions(revisions)
        collision = int_field(status_of(sts), "collisionCount")
        data = history.template_patch(spec_of(sts).get("template") or {})
        labels = dict(((spec_of(sts).get("template") or {}).get("metadata") or {}).get("labels") or {})
        candidate = history.new_revision(sts, "apps/v1", "StatefulSet", data, labels,
                                         history.next_revision(revisions), collision)
        equal = history.find_equal_revisions(revisions, candidate)
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            # Back to an older template: that revision becomes the newest.
            update = await history.bump_revision(self.client, equal[-1], history.next_revision(revisions))
        else:
            update, collision = await history.create_revision(self.client, sts, candidate, collision,
                                                              "apps/v1", "StatefulSet")
        current_name = status_of(sts).get("currentRevision")
        current = next((r for r in revisions if meta(r).get("name") == current_name), None)
        return current or update, update, collision

    # --- the update loop ---------------------------------------------------------------------

    def _pod_for(self, sts: Obj, revision: Obj, ordinal: int) -> Obj:
        template = history.template_from_revision(revision)
        name = f"{meta(sts)['name']}-{ordinal}"
        pod = pod_from_template(template, sts, "apps/v1", "StatefulSet", name=name)
        labels = pod["metadata"].setdefault("labels", {})
        labels[POD_NAME_LABEL] = name
        labels[POD_INDEX_LABEL] = str(ordinal)
        labels[history.CONTROLLER_REVISION_HASH] = meta(revision)["name"]
        spec = pod["spec"]
        spec["hostname"] = name
        if spec_of(sts).get("serviceName"):
            spec["subdomain"] = spec_of(sts)["serviceName"]
        claims = spec_of(sts).get("volumeClaimTemplates") or []
        if claims:
            names = {meta(c).get("name") for c in claims}
            volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
            for c in claims:
                volumes.append({"name": meta(c).get("name"),
                                "persistentVolumeClaim": {"claimName": claim_name(c, sts, ordinal)}})
            spec["volumes"] = volumes
        return pod

    async def _create_claims(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        ns = meta(sts).get("namespace", "")
        policy = spec_of(sts).get("persistentVolumeClaimRetentionPolicy") or {}
        match_labels = (spec_of(sts).get("selector") or {}).get("matchLabels") or {}
        for tmpl in spec_of(sts).get("volumeClaimTemplates") or []:
            claim = copy.deepcopy(tmpl)
            claim.pop("status", None)
            cm = claim.setdefault("metadata", {})
            cm["name"] = claim_name(tmpl, sts, ordinal)
            cm["namespace"] = ns
            cm["labels"] = {**(cm.get("labels") or {}), **match_labels}
            if policy.get("whenDeleted") == "Delete":
                # The claim goes with the set (garbage collector), not with its pod.
                cm["ownerReferences"] = [owner_reference(sts, "apps/v1", "StatefulSet", controller=True)]
            claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
            try:
                await self.client.create("v1", "persistentvolumeclaims", claim, ns)
            except errors.AlreadyExists:
                pass

    async def _create_pod(self, sts: Obj, revision: Obj, ordinal: int) -> None:
        pod = self._pod_for(sts, revision, ordinal)
        await self._create_claims(sts, pod, ordinal)
        try:
            await self.client.create("v1", "pods", pod, meta(sts).get("namespace", ""))
        except errors.AlreadyExists:
            return
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {pod['metadata']['name']} in StatefulSet {meta(sts)['name']} successful")

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.client.delete("v1", "pods", meta(pod)["name"], meta(pod).get("namespace", ""))
        except errors.NotFound:
            return
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {meta(pod)['name']} in StatefulSet {meta(sts)['name']} successful")

    async def _condemn_claims(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """``whenScaled: Delete``: the claims of a scaled-away ordinal are owned by its pod."""
        policy = spec_of(sts).get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenScaled") != "Delete":
            return
        ns = meta(sts).get("namespace", "")
        for tmpl in spec_of(sts).get("volumeClaimTemplates") or []:
            name = claim_name(tmpl, sts, ordinal)
            try:
                claim = await self.client.get("v1", "persistentvolumeclaims", name, ns)
            except errors.NotFound:
                continue
            refs = [r for r in meta(claim).get("ownerReferences") or [] if r.get("uid") != meta(pod).get("uid")]
            refs.append(owner_reference(pod, "v1", "Pod", controller=False))
            try:
                await self.client.patch("v1", "persistentvolumeclaims", name,
                                        {"metadata": {"ownerReferences": refs}}, ns)
            except (errors.NotFound, errors.Conflict):
                pass

    async def _update(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collision: int) -> dict[str, Any]:
        spec = spec_of(sts)
        name = meta(sts)["name"]
        start = start_ordinal(sts)
        want = int_field(spec, "replicas", 1)
        min_ready = int_field(spec, "minReadySeconds")
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int_field(strategy.get("rollingUpdate") or {}, "partition") if rolling else 0
        cur_name, upd_name = meta(current)["name"], meta(update)["name"]

        status: dict[str, Any] = copy.deepcopy(status_of(sts))
        status.update(observedGeneration=int_field(meta(sts), "generation"), collisionCount=collision,
                      currentRevision=cur_name, updateRevision=upd_name)
        counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
                  "updatedReplicas": 0}
        for p in pods:
            counts["replicas"] += 1
            if is_running_and_ready(p):
                counts["readyReplicas"] += 1
                if is_pod_available(p, min_ready):
                    counts["availableReplicas"] += 1
            if not is_terminating(p):
                rev = labels_of(p).get(history.CONTROLLER_REVISION_HASH)
                if rev == cur_name:
                    counts["currentReplicas"] += 1
                if rev == upd_name:
                    counts["updatedReplicas"] += 1
        status.update(counts)

        replicas: list[Obj | None] = [None] * want
        condemned: list[Obj] = []
        for p in pods:
            o = ordinal_of(p, name)
            assert o is not None
            if start <= o < start + want:
                replicas[o - start] = p
            else:
                condemned.append(p)
        condemned.sort(key=lambda p: ordinal_of(p, name) or 0, reverse=True)

        def revision_for(index: int) -> Obj:
            return current if rolling and index < partition else update

        # The first pod that blocks ordered progress.
        first_unhealthy: Obj | None = None
        for i, pod in enumerate(replicas):
            ordinal = start + i
            if pod is not None and is_pod_terminal(pod):
                # A failed pod is replaced: delete now, recreate when the deletion is seen.
                if not is_terminating(pod):
                    await self._delete_pod(sts, pod)
                if monotonic:
                    return status
                continue
            if pod is None:
                await self._create_pod(sts, revision_for(i), ordinal)
                if monotonic:
                    return status
                continue
            if is_terminating(pod):
                if monotonic:
                    return status
                continue
            healthy = is_running_and_ready(pod) and is_pod_available(pod, min_ready)
            if not healthy:
                wait = seconds_until_available(pod, min_ready)
                if wait is not None:
                    self.queue.add_after(obj_key(sts), wait + 0.2)
                if first_unhealthy is None:
                    first_unhealthy = pod
                if monotonic:
                    return status
                continue
            # Identity labels that went missing are restored (``updateIdentity``).
            await self._restore_identity(sts, pod, ordinal)

        for pod in condemned:
            if is_terminating(pod):
                if monotonic:
                    return status
                continue
            if monotonic and first_unhealthy is not None and first_unhealthy is not pod:
                return status
            o = ordinal_of(pod, name) or 0
            await self._condemn_claims(sts, pod, o)
            await self._delete_pod(sts, pod)
            if monotonic:
                return status

        if not rolling:
            return status
        # Highest ordinal first, one pod at a time, and only while everything is healthy.
        for i in range(len(replicas) - 1, partition - 1, -1):
            pod = replicas[i]
            if pod is None:
                continue
            if labels_of(pod).get(history.CONTROLLER_REVISION_HASH) != upd_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                return status
            if not (is_running_and_ready(pod) and is_pod_available(pod, min_ready)):
                return status
        return status

    async def _restore_identity(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        name = meta(pod)["name"]
        labels = labels_of(pod)
        if labels.get(POD_NAME_LABEL) == name and labels.get(POD_INDEX_LABEL) == str(ordinal):
            return
        try:
            await self.client.patch("v1", "pods", name, {"metadata": {"labels": {
                POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}}}, meta(pod).get("namespace", ""))
        except (errors.NotFound, errors.Conflict):
            pass

    async def _write_status(self, sts: Obj, status: dict[str, Any]) -> None:
        # The rollout is complete once every pod runs the update revision and is ready.
        strategy = spec_of(sts).get("updateStrategy") or {}
        want = int_field(spec_of(sts), "replicas", 1)
        if (strategy.get("type", "RollingUpdate") == "RollingUpdate"
                and status.get("updatedReplicas") == want and status.get("readyReplicas") == want
                and status.get("replicas") == want):
            status["currentRevision"] = status["updateRevision"]
            status["currentReplicas"] = status["updatedReplicas"]
        if status == status_of(sts):
            return
        sts["status"] = status
        m = meta(sts)
        try:
            await self.client.update("apps/v1", "statefulsets", sts, m.get("namespace", ""), subresource="status")
        except errors.NotFound:
            pass


CONTROLLERS: list[type[Controller]] = [StatefulSetController]
