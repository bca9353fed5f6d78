"""What several core kinds' strategies share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api.validation.fields import as_dict
from kybernetes.apiserver.registry.strategy import Obj

MAX_DATA_SIZE = 1024 * 1024  # ConfigMaps and Secrets: 1 MiB of data in total


def field_reader(*path: str) -> Callable[[Obj], str]:
    """A field selector reading a nested string field ('' when absent)."""

    def get(obj: Obj) -> str:
        cur: Any = obj
        for name in path:
            cur = as_dict(cur).get(name)
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return "" if cur is None else str(cur)

    return get
