"""The sync loop of a node agent that owns one nftables table: one home for kube-proxy's proxier
and the NetworkPolicy controller.

Guarantees of :meth:`SyncLoop.run`:

- the first sync waits for ``ready`` (the informers' initial lists) and is forced;
- :meth:`SyncLoop.mark_dirty` leads to a sync no sooner than ``min_sync_period`` after the previous
  one started (the debounce: a burst of changes becomes one sync);
- with no change for ``sync_period``, a forced sync (re-apply even if the rendered text did not
  change: the periodic full resync);
- every ``check_period`` between syncs, :class:`ChainProbe` reads one small chain of the table
  (``nft list chain``); when it is gone or no longer reads as it did after our last apply (the
  table was deleted, ``nft flush table``, ``nft flush ruleset``), a forced sync follows at once,
  so a table removed by hand comes back within ``check_period``, not at the next resync;
- a failed sync is logged, kept in ``last_error`` and retried (forced) after ``retry_backoff``.

``sync(force)`` returns whether it applied the table; after an apply the probe re-reads its chain.
Every wait is on the given :class:`~kybernetes.client.workqueue.Clock` (tests use a ``FakeClock``);
``rounds`` counts finished sync rounds (applied, unchanged or failed).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

from kybernetes.client.workqueue import Clock

log = logging.getLogger(__name__)


class ChainProbe:
    """Whether one chain of our table still reads as it did after our last apply.

    One small chain (a base chain with a rule or two) stands for the table: deleting the table,
    flushing it or flushing the ruleset all change its listing, and listing it is cheap whatever
    the size of the rest of the table."""

    def __init__(self, family: str, table: str, chain: str, nft: str) -> None:
        self.args = [nft, "list", "chain", family, table, chain]
        self._expected: str | None = None

    def _list(self) -> str | None:
        res = subprocess.run(self.args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return res.stdout if res.returncode == 0 else None

    def remember(self) -> None:
        """Read the chain as we just applied it."""
        self._expected = self._list()

    def intact(self) -> bool:
        listing = self._list()
        return listing is not None and listing == self._expected


class SyncLoop:
    """Debounced syncs on changes, periodic resyncs, and a cheap check of the table in between."""

    def __init__(self, name: str, sync: Callable[[bool], Awaitable[bool]], clock: Clock, *,
                 min_sync_period: float, sync_period: float, check_period: float,
                 probe: ChainProbe | None = None, retry_backoff: float = 1.0) -> None:
        self.name = name
        self._sync = sync
        self.clock = clock
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.check_period = check_period
        self.probe = probe
        self.retry_backoff = retry_backoff
        self._dirty = asyncio.Event()
        self._last_sync = float("-inf")  # the first sync does not wait for the debounce
        self.rounds = 0
        self.last_error: BaseException | None = None

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[Any]]) -> None:
        """Sync until ``stop`` is set (see the module doc)."""
        stopper = asyncio.ensure_future(stop.wait())
        try:
            synced = asyncio.ensure_future(ready())
            await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            force = True
            while not stop.is_set():
                wait = max(0.0, self._last_sync + self.min_sync_period - self.clock.now())
                if wait:
                    await self.clock.sleep(wait)  # the debounce: changes meanwhile fold into this sync
                self._dirty.clear()
                self._last_sync = self.clock.now()
                try:
                    if await self._sync(force) and self.probe is not None:
                        await asyncio.to_thread(self.probe.remember)
                except Exception as e:
                    self.last_error, force = e, True
                    self.rounds += 1
                    log.error("%s sync failed: %s; retrying in %.1fs", self.name, e, self.retry_backoff)
                    await self.clock.sleep(self.retry_backoff)
                    self._dirty.set()
                    continue
                self.last_error = None
                self.rounds += 1
                force = await self._wait_for_change(stopper)
        finally:
            stopper.cancel()

    async def _wait_for_change(self, stopper: asyncio.Future[Any]) -> bool:
        """Wait for a change, the periodic resync, a damaged table or the stop; True to force."""
        resync_at = self.clock.now() + self.sync_period
        while True:
            left = resync_at - self.clock.now()
            if left <= 0:
                return True
            dirty: asyncio.Future[Any] = asyncio.ensure_future(self._dirty.wait())
            timer: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(min(left, self.check_period)))
            done, _ = await asyncio.wait({dirty, timer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            dirty.cancel()
            timer.cancel()
            if dirty in done or stopper in done:
                return False
            if self.probe is not None and self.clock.now() < resync_at and \
                    not await asyncio.to_thread(self.probe.intact):
                log.warning("%s: table %s was removed or changed by hand; restoring it", self.name,
                            " ".join(self.probe.args[3:5]))
                return True
