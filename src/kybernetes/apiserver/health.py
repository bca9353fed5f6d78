"""``/livez``, ``/readyz`` and ``/healthz``: named checks, answered as kube-apiserver's healthz package does.

Contract (k8s.io/apiserver/pkg/server/healthz):

- ``/readyz`` runs every check. All pass: 200 ``ok`` (with ``?verbose``, one ``[+]NAME ok`` line per
  check and ``readyz check passed``). Any fails: 500 with every check's line, a failed one as
  ``[-]NAME failed: reason withheld`` (the endpoint is public; the reason goes to the log), and
  ``readyz check failed``. ``?exclude=NAME`` skips a check (``[+]NAME excluded: ok``).
- ``/readyz/NAME`` runs one check: 200 ``ok``, or 500 ``internal server error: REASON``; 404 for a
  name that is no check.
- The ``etcd`` check asks the store for its revision within :data:`PROBE_TIMEOUT` seconds: it
  fails while the datastore is unreachable and passes again, without a restart, once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from multidict import MultiDictProxy

from kybernetes.httpserver.messages import Response
from kybernetes.storage.interface import Store

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
"""Seconds the store has to answer the ``etcd`` check (a probe must never hang)."""

Check = Callable[[], Awaitable[None]]
"""A health check: returns when healthy, raises with the reason when not."""


async def _ping() -> None:
    return None


def store_check(store: Store) -> Check:
    async def etcd() -> None:
        try:
            await asyncio.wait_for(store.current_revision(), PROBE_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"the datastore did not answer within {PROBE_TIMEOUT:g}s") from None

    return etcd


def checks_for(store: Store) -> dict[str, Check]:
    """The checks of ``/livez`` and ``/readyz``, in the order they are listed."""
    return {"ping": _ping, "log": _ping, "etcd": store_check(store)}


async def _run(check: Check) -> str:
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
        reason = await _run(check)
        if reason:
            log.warning("%s check %s failed: %s", endpoint, sub, reason)
            return Response(text=f"internal server error: {reason}\n", status=500, content_type="text/plain")
        return Response(text="ok", content_type="text/plain")
    excluded = {x for v in query.getall("exclude", []) for x in v.split(",")}
    names = [n for n in checks if n not in excluded]
    reasons = await asyncio.gather(*(_run(checks[n]) for n in names))
    lines, failed = [], []
    for name in checks:
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
            continue
        reason = reasons[names.index(name)]
        if reason:
            lines.append(f"[-]{name} failed: reason withheld")
            failed.append(f"[-]{name} failed: {reason}")
        else:
            lines.append(f"[+]{name} ok")
    if failed:
        log.warning("%s check failed: %s", endpoint, "; ".join(failed))
        return Response(text="\n".join([*lines, f"{endpoint} check failed"]) + "\n", status=500,
                        content_type="text/plain")
    if "verbose" not in query:
        return Response(text="ok", content_type="text/plain")
    return Response(text="\n".join([*lines, f"{endpoint} check passed"]) + "\n", content_type="text/plain")
