"""An open watch holds at most its two pending timers (the end, the next bookmark), however long it
lives: the soak of issue 20 found 56,778 fired bookmark timers kept by 1,000 watches after 30 min
(one every 30 s per watch, each with its context), the API server's heap growing 4% in 30 min."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

from kybernetes.apiserver.registry.watchstream import WatchStream
from kybernetes.storage.cacher import Watcher


def _timers_of(stream: WatchStream) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects()
               if isinstance(o, asyncio.TimerHandle) and getattr(o, "_callback", None) in
               (stream._on_tick, stream._on_expire))


async def test_a_long_watch_keeps_only_its_pending_timers() -> None:
    stream = WatchStream([], Watcher("/configmaps/"), None, None, None, SimpleNamespace(revision=7),  # type: ignore[arg-type]
                         bookmark_interval=0.002, timeout=3600.0)
    bookmarks = 0
    async for batch in stream.batches():
        assert [ev.type for ev in batch] == ["BOOKMARK"]
        bookmarks += 1
        if bookmarks == 50:
            break
    assert _timers_of(stream) <= 2
    stream.close()
    assert _timers_of(stream) == 0
