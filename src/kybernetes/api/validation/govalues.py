"""A bad value in a field error as Go prints it: ``field.Invalid`` formats the value with ``%#v``
(``[]string{"v3"}``, ``map[string]string(nil)``, ``[]byte{0x1}``) and strings with ``%q``.
:class:`GoValue` holds such a rendering so that a field error prints it as is."""

from __future__ import annotations

import json
from typing import Any


class GoValue:
    """A value already rendered as Go's ``%#v`` renders it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def go_quote(s: str) -> str:
    """Go's ``%q`` of a string (printable text: JSON's escapes are Go's)."""
    return json.dumps(s, ensure_ascii=False)


def go_strings(value: Any, type_name: str = "[]string") -> GoValue:
    """``%#v`` of a string slice (``[]string(nil)`` when empty)."""
    if not value:
        return GoValue(f"{type_name}(nil)")
    return GoValue(type_name + "{" + ", ".join(go_quote(str(x)) for x in value) + "}")


def go_string_map(value: Any) -> GoValue:
    """``%#v`` of a ``map[string]string`` (keys sorted, as Go prints maps)."""
    if not isinstance(value, dict) or not value:
        return GoValue("map[string]string(nil)")
    return GoValue("map[string]string{" + ", ".join(f"{go_quote(k)}:{go_quote(str(value[k]))}"
                                                    for k in sorted(value)) + "}")


def go_bytes(data: bytes) -> GoValue:
    return GoValue("[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}")
