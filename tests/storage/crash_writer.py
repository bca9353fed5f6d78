"""Writes keys into a SQLiteStore until killed, printing every acknowledged write.

Used by the kill -9 test in ``test_sqlite.py``: each stdout line ``<revision> <key>`` is printed
(and flushed) only after the store acknowledged the write, so every line the parent has read names
a write that must survive the crash. Several writers run at once so group commit is exercised.

Usage: python crash_writer.py PATH [WRITERS]
"""

from __future__ import annotations

import asyncio
import sys

from kybernetes.storage.sqlite import SQLiteStore


async def main(path: str, writers: int) -> None:
    store = await SQLiteStore.open(path, compact_interval=0)

    async def write(w: int) -> None:
        i = 0
        while True:
            key = f"/crash/{w}/{i:08d}"
            rev = await store.create(key, f"value-{w}-{i}".encode())
            sys.stdout.write(f"{rev} {key}\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(*(write(w) for w in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8))
