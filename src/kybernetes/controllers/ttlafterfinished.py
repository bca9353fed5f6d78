"""TTL-after-finished: delete finished Jobs ``ttlSecondsAfterFinished`` seconds after they finished.

As ``pkg/controller/ttlafterfinished``: a Job is a candidate when it has
``spec.ttlSecondsAfterFinished`` and a ``Complete`` or ``Failed`` condition that is True. Its
finish time is ``status.completionTime`` (Complete) or the terminal condition's
``lastTransitionTime``; it expires at finish + TTL. Before expiry the key is requeued for the
remaining time (on ``ctx.clock``). At expiry the controller re-reads the Job from the API server
(the cache may be stale and the TTL may have been changed or removed), checks again, and deletes
it with Foreground propagation (its pods go first) and a precondition on the uid and
resourceVersion it just checked, so a Job changed in between is reconsidered rather than deleted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from kybernetes import errors
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.job_util import Obj, job_finish_time, job_finished, now_dt
from kybernetes.controllers.podutil import meta, spec_of

log = logging.getLogger(__name__)


def expires_at(job: Obj) -> datetime | None:
    """When a finished Job with a TTL may be deleted; None if it is not (yet) a candidate."""
    ttl = spec_of(job).get("ttlSecondsAfterFinished")
    if ttl is None or meta(job).get("deletionTimestamp") or job_finished(job) is None:
        return None
    finished = job_finish_time(job)
    if finished is None:
        return None
    return finished + timedelta(seconds=int(ttl))


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"
    queue_name = "ttl_jobs_to_delete"
    service_account = "ttl-after-finished-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = self.informer("batch/v1", "jobs")
        self.jobs.add_handler(on_add=self._maybe_enqueue, on_update=lambda old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, job: Obj) -> None:
        if expires_at(job) is not None:
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None or self._left(job) is None:
            return
        left = self._left(job)
        if left is not None and left > 0:
            self.queue.add_after(key, left)
            return
        # Expired by the cache's account: confirm against the API server before deleting.
        ns, name = split_key(key)
        try:
            fresh = await self.client.get("batch/v1", "jobs", name, ns)
        except errors.NotFound:
            return
        left = self._left(fresh)
        if left is None:
            return
        if left > 0:
            self.queue.add_after(key, left)
            return
        fm = meta(fresh)
        try:
            await self.client.delete("batch/v1", "jobs", name, ns, propagation_policy="Foreground",
                                     preconditions={"uid": fm.get("uid"), "resourceVersion": fm.get("resourceVersion")})
        except errors.NotFound:
            return
        log.info("deleted job %s: ttlSecondsAfterFinished expired", key)

    def _left(self, job: Obj) -> float | None:
        at = expires_at(job)
        if at is None:
            return None
        return (at - now_dt(self.ctx.clock)).total_seconds()


CONTROLLERS: list[type[Controller]] = [TTLAfterFinishedController]

__all__ = ["CONTROLLERS", "TTLAfterFinishedController", "expires_at"]
