"""The Store protocol: what the API server needs of a key-value store, and nothing more.

The model is etcd v3's, which is also Kubernetes' model:

- One global, strictly increasing **revision**. Every successful write (create, update, delete)
  takes the next revision; an object's ``mod_revision`` is the revision of the write that produced
  it, and is what the API calls ``resourceVersion``.
- **create** fails on an existing key (:class:`KeyExistsError`); **update** and **delete** are
  compare-and-swap on the key's current ``mod_revision`` (:class:`RevisionMismatchError`,
  :class:`KeyNotFoundError`).
- **list** reads a consistent snapshot at a revision (0 = latest), ordered by key, paginated by
  ``limit`` and ``start_after``; it tells the revision it was read at.
- **watch** from a revision yields every change to keys under a prefix with ``revision > start``,
  in revision order, exactly once. A start older than the compaction point raises
  :class:`CompactedError` (the API turns it into 410 Gone).
- **compact** forgets history before a revision; the current value of every live key stays.
- **progress**: a watch opened with ``progress=True`` also yields ``PROGRESS`` events (no key) whose
  revision says "every change under the prefix up to here has been delivered"; the store sends one
  soon after :meth:`Store.request_progress`. The watch cache uses them to know it is current even
  when the newest revisions were written outside its prefix (etcd's WatchProgressRequest).

Keys are strings like ``/registry/pods/default/nginx``; values are opaque bytes (the object's JSON,
without its resourceVersion, which the reader fills in from ``mod_revision``).

``tests/storage/store_suite.py`` is this contract as tests: every backend must pass it, so that the
API server cannot tell backends apart. The backends: SQLite (``storage/sqlite.py``, embedded) and
etcd v3 (``storage/etcd.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


class StoreError(Exception):
    """Base of the store's own errors; the API server translates them to Status errors."""


class UnavailableError(StoreError):
    """The store cannot be reached (every etcd member down or unreachable): nothing was read or
    written. Transient: the same call may succeed once the store is back, so the API server answers
    503 with ``Retry-After`` instead of a 500."""


class OutOfSpaceError(StoreError):
    """The store has no room for the write (its disk is full; etcd's space quota is exceeded):
    nothing of the write happened, reads go on, and the same write succeeds once there is room.
    The API server answers a 500 that says so (kube-apiserver's answer to etcd's NOSPACE), and
    logs a line, not a traceback."""


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatchError(StoreError):
    """Compare-and-swap lost: the key's current revision is not the one expected."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"revision mismatch on {key}: expected {expected}, have {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """The requested revision is older than the compaction point."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} has been compacted (oldest available is {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """A read at a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is newer than the current revision {current}")
        self.requested = requested
        self.current = current


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int
    """The revision the list was read at."""
    more: bool
    """True if keys after the last item remain (ask again with ``start_after=items[-1].key``)."""


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["PUT", "DELETE", "PROGRESS"]
    key: str
    revision: int
    value: bytes | None
    """The value after the write (for DELETE: None)."""
    prev_value: bytes | None
    """The value before the write (None for a create)."""
    create_revision: int = 0

    @property
    def is_create(self) -> bool:
        return self.type == "PUT" and self.prev_value is None


@runtime_checkable
class Store(Protocol):
    async def get(self, key: str) -> KeyValue | None:
        """The live value of ``key``, or None."""
        ...

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        """Live keys under ``prefix`` at ``revision`` (0 = now), ordered, after ``start_after``.

        ``limit`` 0 means all. Raises :class:`CompactedError` for a compacted revision and
        :class:`FutureRevisionError` for one not reached yet.
        """
        ...

    async def count(self, prefix: str) -> int:
        """How many live keys are under ``prefix``."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Create ``key``; returns the new revision. Raises :class:`KeyExistsError`."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace ``key`` if its mod_revision is ``expected_revision``; returns the new revision."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        """Delete ``key`` (if ``expected_revision`` is non-zero, only at that revision).

        Returns the deletion's revision and the value deleted.
        """
        ...

    def watch(self, prefix: str, start_revision: int, *, progress: bool = False) -> AsyncIterator[Event]:
        """Every change under ``prefix`` with revision > ``start_revision``, in order, forever.

        Raises :class:`CompactedError` (on first iteration) if ``start_revision`` is compacted.
        Closing the iterator (``aclose``) ends the watch. With ``progress``, ``PROGRESS`` events
        come in between (see the module docstring).
        """
        ...

    async def request_progress(self) -> None:
        """Have every watch opened with ``progress=True`` yield a ``PROGRESS`` event soon."""
        ...

    async def current_revision(self) -> int:
        ...

    async def compacted_revision(self) -> int:
        ...

    async def compact(self, revision: int) -> None:
        """Forget history at or before ``revision`` (live values are kept)."""
        ...

    async def close(self) -> None:
        ...
