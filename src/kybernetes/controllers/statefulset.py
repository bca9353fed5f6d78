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

Steps 2-5 and the status are decided by ``statefulset_plan`` (pure functions, tested without a
server); this module reads the informers, writes, and carries the plan out.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.controllers import history
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.podutil import (
    claim_objects,
    controller_ref,
    int_field,
    is_terminating,
    labels_of,
    matching_owners,
    meta,
    obj_key,
    owner_reference,
    pod_from_template,
    spec_of,
    status_of,
)
from kybernetes.controllers.statefulset_plan import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_name,
    ordinal_of,
    plan_update,
    rollout_status,
)

log = logging.getLogger(__name__)

class StatefulSetController(Controller):
    name = "statefulset-controller"
    queue_name = "statefulset"
    service_account = "statefulset-controller"
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
        """Carry out this sync's plan (``statefulset_plan.plan_update``); the status to write."""
        plan = plan_update(sts, pods, current, update, collision)
        for action in plan.actions:
            if action.kind == "create":
                assert action.revision is not None
                await self._create_pod(sts, action.revision, action.ordinal)
                continue
            assert action.pod is not None
            if action.kind == "restore":
                await self._restore_identity(sts, action.pod, action.ordinal)
                continue
            if action.kind == "condemn":
                await self._condemn_claims(sts, action.pod, action.ordinal)
            await self._delete_pod(sts, action.pod)
        if plan.requeue_after is not None:
            self.queue.add_after(obj_key(sts), plan.requeue_after)
        return plan.status

    async def _restore_identity(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        name = meta(pod)["name"]
        try:
            await self.client.patch("v1", "pods", name, {"metadata": {"labels": {
                POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}}}, meta(pod).get("namespace", ""))
        except (errors.NotFound, errors.Conflict):
            pass

    async def _write_status(self, sts: Obj, status: dict[str, Any]) -> None:
        status = rollout_status(sts, status)
        if status == status_of(sts):
            return
        sts["status"] = status
        m = meta(sts)
        try:
            await self.client.update("apps/v1", "statefulsets", sts, m.get("namespace", ""), subresource="status")
        except errors.NotFound:
            pass


CONTROLLERS: list[type[Controller]] = [StatefulSetController]
