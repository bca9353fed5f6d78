"""The sync loop of a node agent that owns one nftables table: one home for kube-proxy's proxier
and the NetworkPolicy controller.

Guarantees of :meth:`SyncLoop.run`:

- the first sync waits for ``ready`` (the informers' initial lists) and is forced;
- :meth:`SyncLoop.mark_dirty` leads to a sync no sooner than ``min_sync_period`` after the previous
  one started (the debounce: a burst of changes becomes one sync);
- with no change for ``sync_period``, a forced sync (re-apply even if the rendered text did not
  change: the periodic full resync);
- every ``check_period`` between syncs, :class:`ChainProbe` reads one small chain of the table
  (``nft -j list chain``); when it is gone or no longer reads as it did after our last apply (the
  table was deleted, ``nft flush table``, ``nft flush ruleset``), a forced sync follows at once,
  so a table removed by hand comes back within ``check_period``, not at the next resync; this
  holds too for a change that lands between an apply and the probe's read of it;
- a failed sync is logged, kept in ``last_error`` and retried (forced) after ``retry_backoff``.

``sync(force)`` returns the table text it applied (None: nothing applied); after an apply the
probe reads its chain and checks it against that text.
Every wait is on the given :class:`~kybernetes.client.workqueue.Clock` (tests use a ``FakeClock``);
``rounds`` counts finished sync rounds (applied, unchanged or failed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

from kybernetes.client.workqueue import Clock
from kybernetes.proxy.nftables import chain_rules

log = logging.getLogger(__name__)


class ChainProbe:
    """Whether one chain of our table still reads as it did after our last apply.

    One small chain (a base chain with a rule or two) stands for the table: deleting the table,
    flushing it or flushing the ruleset all change its listing, and listing it is cheap whatever
    the size of the rest of the table. The listing is nft's JSON, which carries each rule's
    handle: rules deleted and added again by someone else read differently from ours.

    The read after an apply is a separate ``nft`` run, so a hand change can land between the two;
    :meth:`remember` therefore takes the listing for ours only if the chain holds as many rules as
    the applied text put there (a flush leaves none, a deleted table no chain)."""

    def __init__(self, family: str, table: str, chain: str, nft: str) -> None:
        self.family, self.table, self.chain = family, table, chain
        self.args = [nft, "-j", "list", "chain", family, table, chain]
        self._expected: str | None = None

    def _list(self) -> tuple[str, int] | None:
        """The chain's listing and how many rules it holds; None: no such chain."""
        res = subprocess.run(self.args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            return None
        try:
            items = json.loads(res.stdout)["nftables"]
        except (ValueError, KeyError, TypeError):
            return None
        return res.stdout, sum(1 for item in items if isinstance(item, dict) and "rule" in item)

    def remember(self, applied: str) -> None:
        """Read the chain as the apply of table text ``applied`` left it. When it does not hold the
        rules ``applied`` puts there, something changed it since: nothing is remembered, so the
        next :meth:`intact` is False and the table is restored."""
        want = len(chain_rules(applied, self.chain))
        listing = self._list()
        if listing is not None and listing[1] == want:
            self._expected = listing[0]
            return
        self._expected = None
        log.warning("table %s %s changed between our apply and its read (chain %s holds %s of our %d rules); "
                    "restoring it at the next check", self.family, self.table, self.chain,
                    "none" if listing is None else listing[1], want)

    def intact(self) -> bool:
        listing = self._list()
        return listing is not None and listing[0] == self._expected


class SyncLoop:
    """Debounced syncs on changes, periodic resyncs, and a cheap check of the table in between."""

    def __init__(self, name: str, sync: Callable[[bool], Awaitable[str | None]], clock: Clock, *,
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
                    applied = await self._sync(force)
                    if applied is not None and self.probe is not None:
                        await asyncio.to_thread(self.probe.remember, applied)
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
                log.warning("%s: table %s %s was removed or changed by hand; restoring it", self.name,
                            self.probe.family, self.probe.table)
                return True
