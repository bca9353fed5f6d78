"""Watching components' ``/healthz`` from outside, as ``kyb server`` does for the ones it runs.

:class:`HealthMonitor` asks each target's ``/healthz`` every ``interval`` seconds (HTTPS, verified
against the given CA, each probe bounded by ``timeout``). Contract:

- ``failures[name]`` is why the last probe failed ("" after one that answered 200 ``ok``);
- a component that stops answering (no connection, a timeout, or any answer but 200) is logged
  once as a warning with the reason when it goes from answering to not (or has not answered for
  ``grace`` seconds since the monitor started, which gives a starting component time to listen);
  answering again is logged once too. Nothing is logged while the state stays the same.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import aiohttp

log = logging.getLogger(__name__)


async def probe(session: aiohttp.ClientSession, url: str, timeout: float) -> str:
    """"" if ``url`` answers 200, else why not."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = (await resp.text())[:200]
            if resp.status != 200:
                return f"HTTP {resp.status}: {body.strip()}"
            return ""
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except (aiohttp.ClientError, OSError) as e:
        return str(e) or type(e).__name__


class HealthMonitor:
    """Probes ``targets`` (name -> ``/healthz`` URL) until cancelled; see the module doc."""

    def __init__(self, targets: dict[str, str], cafile: str | None, *, interval: float = 10.0,
                 timeout: float = 5.0, grace: float = 60.0) -> None:
        self.targets = dict(targets)
        self.cafile = cafile
        self.interval = interval
        self.timeout = timeout
        self.grace = grace
        self.failures: dict[str, str] = {}
        self.rounds = 0

    async def run(self) -> None:
        ctx = ssl.create_default_context(cafile=self.cafile)
        started = time.monotonic()
        reported: dict[str, bool] = {}  # name -> answering, as last logged
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, force_close=True)) as session:
            while True:
                names = list(self.targets)
                reasons = await asyncio.gather(*(probe(session, self.targets[n], self.timeout) for n in names))
                for name, reason in zip(names, reasons, strict=True):
                    self.failures[name] = reason
                    answering = not reason
                    was = reported.get(name)
                    if answering and was is False:
                        log.warning("%s answers %s again", name, self.targets[name])
                    elif not answering and (was or (was is None and time.monotonic() - started > self.grace)):
                        log.warning("%s is not answering %s: %s", name, self.targets[name], reason)
                    elif not answering and was is None:
                        continue  # still starting: not reported either way yet
                    reported[name] = answering
                self.rounds += 1
                await asyncio.sleep(self.interval)
