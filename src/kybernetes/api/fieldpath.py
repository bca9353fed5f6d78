"""The downward API: a pod's fields and a container's resources as the strings a container sees.

The Python home of Kubernetes' ``pkg/fieldpath`` (``ExtractFieldPathAsString``,
``FormatMap``) and ``pkg/api/v1/resource`` (``ExtractContainerResourceValue``). The kubelet uses
both for environment variables (``env[].valueFrom``) and for ``downwardAPI`` volume files.

Contract:

* :func:`field_value` answers the field paths the API accepts: ``metadata.name|namespace|uid``,
  ``metadata.labels`` / ``metadata.annotations`` (``key="value"`` lines sorted by key, values
  quoted as Go's ``%q``), ``metadata.labels['k']`` / ``metadata.annotations['k']`` (either
  quote), ``spec.nodeName``, ``spec.serviceAccountName``, ``status.podIP(s)`` and
  ``status.hostIP(s)`` (the plural forms comma-joined). The IPs come from the pod's status unless
  the caller knows them first (the kubelet, before it has written the status). Anything else
  raises ``ValueError``.
* :func:`container_resource_value` is a request or limit in units of the divisor (``0`` or unset
  means 1), rounded up; cpu is counted in millicores first, as Kubernetes' ``MilliValue``. A limit
  the container does not set is the node's allocatable amount (the kubelet merges it in); an
  unset request is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from kybernetes.api.quantity import parse_quantity


def go_quote(value: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) for a string."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif ch.isprintable() and code != 0xFFFD:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_map(m: Mapping[str, Any]) -> str:
    """``FormatMap``: ``key="value"`` lines sorted by key."""
    return "\n".join(f"{k}={go_quote(str(m[k]))}" for k in sorted(m))


def _subscript(path: str, prefix: str) -> str | None:
    """``metadata.labels['key']`` -> ``key``."""
    if path.startswith(prefix + "[") and path.endswith("]"):
        inner = path[len(prefix) + 1:-1]
        if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
            return inner[1:-1]
    return None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _status_ips(status: Mapping[str, Any], plural: str, singular: str) -> list[str]:
    ips = [str(i.get("ip", "")) for i in status.get(plural) or () if isinstance(i, dict)]
    return ips or ([str(status[singular])] if status.get(singular) else [])


def field_value(pod: Mapping[str, Any], path: str, *, pod_ips: Sequence[str] | None = None,
                host_ips: Sequence[str] | None = None) -> str:
    """``ExtractFieldPathAsString`` over a pod; ``pod_ips``/``host_ips`` override the status's."""
    meta, spec, status = _d(pod.get("metadata")), _d(pod.get("spec")), _d(pod.get("status"))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("status.podIP", "status.podIPs"):
        ips = list(pod_ips) if pod_ips is not None else _status_ips(status, "podIPs", "podIP")
        return (ips[0] if ips else "") if path == "status.podIP" else ",".join(ips)
    if path in ("status.hostIP", "status.hostIPs"):
        ips = list(host_ips) if host_ips is not None else _status_ips(status, "hostIPs", "hostIP")
        return (ips[0] if ips else "") if path == "status.hostIP" else ",".join(ips)
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(_d(meta.get(path.split(".")[1])))
    for prefix in ("metadata.labels", "metadata.annotations"):
        key = _subscript(path, prefix)
        if key is not None:
            return str(_d(meta.get(prefix.split(".")[1])).get(key, ""))
    raise ValueError(f"unsupported fieldPath {path!r}")


def container_resource_value(container: Mapping[str, Any], ref: Mapping[str, Any],
                             allocatable: Mapping[str, Any]) -> str:
    """``ExtractContainerResourceValue`` for ``ref`` (a ``ResourceFieldSelector``)."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise ValueError(f"unsupported resource {resource!r}")
    values = _d(_d(container.get("resources")).get(kind))
    if name in values:
        value = parse_quantity(values[name])
    elif kind == "limits" and name in allocatable:
        value = parse_quantity(allocatable[name])
    else:
        value = Fraction(0)
    divisor = parse_quantity(ref.get("divisor") or "1") or Fraction(1)
    if name == "cpu":
        value, divisor = Fraction(math.ceil(value * 1000)), Fraction(math.ceil(divisor * 1000)) or Fraction(1)
    return str(math.ceil(value / divisor))
