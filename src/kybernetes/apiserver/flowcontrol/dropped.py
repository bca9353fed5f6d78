"""The ``Retry-After`` of rejected requests, per priority level (Kubernetes' droppedRequestsTracker).

It starts at 1 second. When a second begins, the drops of the last ``retry_after`` seconds are
counted: at least 3 x ``retry_after`` drops double it (at most once per ``retry_after`` seconds,
up to 32); fewer than ``retry_after`` drops lower it by one (down to 1).
"""

from __future__ import annotations

from collections import deque

MAX_RETRY_AFTER = 32


class _Level:
    __slots__ = ("count", "current", "history", "retry_after", "updated")

    def __init__(self) -> None:
        self.history: deque[tuple[int, int]] = deque()
        self.current = -1
        self.count = 0
        self.retry_after = 1
        self.updated = 0


class DroppedRequests:
    def __init__(self) -> None:
        self._levels: dict[str, _Level] = {}

    def record(self, level: str, unix_second: int) -> None:
        s = self._levels.get(level)
        if s is None:
            s = self._levels[level] = _Level()
        if s.current == unix_second:
            s.count += 1
            return
        if s.current >= 0:
            s.history.append((s.current, s.count))
        while s.history and unix_second - s.history[0][0] > MAX_RETRY_AFTER:
            s.history.popleft()
        s.current, s.count = unix_second, 1
        self._update(s, unix_second)

    @staticmethod
    def _update(s: _Level, now: int) -> None:
        dropped = sum(n for t, n in s.history if now - t <= s.retry_after and t < now)
        if now - s.updated >= s.retry_after and dropped >= 3 * s.retry_after:
            s.retry_after = min(s.retry_after * 2, MAX_RETRY_AFTER)
            s.updated = now
        elif dropped < s.retry_after and s.retry_after > 1:
            s.retry_after -= 1

    def retry_after(self, level: str) -> int:
        s = self._levels.get(level)
        return s.retry_after if s is not None else 1
