"""Printers of ``batch/v1`` Job and CronJob.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers._common import (
    JSON,
    WIDE_SELECTOR,
    WIDE_TEMPLATE,
    Cells,
    Printer,
    age,
    age_col,
    aware,
    col,
    container_cells,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    format_label_selector,
    human_duration,
    is_deleting,
    name_col,
    name_of,
    since,
)


def _job_condition(job: JSON, type_: str) -> bool:
    for c in dlist(job, "status", "conditions"):
        if isinstance(c, dict) and c.get("type") == type_:
            return c.get("status") == "True"
    return False


def job_status(job: JSON) -> str:
    if _job_condition(job, "Complete"):
        return "Complete"
    if _job_condition(job, "Failed"):
        return "Failed"
    if is_deleting(job):
        return "Terminating"
    if _job_condition(job, "Suspended"):
        return "Suspended"
    if _job_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_cells(job: JSON, now: datetime) -> Cells:
    spec = dmap(job, "spec")
    succeeded = dint(job, "status", "succeeded")
    if isinstance(dig(spec, "completions"), int):
        completions = f"{succeeded}/{dint(spec, 'completions')}"
    elif dint(spec, "parallelism") > 1:
        completions = f"{succeeded}/1 of {dint(spec, 'parallelism')}"
    else:
        completions = f"{succeeded}/1"
    start = parse_rfc3339(dig(job, "status", "startTime"))
    end = parse_rfc3339(dig(job, "status", "completionTime"))
    # Running jobs count up to now; finished ones show how long they took.
    duration = human_duration((end or aware(now)) - start) if start is not None else ""
    names, images = container_cells(dig(spec, "template", "spec"))
    return [
        name_of(job),
        job_status(job),
        completions,
        duration,
        age(job, now),
        names,
        images,
        format_label_selector(dig(spec, "selector")),
    ]


JOB = Printer(
    (
        name_col(),
        col("Status", description="Status of the job."),
        col("Completions", description="Succeeded pods out of the completions wanted."),
        col("Duration", description="Time required to complete the job."),
        age_col(),
        *WIDE_TEMPLATE,
        WIDE_SELECTOR,
    ),
    _job_cells,
)


def _bool_ptr(v: Any) -> str:
    """``printBoolPtr``: ``True``/``False``, ``<unset>`` when absent."""
    if isinstance(v, bool):
        return "True" if v else "False"
    return "<unset>"


def _cron_job_cells(cj: JSON, now: datetime) -> Cells:
    spec = dmap(cj, "spec")
    last = dig(cj, "status", "lastScheduleTime")
    job_spec = dmap(spec, "jobTemplate", "spec")
    names, images = container_cells(dig(job_spec, "template", "spec"))
    return [
        name_of(cj),
        dstr(spec, "schedule"),
        dstr(spec, "timeZone") if isinstance(spec.get("timeZone"), str) else "<none>",
        _bool_ptr(spec.get("suspend")),
        len(dlist(cj, "status", "active")),
        since(last, now) if last is not None else "<none>",
        age(cj, now),
        names,
        images,
        format_label_selector(dig(job_spec, "selector")),
    ]


CRON_JOB = Printer(
    (
        name_col(),
        col("Schedule", description="The cron schedule."),
        col("Timezone", description="The time zone of the schedule."),
        col("Suspend", "boolean", "Whether scheduling is suspended."),
        col("Active", "integer", "The number of running jobs."),
        col("Last Schedule", description="When a job was last scheduled."),
        age_col(),
        *WIDE_TEMPLATE,
        WIDE_SELECTOR,
    ),
    _cron_job_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("batch", "Job"): JOB,
    ("batch", "CronJob"): CRON_JOB,
}
