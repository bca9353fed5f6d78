"""The one type every component passes objects around as.

An API object is its JSON form: a ``dict`` with the wire's camelCase keys, exactly what goes over
HTTP (kybernetes has no typed structs; the schema in :mod:`kybernetes.api.schema` says what a
kind may hold). Objects a cache hands out are shared and must not be mutated by their reader.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
"""An API object (or a part of one) in its JSON form."""

__all__ = ["Obj"]
