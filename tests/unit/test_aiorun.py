"""kybernetes.aiorun: the event loop and collector settings every daemon runs with."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Iterator

import pytest
import uvloop

from kybernetes import aiorun


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_runs_on_uvloop_with_the_collector_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KYB_EVENT_LOOP", raising=False)
    assert aiorun.run(_loop_type()) is uvloop.Loop
    assert gc.get_threshold()[0] == aiorun.GEN0_THRESHOLD
    assert gc.get_freeze_count() > 0


def test_the_stock_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYB_EVENT_LOOP", "asyncio")
    loop_type = aiorun.run(_loop_type())
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.AbstractEventLoop)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_on_signals_sets_the_event(signum: signal.Signals) -> None:
    async def main() -> bool:
        stop = aiorun.stop_on_signals()
        assert not stop.is_set()
        os.kill(os.getpid(), signum)
        await asyncio.wait_for(stop.wait(), 5)
        return stop.is_set()

    assert asyncio.run(main())
