"""``/livez``, ``/readyz`` and ``/healthz`` with named checks, answered as Kubernetes' healthz package does.

Contract (``k8s.io/apiserver/pkg/server/healthz``; the API server and every component serve it):

- ``/ENDPOINT`` runs every check. All pass: 200 ``ok`` (with ``?verbose``, one ``[+]NAME ok`` line
  per check and ``ENDPOINT check passed``). Any fails: 500 with every check's line, a failed one
  as ``[-]NAME failed: reason withheld`` (the reason goes to the log), and ``ENDPOINT check
  failed``. ``?exclude=NAME`` skips a check (``[+]NAME excluded: ok``).
- ``/ENDPOINT/NAME`` runs one check: 200 ``ok``, or 500 ``internal server error: REASON``; 404 for
  a name that is no check.
- A check is a coroutine function that returns when healthy and raises, with the reason, when not;
  the caller bounds its time (a probe must never hang).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from multidict import MultiDictProxy

from kybernetes.httpserver.messages import Response

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
"""A health check: returns when healthy, raises with the reason when not."""


async def ping() -> None:
    """The ``ping`` check every endpoint has: it answers, so it passes."""
    return None


async def run_check(check: Check) -> str:
    """"" if the check passed, else why not."""
    try:
        await check()
    except Exception as e:  # any failure of a check is what the endpoint reports
        return str(e) or type(e).__name__
    return ""


async def serve(endpoint: str, sub: str, checks: dict[str, Check], query: MultiDictProxy[str]) -> Response:
    """Answer ``/ENDPOINT`` (``sub`` empty) or ``/ENDPOINT/SUB``; ``endpoint`` is livez, readyz or healthz."""
    if sub:
        check = checks.get(sub)
        if check is None:
            return Response(text="404 page not found\n", status=404, content_type="text/plain")
        reason = await run_check(check)
        if reason:
            log.warning("%s check %s failed: %s", endpoint, sub, reason)
            return Response(text=f"internal server error: {reason}\n", status=500, content_type="text/plain")
        return Response(text="ok", content_type="text/plain")
    excluded = {x for v in query.getall("exclude", []) for x in v.split(",")}
    names = [n for n in checks if n not in excluded]
    reasons = dict(zip(names, await asyncio.gather(*(run_check(checks[n]) for n in names)), strict=True))
    lines, failed = [], []
    for name in checks:
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
        elif reasons[name]:
            lines.append(f"[-]{name} failed: reason withheld")
            failed.append(f"[-]{name} failed: {reasons[name]}")
        else:
            lines.append(f"[+]{name} ok")
    if failed:
        log.warning("%s check failed: %s", endpoint, "; ".join(failed))
        return Response(text="\n".join([*lines, f"{endpoint} check failed"]) + "\n", status=500,
                        content_type="text/plain")
    if "verbose" not in query:
        return Response(text="ok", content_type="text/plain")
    return Response(text="\n".join([*lines, f"{endpoint} check passed"]) + "\n", content_type="text/plain")
