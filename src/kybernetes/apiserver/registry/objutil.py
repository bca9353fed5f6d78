"""Object helpers of the generic store: an object's stored bytes, deep copies of JSON values,
generated names and uids.

:func:`encode` and :func:`decode` are the only way objects enter and leave the storage backend's
bytes; every other helper here works on the JSON form (``Obj``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import orjson

from kybernetes.api import gojson
from kybernetes.api.obj import Obj

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"

_random_pool = b""
_RANDOM_POOL_BYTES = 4096


def _random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG, drawn from a pool refilled by one ``os.urandom`` call.

    Each ``os.urandom`` call releases the GIL, and under load getting it back costs far more
    than the syscall itself; one call per few hundred writes instead of one (or five) per write.
    """
    global _random_pool
    if len(_random_pool) < n:
        _random_pool = os.urandom(_RANDOM_POOL_BYTES)
    out, _random_pool = _random_pool[:n], _random_pool[n:]
    return out


def random_suffix(n: int, alphabet: str = _NAME_CHARS) -> str:
    """``n`` characters chosen uniformly from ``alphabet`` (like ``secrets.choice``), as generateName does."""
    size = len(alphabet)
    limit = 256 - 256 % size  # rejection sampling keeps every character equally likely
    out: list[str] = []
    while len(out) < n:
        for byte in _random_bytes(n - len(out)):
            if byte < limit:
                out.append(alphabet[byte % size])
    return "".join(out)


def new_uid() -> str:
    """A random (version 4) UUID string, like ``str(uuid.uuid4())``."""
    b = _random_bytes(16)
    h = b.hex()
    # Version 4 in the high nibble of byte 6; RFC 4122 variant (10xx) in byte 8.
    return (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{(b[8] & 0x3F | 0x80):02x}{h[18:20]}-{h[20:]}")


def copy_json(v: Any) -> Any:
    """A deep copy of a JSON-shaped value, several times faster than ``copy.deepcopy``.

    Anything that is not plain JSON (YAML timestamps, subclasses) goes through deepcopy.
    """
    t = type(v)
    if t is dict:
        return {k: copy_json(x) for k, x in v.items()}
    if t is list:
        return [copy_json(x) for x in v]
    if t is str or t is int or t is bool or t is float or v is None:
        return v
    return copy.deepcopy(v)


def encode(obj: Obj) -> bytes:
    """The stored bytes of ``obj``. First puts its envelope and metadata in Kubernetes' field
    order, in place (:func:`kybernetes.api.gojson.order_fields`), so that every read serves that
    order for free. ``resourceVersion`` is the revision, known only once written: it is stored
    empty, keeping its place, and :func:`decode` fills it in."""
    gojson.order_fields(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("resourceVersion"):
        obj = {**obj, "metadata": {**meta, "resourceVersion": ""}}
    return orjson.dumps(obj)


def decode(value: bytes, revision: int) -> Obj:
    """The object stored as ``value`` at ``revision``, its resourceVersion filled in."""
    obj: Obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def meta_of(obj: Obj) -> Obj:
    """``obj``'s metadata, created empty (in place) if it has none."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m
