"""The Deployment controller (``pkg/controller/deployment``).

A Deployment owns ReplicaSets, one per distinct pod template it has had. The ReplicaSet of the
current template is the *new* one, named ``<deployment>-<pod-template-hash>`` and carrying the
hash as a label on its selector and template so that sibling ReplicaSets never fight over pods.
Every other owned ReplicaSet is *old*. A rollout moves replicas from the old sets to the new one.

One sync of a key, in Kubernetes' order:

1. claim ReplicaSets (adopt matching orphans, release owned ones that stopped matching);
2. being deleted: status only;
3. keep the ``Progressing`` condition's paused/resumed reason in step with ``spec.paused``;
4. paused, or a *scaling event* (``spec.replicas`` differs from what the active sets were sized
   for, recorded in their ``desired-replicas`` annotation): resize proportionally and stop - a
   paused Deployment never rolls out, but it does scale;
5. otherwise roll out by strategy:

   * ``RollingUpdate``: grow the new set while the total stays within ``replicas + maxSurge``,
     then shrink old sets while at least ``replicas - maxUnavailable`` pods stay available
     (unhealthy old pods go first, since removing them costs no availability);
   * ``Recreate``: scale every old set to 0, wait until none of their pods is left, then scale
     the new set up.

6. once complete, delete the oldest zero-sized old sets beyond ``revisionHistoryLimit``;
7. status: counters summed over the sets, ``Available`` (at least ``replicas - maxUnavailable``
   available) and ``Progressing`` (NewReplicaSetCreated / FoundNewReplicaSet / ReplicaSetUpdated /
   NewReplicaSetAvailable, or ProgressDeadlineExceeded when nothing moved for
   ``progressDeadlineSeconds``; a sync is scheduled for the moment the deadline would pass).

Steps 4-7 are decided by ``deployment_plan`` (pure functions, tested without a server); this
module claims, creates and resizes ReplicaSets and writes status as those decisions say.

Revisions: the new set gets ``deployment.kubernetes.io/revision`` = (highest old revision) + 1.
A template equal to an old set's (``kubectl rollout undo`` patches the old template back) makes
that old set the new one again: it gets the next revision and its former number goes into its
``revision-history`` annotation. The Deployment's own revision annotation mirrors its new set's.
"""

from __future__ import annotations

import copy
import logging
import time

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.controllers import deployment_plan as plan
from kybernetes.controllers import deployment_util as du
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.history import POD_TEMPLATE_HASH, template_hash, templates_equal_ignoring_hash
from kybernetes.controllers.podutil import (
    claim_objects,
    controller_ref,
    get_condition,
    int_field,
    is_terminating,
    labels_of,
    matching_owners,
    meta,
    obj_key,
    owner_reference,
    spec_of,
    status_of,
)

log = logging.getLogger(__name__)


class DeploymentController(Controller):
    name = "deployment-controller"
    queue_name = "deployment"
    service_account = "deployment-controller"
    workers = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = self.informer("apps/v1", "deployments")
        self.rses = self.informer("apps/v1", "replicasets")
        self.pods = self.informer("v1", "pods")
        self.deployments.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                     on_delete=self.enqueue)
        self.rses.add_handler(on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_changed)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # --- handlers ----------------------------------------------------------------------------

    def _owner_key(self, obj: Obj, kind: str) -> str | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != kind:
            return None
        ns = meta(obj).get("namespace", "")
        return f"{ns}/{ref.get('name')}" if ns else str(ref.get("name"))

    def _rs_changed(self, rs: Obj) -> None:
        key = self._owner_key(rs, "Deployment")
        if key is not None:
            self.queue.add(key)
            return
        # An orphan: every Deployment that would adopt it takes a look.
        for d in matching_owners(rs, self.deployments.store):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return
        old_key, new_key = self._owner_key(old, "Deployment"), self._owner_key(new, "Deployment")
        if old_key is not None and old_key != new_key:
            self.queue.add(old_key)
        self._rs_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        # Recreate waits for the old pods to be gone; their deletion is the signal to go on.
        rs_key = self._owner_key(pod, "ReplicaSet")
        if rs_key is None:
            return
        rs = self.rses.store.get(rs_key)
        if rs is not None:
            d_key = self._owner_key(rs, "Deployment")
            if d_key is not None:
                self.queue.add(d_key)

    # --- sync --------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.store.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        ns, _ = split_key(key)
        sel = spec_of(d).get("selector")
        if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            if int_field(status_of(d), "observedGeneration") < int_field(meta(d), "generation"):
                d.setdefault("status", {})["observedGeneration"] = int_field(meta(d), "generation")
                await self._write_status(d)
            return
        selector = from_label_selector_object(sel, none_matches=True)
        rses = await self._claim_rses(d, selector, ns)

        if is_terminating(d):
            await self._sync_status_only(d, rses)
            return
        d = await self._check_paused_conditions(d)
        if spec_of(d).get("paused"):
            await self._sync_scale(d, rses)
            return
        if self._is_scaling_event(d, rses):
            await self._sync_scale(d, rses)
            return
        if du.is_rolling(d):
            await self._rollout_rolling(d, rses)
        else:
            await self._rollout_recreate(d, rses)

    async def _claim_rses(self, d: Obj, selector: LabelSelector, ns: str) -> list[Obj]:
        candidates = self.rses.store.by_index("namespace", ns)
        return await claim_objects(self.client, d, "apps/v1", "Deployment", selector, candidates,
                                   "apps/v1", "replicasets")

    # --- new and old ReplicaSets -------------------------------------------------------------

    async def _get_all_rses(self, d: Obj, rses: list[Obj], create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        """(new set or None, old sets, possibly updated Deployment); syncs revision annotations."""
        existing_new = du.find_new_rs(d, rses)
        old = du.find_old_rses(d, rses, existing_new)
        new_rs, d = await self._get_new_rs(d, rses, old, existing_new, create)
        return new_rs, old, d

    async def _get_new_rs(self, d: Obj, rses: list[Obj], old: list[Obj], existing: Obj | None,
                          create: bool) -> tuple[Obj | None, Obj]:
        """(the new set, possibly updated Deployment): ``existing`` brought in line with the
        Deployment, or a new set created when ``create`` (None when not)."""
        max_old_revision = max((du.revision_of(rs) for rs in old), default=0)
        new_revision = max_old_revision + 1
        if existing is not None:
            return await self._sync_existing_new_rs(d, existing, new_revision)
        if not create:
            return None, d
        return await self._create_new_rs(d, old, new_revision)

    async def _sync_existing_new_rs(self, d: Obj, existing: Obj, new_revision: int) -> tuple[Obj, Obj]:
        """Revision annotations and minReadySeconds onto the existing new set; the revision and a
        FoundNewReplicaSet Progressing condition onto the Deployment."""
        ns = meta(d).get("namespace", "")
        rs = copy.deepcopy(existing)
        changed = du.set_new_rs_annotations(d, rs, new_revision, exists=True)
        min_ready = spec_of(d).get("minReadySeconds", 0) or 0
        if (spec_of(rs).get("minReadySeconds", 0) or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            changed = True
        if changed:
            rs = await self.client.update("apps/v1", "replicasets", rs, ns)
        needs_update = _set_deployment_revision(d, du.revision_of(rs))
        status = copy.deepcopy(status_of(d))
        cond = get_condition(status, "Progressing")
        if du.has_progress_deadline(d) and cond is None:
            du.set_condition(status, du.new_condition("Progressing", "True", du.FOUND_NEW_RS,
                                                      f'Found new replica set "{meta(rs)["name"]}"'))
            d["status"] = status
            needs_update = True
        if needs_update:
            d = await self._write_status(d)
        return rs, d

    async def _create_new_rs(self, d: Obj, old: list[Obj], new_revision: int) -> tuple[Obj, Obj]:
        """Create the set for the Deployment's current template (named by its hash) and record it."""
        ns = meta(d).get("namespace", "")
        collision = int_field(status_of(d), "collisionCount")
        template = spec_of(d).get("template") or {}
        h = template_hash(template, collision if "collisionCount" in status_of(d) else None)
        new_rs = _new_replica_set(d, h, template)
        name = new_rs["metadata"]["name"]
        all_rses = [*old]
        new_rs["spec"]["replicas"] = du.new_rs_new_replicas(d, all_rses, new_rs)
        du.set_new_rs_annotations(d, new_rs, new_revision, exists=False)
        try:
            created = await self.client.create("apps/v1", "replicasets", new_rs, ns)
        except errors.AlreadyExists:
            return await self._existing_or_collision(d, name, template, collision), d
        except errors.StatusError as e:
            status = copy.deepcopy(status_of(d))
            msg = f'Failed to create new replica set "{name}": {e}'
            if du.has_progress_deadline(d):
                du.set_condition(status, du.new_condition("Progressing", "False", du.FAILED_RS_CREATE, msg))
                d["status"] = status
                await self._write_status(d)
            self.recorder.event(d, "Warning", du.FAILED_RS_CREATE, msg)
            raise
        n = du.rs_replicas(created)
        if n > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {n}")
        needs_update = _set_deployment_revision(d, new_revision)
        if du.has_progress_deadline(d):
            status = copy.deepcopy(status_of(d))
            du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_CREATED,
                                                      f'Created new replica set "{name}"'))
            d["status"] = status
            needs_update = True
        if needs_update:
            d = await self._write_status(d)
        return created, d

    async def _existing_or_collision(self, d: Obj, name: str, template: Obj, collision: int) -> Obj:
        """The set named ``name`` exists: ours (the informer had not shown it yet), or a hash
        collision, which bumps collisionCount so the next sync tries the next name (a 409 now)."""
        ns = meta(d).get("namespace", "")
        current = await self.client.get("apps/v1", "replicasets", name, ns)
        ref = controller_ref(current)
        if ref and ref.get("uid") == meta(d).get("uid") and templates_equal_ignoring_hash(
                spec_of(current).get("template") or {}, template):
            return current
        d.setdefault("status", {})["collisionCount"] = collision + 1
        await self._write_status(d)
        raise errors.Conflict.of("replicasets", name, "apps", why="pod-template-hash collision")

    # --- scaling -----------------------------------------------------------------------------

    def _is_scaling_event(self, d: Obj, rses: list[Obj]) -> bool:
        new_rs = du.find_new_rs(d, rses)
        old = du.find_old_rses(d, rses, new_rs)
        for rs in du.active([*old, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != du.replicas(d):
                return True
        return False

    async def _scale_rs(self, rs: Obj, size: int, d: Obj) -> tuple[bool, Obj]:
        """Resize ``rs`` and refresh its sizing annotations; True when the size changed."""
        size_changed = du.rs_replicas(rs) != size
        updated = copy.deepcopy(rs)
        ann_changed = du.set_replicas_annotations(updated, du.replicas(d), du.replicas(d) + du.max_surge(d))
        if not size_changed and not ann_changed:
            return False, rs
        old_size = du.rs_replicas(rs)
        updated["spec"]["replicas"] = size
        updated = await self.client.update("apps/v1", "replicasets", updated, meta(rs).get("namespace", ""))
        if size_changed:
            direction = "up" if size > old_size else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {direction} replica set {meta(rs)['name']} from {old_size} to {size}")
        return size_changed, updated

    async def _scale(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        """``scale``: resize for a changed ``spec.replicas``, proportionally while a rollout is under way."""
        for rs, size in plan.proportional_sizes(d, new_rs, old):
            await self._scale_rs(rs, size, d)

    async def _sync_scale(self, d: Obj, rses: list[Obj]) -> None:
        """``sync``: scaling and history cleanup without rolling out (paused or scaling event)."""
        new_rs, old, d = await self._get_all_rses(d, rses, create=False)
        await self._scale(d, new_rs, old)
        if spec_of(d).get("paused"):
            await self._cleanup(d, old)
        rses = await self._fresh_rses(d, [*old, *([new_rs] if new_rs else [])])
        new_rs = du.find_new_rs(d, rses)
        status = du.calculate_status(d, rses, new_rs)
        if status != status_of(d):
            d["status"] = status
            await self._write_status(d)

    async def _sync_status_only(self, d: Obj, rses: list[Obj]) -> None:
        new_rs = du.find_new_rs(d, rses)
        status = du.calculate_status(d, rses, new_rs)
        if status != status_of(d):
            d["status"] = status
            await self._write_status(d)

    async def _fresh_rses(self, d: Obj, rses: list[Obj]) -> list[Obj]:
        """The sets as the cache has them now (our writes may have landed), falling back to ours."""
        out = []
        for rs in rses:
            cached = self.rses.store.get(obj_key(rs))
            if cached is not None and int(meta(cached).get("resourceVersion") or 0) >= int(
                    meta(rs).get("resourceVersion") or 0):
                out.append(cached)
            else:
                out.append(rs)
        return out

    # --- paused ------------------------------------------------------------------------------

    async def _check_paused_conditions(self, d: Obj) -> Obj:
        if not du.has_progress_deadline(d):
            return d
        status = copy.deepcopy(status_of(d))
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return d
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        paused = bool(spec_of(d).get("paused"))
        if paused and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused"))
        elif not paused and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED, "Deployment is resumed"))
        else:
            return d
        d["status"] = status
        return await self._write_status(d)

    # --- rolling update ----------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rses: list[Obj]) -> None:
        new_rs, old, d = await self._get_all_rses(d, rses, create=True)
        assert new_rs is not None
        all_rses = [*old, new_rs]

        scaled_up, new_rs = await self._reconcile_new_rs(d, all_rses, new_rs)
        if scaled_up:
            await self._sync_rollout_status([*old, new_rs], new_rs, d)
            return
        scaled_down, old = await self._reconcile_old_rses(d, old, new_rs)
        if scaled_down:
            await self._sync_rollout_status([*old, new_rs], new_rs, d)
            return
        if du.deployment_complete(d, du.calculate_status(d, [*old, new_rs], new_rs)):
            await self._cleanup(d, old)
        await self._sync_rollout_status([*old, new_rs], new_rs, d)

    async def _reconcile_new_rs(self, d: Obj, all_rses: list[Obj], new_rs: Obj) -> tuple[bool, Obj]:
        size = plan.new_rs_size(d, all_rses, new_rs)
        if size is None:
            return False, new_rs
        return await self._scale_rs(new_rs, size, d)

    async def _reconcile_old_rses(self, d: Obj, old: list[Obj], new_rs: Obj) -> tuple[bool, list[Obj]]:
        resized = {meta(rs)["name"]: size for rs, size in plan.old_scale_down(d, old, new_rs)}
        if not resized:
            return False, old
        out = []
        for rs in old:
            if meta(rs)["name"] in resized:
                _, rs = await self._scale_rs(rs, resized[meta(rs)["name"]], d)
            out.append(rs)
        return True, out

    # --- recreate ----------------------------------------------------------------------------

    async def _rollout_recreate(self, d: Obj, rses: list[Obj]) -> None:
        new_rs, old, d = await self._get_all_rses(d, rses, create=False)
        scaled_down = False
        for i, rs in enumerate(old):
            if du.rs_replicas(rs) > 0:
                changed, old[i] = await self._scale_rs(rs, 0, d)
                scaled_down = scaled_down or changed
        all_rses = [*old, *([new_rs] if new_rs else [])]
        if scaled_down:
            await self._sync_rollout_status(all_rses, new_rs, d)
            return
        if self._old_pods_running(old):
            await self._sync_rollout_status(all_rses, new_rs, d)
            return
        if new_rs is None:
            new_rs, old, d = await self._get_all_rses(d, rses, create=True)
        assert new_rs is not None
        if du.rs_replicas(new_rs) != du.replicas(d):
            _, new_rs = await self._scale_rs(new_rs, du.replicas(d), d)
        all_rses = [*old, new_rs]
        if du.deployment_complete(d, du.calculate_status(d, all_rses, new_rs)):
            await self._cleanup(d, old)
        await self._sync_rollout_status(all_rses, new_rs, d)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        if du.total_status(old, "replicas") > 0:
            return True
        uids = {meta(rs).get("uid") for rs in old}
        if not uids:
            return False
        ns = meta(old[0]).get("namespace", "")
        for pod in self.pods.store.by_index("namespace", ns):
            ref = controller_ref(pod)
            if ref and ref.get("uid") in uids and not is_pod_terminal(pod):
                # Terminating pods count: Recreate promises no overlap of old and new pods.
                return True
        return False

    # --- cleanup and status ------------------------------------------------------------------

    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        for rs in plan.history_to_delete(d, old):
            try:
                await self.client.delete("apps/v1", "replicasets", meta(rs)["name"], meta(rs).get("namespace", ""))
            except errors.NotFound:
                pass

    async def _sync_rollout_status(self, all_rses: list[Obj], new_rs: Obj | None, d: Obj) -> None:
        all_rses = await self._fresh_rses(d, all_rses)
        if new_rs is not None:
            new_rs = next((r for r in all_rses if meta(r).get("uid") == meta(new_rs).get("uid")), new_rs)
        now = time.time()
        decided = plan.rollout_status(d, all_rses, new_rs, now)
        if decided.timed_out:
            self.recorder.event(d, "Warning", du.TIMED_OUT, decided.timed_out)
        if decided.status != status_of(d):
            d["status"] = decided.status
            d = await self._write_status(d)
        after = plan.recheck_after(d, decided.status, now)
        if after is not None:
            self.queue.add_after(obj_key(d), after)

    async def _write_status(self, d: Obj) -> Obj:
        m = meta(d)
        try:
            updated = await self.client.update("apps/v1", "deployments", d, m.get("namespace", ""),
                                               subresource="status")
        except errors.NotFound:
            return d
        return updated if isinstance(updated, dict) else d


def _new_replica_set(d: Obj, h: str, template: Obj) -> Obj:
    """The new ReplicaSet of Deployment ``d`` for ``template`` with hash ``h``, at 0 replicas."""
    selector = copy.deepcopy(spec_of(d).get("selector") or {})
    selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = h
    rs_labels = {**labels_of(d.get("spec", {}).get("template", {})), POD_TEMPLATE_HASH: h}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta(d)['name']}-{h}",
            "namespace": meta(d).get("namespace", ""),
            "labels": rs_labels,
            "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": spec_of(d).get("minReadySeconds", 0) or 0,
            "selector": selector,
            "template": du.clean_template_labels(template, h),
        },
    }


def _set_deployment_revision(d: Obj, revision: int) -> bool:
    """Set the Deployment's revision annotation to its new set's; True if it changed.

    The caller writes it through ``/status``, as Kubernetes' controller does: a status update
    keeps the annotations it is sent, and never moves the generation (through the main resource
    an annotation change would, and ``observedGeneration`` would lag behind a spec nobody changed).
    """
    if revision <= 0 or du.annotations_of(d).get(du.REVISION) == str(revision):
        return False
    m = d.setdefault("metadata", {})
    if not isinstance(m.get("annotations"), dict):
        m["annotations"] = {}
    m["annotations"][du.REVISION] = str(revision)
    return True


CONTROLLERS: list[type[Controller]] = [DeploymentController]
