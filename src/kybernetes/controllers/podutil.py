"""Pod and ownership helpers shared by the workload controllers.

What lives here is the common ground of ``pkg/controller/controller_utils.go`` and
``pkg/api/v1/pod``:

* pod state predicates: active, available after ``minReadySeconds``, terminating (readiness
  itself is :mod:`kybernetes.api.podutil`'s, timestamps :mod:`kybernetes.api.timeutil`'s);
* owner references and the controller-ref manager's two moves - *adopt* an orphan whose labels match
  the owner's selector (a JSON merge patch would replace the whole ``ownerReferences`` list, so the
  patch carries the full new list pinned to the object's ``resourceVersion``) and *release* an owned
  object that no longer matches;
* building a pod from a template (``GetPodFromTemplate``);
* finding an object's live controller (:func:`owner_key`) and the owners that would adopt an orphan
  (:func:`matching_owners`), and :class:`PodOwnerController`, the pod handlers and sync prologue of
  the ReplicaSet, ReplicationController and DaemonSet controllers;
* :class:`Expectations`, ``ControllerExpectations``/``UIDTrackingControllerExpectations``: a
  controller that just asked for N creations must not act on its cache again until it has seen
  them, or it would create them twice;
* :func:`slow_start_batch`: creations in batches 1, 2, 4, ... stopping at the first error, so a
  quota or admission failure costs one request rather than hundreds;
* the ranking that decides which pods a scale-down removes first (``ActivePodsWithRanks``).

Everything is pure functions over plain dicts except the two coroutines that talk to the API
(:func:`claim_objects`, :func:`slow_start_batch`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready, pod_ready_since
from kybernetes.api.timeutil import parse_epoch
from kybernetes.client.informer import Indexer, Informer
from kybernetes.client.rest import Client
from kybernetes.controllers.base import Controller

log = logging.getLogger(__name__)

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# Expectations older than this are presumed lost (a watch event that never came) and ignored.
EXPECTATIONS_TIMEOUT = 5 * 60.0
SLOW_START_INITIAL_BATCH = 1


# --- small accessors -----------------------------------------------------------------------------


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def labels_of(obj: Obj) -> dict[str, str]:
    lab = meta(obj).get("labels")
    return lab if isinstance(lab, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    ann = meta(obj).get("annotations")
    return ann if isinstance(ann, dict) else {}


def spec_of(obj: Obj) -> dict[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status_of(obj: Obj) -> dict[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def obj_key(obj: Obj) -> str:
    m = meta(obj)
    ns = m.get("namespace") or ""
    return f"{ns}/{m.get('name', '')}" if ns else str(m.get("name", ""))


def int_field(obj: dict[str, Any], name: str, default: int = 0) -> int:
    v = obj.get(name)
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else default


# --- pod predicates ------------------------------------------------------------------------------


def is_terminating(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float | None = None) -> bool:
    """Ready for at least ``minReadySeconds`` (``podutil.IsPodAvailable``)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = pod_ready_since(pod)
    if since is None:
        return False
    return since + min_ready_seconds <= (time.time() if now is None else now)


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: float | None = None) -> float | None:
    """For a ready but not yet available pod: how long until it is; otherwise ``None``."""
    if min_ready_seconds <= 0 or not is_pod_ready(pod):
        return None
    since = pod_ready_since(pod)
    if since is None:
        return None
    left = since + min_ready_seconds - (time.time() if now is None else now)
    return left if left > 0 else None


def restart_count(pod: Obj) -> int:
    counts = [int_field(cs, "restartCount") for cs in status_of(pod).get("containerStatuses") or ()
              if isinstance(cs, dict)]
    return max(counts, default=0)


# --- deletion ranking ----------------------------------------------------------------------------

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_cost(pod: Obj) -> int:
    try:
        return int(annotations_of(pod).get(POD_DELETION_COST, "0"))
    except ValueError:
        return 0


def rank_pods_for_deletion(pods: list[Obj], co_located: dict[str, int] | None = None) -> list[Obj]:
    """Pods in the order a scale-down should remove them (``ActivePodsWithRanks``), first = first to go.

    ``co_located`` counts related pods per node: a pod sharing its node with more siblings goes
    first, which spreads the survivors. The sort is stable over a key tuple where "smaller" means
    "delete sooner"; timestamps are negated so that the more recent one sorts first.
    """
    co_located = co_located or {}

    def key(pod: Obj) -> tuple[Any, ...]:
        node = spec_of(pod).get("nodeName") or ""
        ready = is_pod_ready(pod)
        ready_since = pod_ready_since(pod) if ready else None
        created = parse_epoch(meta(pod).get("creationTimestamp")) or 0.0
        return (
            1 if node else 0,                                   # unassigned before assigned
            _PHASE_RANK.get(str(status_of(pod).get("phase")), 0),  # Pending < Unknown < Running
            1 if ready else 0,                                  # not ready before ready
            -co_located.get(node, 0) if node else 0,            # doubled-up before alone
            deletion_cost(pod),                                 # cheaper to delete first
            -(ready_since or 0.0) if ready else 0.0,            # ready more recently first
            -restart_count(pod),                                # more restarts first
            -created,                                           # newer first
        )

    return sorted(pods, key=key)


# --- owner references ----------------------------------------------------------------------------


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj, api_version: str, kind: str, *, controller: bool = True,
                    block: bool = True) -> dict[str, Any]:
    m = meta(owner)
    return {"apiVersion": api_version, "kind": kind, "name": m.get("name"), "uid": m.get("uid"),
            "controller": controller, "blockOwnerDeletion": block}


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return bool(ref and ref.get("uid") == meta(owner).get("uid"))


def owner_key(obj: Obj, kind: str, owners: Indexer) -> str | None:
    """The cache key of ``obj``'s controller when it is a ``kind`` that ``owners`` (an informer's
    store) holds with the referenced uid; None for an orphan, another kind or a stale reference."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    ns = meta(obj).get("namespace", "")
    owner = owners.get(f"{ns}/{ref.get('name')}")
    if owner is None or meta(owner).get("uid") != ref.get("uid"):
        return None
    return obj_key(owner)


def spec_selector(owner: Obj) -> LabelSelector:
    """An apps/v1 owner's ``spec.selector`` (a missing one selects nothing)."""
    return from_label_selector_object(spec_of(owner).get("selector"), none_matches=True)


def matching_owners(obj: Obj, owners: Indexer, selector: Callable[[Obj], LabelSelector] = spec_selector) -> list[Obj]:
    """The owners of ``obj``'s namespace whose selector matches its labels: who would adopt the
    orphan. An owner whose selector is invalid matches nothing."""
    out = []
    for owner in owners.by_index("namespace", meta(obj).get("namespace", "")):
        try:
            if selector(owner).matches(labels_of(obj)):
                out.append(owner)
        except errors.StatusError:
            continue
    return out


class PodOwnerController(Controller):
    """The pod handlers of the controllers whose pods :class:`Expectations` count (ReplicaSet,
    ReplicationController, DaemonSet). Subclasses set ``kind`` and, in ``__init__``, ``sets`` (the
    owners' informer) and ``expectations``; an owner's key is queued when one of its pods comes or
    goes, an orphan wakes the owners whose selector matches it."""

    kind: ClassVar[str] = ""
    sets: Informer
    expectations: Expectations

    def selector(self, owner: Obj) -> LabelSelector:
        return spec_selector(owner)

    def _owner_key(self, pod: Obj) -> str | None:
        return owner_key(pod, self.kind, self.sets.store)

    def _matching_sets(self, pod: Obj) -> list[Obj]:
        return matching_owners(pod, self.sets.store, self.selector)

    def _owner_to_sync(self, key: str) -> tuple[Obj, LabelSelector] | None:
        """A copy of the owner ``key`` names, and its selector; None when the owner is gone (its
        expectations are dropped) or its selector is invalid (a Warning event says so)."""
        cached = self.sets.store.get(key)
        if cached is None:
            self.expectations.delete(key)
            return None
        owner = copy.deepcopy(cached)
        try:
            return owner, self.selector(owner)
        except errors.StatusError as e:
            self.recorder.event(owner, "Warning", "InvalidSelector", str(e))
            return None

    def _pod_added(self, pod: Obj) -> None:
        if is_terminating(pod):
            # A restarted informer may list a pod already being deleted: count it as gone.
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod) is None:
            for owner in self._matching_sets(pod):
                self.enqueue(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, obj_key(pod))
            self.queue.add(key)


async def _adopt(client: Client, api_version: str, plural: str, obj: Obj, ref: dict[str, Any]) -> Obj:
    m = meta(obj)
    refs = [r for r in m.get("ownerReferences") or () if isinstance(r, dict) and r.get("uid") != ref["uid"]]
    patch = {"metadata": {"ownerReferences": [*refs, ref], "resourceVersion": m.get("resourceVersion"),
                          "uid": m.get("uid")}}
    return await client.patch(api_version, plural, m["name"], patch, m.get("namespace", ""))


async def _release(client: Client, api_version: str, plural: str, obj: Obj, owner_uid: str) -> Obj:
    m = meta(obj)
    refs = [r for r in m.get("ownerReferences") or () if isinstance(r, dict) and r.get("uid") != owner_uid]
    patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": m.get("resourceVersion"),
                          "uid": m.get("uid")}}
    return await client.patch(api_version, plural, m["name"], patch, m.get("namespace", ""))


async def claim_objects(
    client: Client,
    owner: Obj,
    owner_api_version: str,
    owner_kind: str,
    selector: LabelSelector,
    candidates: Iterable[Obj],
    api_version: str,
    plural: str,
    *,
    filter_fn: Callable[[Obj], bool] | None = None,
) -> list[Obj]:
    """``ControllerRefManager.Claim*``: the objects this owner controls after adopting and releasing.

    * controlled by the owner and matching: kept;
    * controlled by the owner but no longer matching: released (unless the owner is being deleted);
    * orphans matching: adopted, unless the owner is being deleted or the object is;
    * controlled by someone else: ignored.

    Adoption and release race with other writers; a conflict or a vanished object just drops the
    object from this round (the next sync sees the fresh state).
    """
    uid = meta(owner).get("uid")
    owner_deleting = is_terminating(owner)
    claimed: list[Obj] = []
    for obj in candidates:
        if filter_fn is not None and not filter_fn(obj):
            continue
        ref = controller_ref(obj)
        matches = selector.matches(labels_of(obj))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                claimed.append(obj)
            elif not owner_deleting:
                try:
                    await _release(client, api_version, plural, obj, str(uid))
                except (errors.NotFound, errors.Conflict, errors.Invalid):
                    pass
            continue
        if not matches or owner_deleting or is_terminating(obj):
            continue
        try:
            adopted = await _adopt(client, api_version, plural, obj,
                                   owner_reference(owner, owner_api_version, owner_kind))
        except (errors.NotFound, errors.Conflict, errors.Invalid):
            continue
        claimed.append(adopted)
    return claimed


# --- building pods -------------------------------------------------------------------------------


def pod_from_template(template: dict[str, Any], owner: Obj, owner_api_version: str, owner_kind: str,
                      *, name: str = "", generate_name: str = "") -> Obj:
    """``GetPodFromTemplate``: labels, annotations, finalizers and spec of the template, owned by ``owner``."""
    tmeta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    assert isinstance(tmeta, dict)
    pmeta: dict[str, Any] = {
        "labels": dict(tmeta.get("labels") or {}),
        "annotations": dict(tmeta.get("annotations") or {}),
        "ownerReferences": [owner_reference(owner, owner_api_version, owner_kind)],
    }
    if tmeta.get("finalizers"):
        pmeta["finalizers"] = list(tmeta["finalizers"])
    if name:
        pmeta["name"] = name
    elif generate_name:
        # apimachinery's generator appends 5 random chars; the prefix is cut to keep names legal.
        pmeta["generateName"] = generate_name[:58]
    if not pmeta["annotations"]:
        del pmeta["annotations"]
    ns = meta(owner).get("namespace")
    if ns:
        pmeta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmeta,
            "spec": copy.deepcopy(template.get("spec") or {})}


# --- expectations --------------------------------------------------------------------------------


@dataclass
class _Expectation:
    adds: int = 0
    dels: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    """Creations and deletions a controller is waiting to see, per owner key.

    Creations are a counter (the pod names are not known before the server generates them);
    deletions are tracked by pod key, so that seeing a pod's ``deletionTimestamp`` and later its
    removal lowers the expectation only once (``UIDTrackingControllerExpectations``).
    """

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._by_key: dict[str, _Expectation] = {}
        self.timeout = timeout

    def satisfied(self, key: str) -> bool:
        e = self._by_key.get(key)
        if e is None:
            return True
        if e.adds <= 0 and not e.dels:
            return True
        return time.monotonic() - e.stamp > self.timeout

    def expect(self, key: str, adds: int = 0, dels: Iterable[str] = ()) -> None:
        self._by_key[key] = _Expectation(adds, set(dels), time.monotonic())

    def creation_observed(self, key: str, n: int = 1) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.adds -= n

    def deletion_observed(self, key: str, pod_key: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.dels.discard(pod_key)

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)


# --- slow start ----------------------------------------------------------------------------------


async def slow_start_batch(count: int, fn: Callable[[], Awaitable[None]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, BaseException | None]:
    """Call ``fn`` ``count`` times in growing concurrent batches; stop after a batch with a failure.

    Returns how many calls succeeded and the first error. Calls never started are the caller's
    to account for (``count - successes - failures_in_last_batch``).
    """
    remaining, batch, successes = count, min(count, initial), 0
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        if failures:
            return successes, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def get_condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def remove_condition(status: dict[str, Any], ctype: str) -> None:
    conds = [c for c in status.get("conditions") or () if isinstance(c, dict) and c.get("type") != ctype]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)
