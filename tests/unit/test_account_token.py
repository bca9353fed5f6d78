"""The reset-on-401 logic of a controller's ServiceAccount token (controllers.credentials.AccountToken),
on a fake clock: a 401 on a request begun after the token arrived resets it, one begun before does
not; many 401s at once make one renewal; a 401 that persists renews at most once per interval."""

from __future__ import annotations

import asyncio

import pytest

from kybernetes import errors
from kybernetes.controllers.credentials import AccountToken


class _Fetcher:
    """Hands out tokens ``t1``, ``t2``, ... on the fake clock; ``gate`` (if set) holds each fetch."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return f"t{self.calls}", 3600.0


def _source(now: list[float], min_interval: float = 5.0) -> tuple[AccountToken, _Fetcher]:
    fetch = _Fetcher(now)
    return AccountToken("deployment-controller", fetch, clock=lambda: now[0], min_interval=min_interval), fetch


async def test_a_401_after_the_token_arrived_resets_it_and_one_before_does_not() -> None:
    now = [100.0]
    source, fetch = _source(now)
    await source.refresh()
    assert await source.token() == "t1" and fetch.calls == 1

    source.reset_older_than(99.0)  # that request began before t1 arrived: it sent an older token
    assert not source.stale
    assert await source.token() == "t1" and fetch.calls == 1

    now[0] = 110.0
    source.reset_older_than(105.0)  # began after t1 arrived: t1 itself was refused
    assert source.stale
    assert await source.token() == "t2" and fetch.calls == 2
    assert not source.stale
    assert await source.token() == "t2" and fetch.calls == 2  # no reset, no fetch


async def test_concurrent_401s_make_one_renewal() -> None:
    now = [100.0]
    source, fetch = _source(now)
    await source.refresh()
    now[0] = 200.0
    fetch.gate = asyncio.Event()
    for _ in range(5):
        source.reset_older_than(150.0)
    waiters = [asyncio.create_task(source.token()) for _ in range(10)]
    await asyncio.sleep(0)
    while fetch.calls < 2:
        await asyncio.sleep(0)
    source.reset_older_than(150.0)  # a 401 seen while the renewal is under way: it is that renewal's
    fetch.gate.set()
    assert await asyncio.gather(*waiters) == ["t2"] * 10
    assert fetch.calls == 2
    source.reset_older_than(150.0)  # a late 401 of a request that sent t1
    assert await source.token() == "t2" and fetch.calls == 2


async def test_a_persistent_401_renews_at_most_once_per_interval() -> None:
    now = [100.0]
    source, fetch = _source(now, min_interval=5.0)
    await source.refresh()
    now[0] = 101.0
    source.reset_older_than(100.5)  # within the interval of the first fetch: t1 is sent again
    assert await source.token() == "t1" and fetch.calls == 1
    now[0] = 105.0
    assert await source.token() == "t2" and fetch.calls == 2

    now[0] = 106.0
    source.reset_older_than(105.5)  # t2 refused too, within the interval: t2 is sent again
    assert await source.token() == "t2" and fetch.calls == 2
    assert source.stale
    now[0] = 110.0
    assert await source.token() == "t3" and fetch.calls == 3

    now[0] = 116.0
    source.reset_older_than(115.0)
    fetch.fail = errors.Forbidden("serviceaccounts is forbidden")
    assert await source.token() == "t3" and fetch.calls == 4  # a failed renewal sends the old token
    assert source.stale
    now[0] = 120.0
    assert await source.token() == "t3" and fetch.calls == 4  # and is not tried again at once
    fetch.fail = None
    now[0] = 121.0
    assert await source.token() == "t5" and fetch.calls == 5 and not source.stale


async def test_renewal_is_due_at_80_percent_of_the_lifetime_and_refresh_raises() -> None:
    now = [0.0]
    source, fetch = _source(now)
    await source.refresh()
    now[0] = 0.79 * 3600
    assert not source.due()
    now[0] = 0.8 * 3600
    assert source.due()
    fetch.fail = ConnectionError("refused")
    with pytest.raises(ConnectionError):
        await source.refresh()
    assert await source.token() == "t1"
