"""JSON bytes as kube-apiserver writes them (Go's ``encoding/json`` through apimachinery's serializer).

The contract, for every JSON body the API server sends:

* compact output is ``json.NewEncoder(w).Encode(obj)``: the object and one ``\\n``, so a watch
  stream is one event per line and every other body ends with a newline too;
* ``pretty`` output (``?pretty=true``, or a curl/Wget/browser user agent) is
  ``json.MarshalIndent(obj, "", "  ")``: two-space indent, no newline at the end;
* Go escapes ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026`` and the line and
  paragraph separators U+2028/U+2029 as ``\\u2028``/``\\u2029``; so does :func:`dumps`.

Field order is the caller's (dicts keep insertion order): :mod:`kybernetes.errors` builds Status
objects in Go's order, and the registry stores every object after :func:`order_fields` has put
its envelope and metadata in Go's order, so reads cost nothing extra. orjson does the encoding;
the escapes cost one scan of the output, and a rewrite only when one of those five characters
is present.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_GO_ESCAPED = re.compile(rb"[<>&]|\xe2\x80[\xa8\xa9]")  # U+2028 and U+2029 in UTF-8
_ESCAPES = {b"<": b"\\u003c", b">": b"\\u003e", b"&": b"\\u0026",
            "\u2028".encode(): b"\\u2028", "\u2029".encode(): b"\\u2029"}


def dumps(obj: Any, *, pretty: bool = False) -> bytes:
    """``obj`` as kube-apiserver's JSON serializer writes it (see the module docstring)."""
    if pretty:
        return escape(orjson.dumps(obj, option=orjson.OPT_INDENT_2))
    return escape(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))


def escape(data: bytes) -> bytes:
    """Go's HTML-safe escaping of already encoded JSON. The five characters can only occur inside
    strings (JSON syntax has none of them), so a byte-level rewrite is exact."""
    # Substring tests run at memory speed; the regex (far slower) only when one of them hits.
    if b"<" not in data and b">" not in data and b"&" not in data and b"\xe2" not in data:
        return data
    return _GO_ESCAPED.sub(lambda m: _ESCAPES[m.group()], data)


# ObjectMeta's fields in the order of the Go struct (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields")
_META_RANK = {k: i for i, k in enumerate(META_ORDER)}
# TypeMeta (kind, apiVersion) and ObjectMeta come first in every kind's struct; then spec and
# status for most kinds, or the kind's own fields, in the order of its struct.
_ENVELOPE = ("kind", "apiVersion", "metadata")
_TOP_ORDER: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "ConfigMap"): ("immutable", "data", "binaryData"),
    ("", "Secret"): ("immutable", "data", "stringData", "type"),
    ("", "ServiceAccount"): ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    ("", "Event"): ("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
                    "type", "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"),
    ("events.k8s.io", "Event"): ("eventTime", "series", "reportingController", "reportingInstance", "action",
                                 "reason", "regarding", "related", "note", "type", "deprecatedSource",
                                 "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"),
    ("discovery.k8s.io", "EndpointSlice"): ("addressType", "endpoints", "ports"),
    ("apps", "ControllerRevision"): ("data", "revision"),
    ("scheduling.k8s.io", "PriorityClass"): ("value", "globalDefault", "description", "preemptionPolicy"),
    ("storage.k8s.io", "StorageClass"): ("provisioner", "parameters", "reclaimPolicy", "mountOptions",
                                         "allowVolumeExpansion", "volumeBindingMode", "allowedTopologies"),
    ("rbac.authorization.k8s.io", "ClusterRole"): ("rules", "aggregationRule"),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("subjects", "roleRef"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("subjects", "roleRef"),
}
_DEFAULT_TOP = ("spec", "status")
_TOP_RANKS: dict[tuple[str, ...], dict[str, int]] = {}


def _top_rank(fields: tuple[str, ...]) -> dict[str, int]:
    rank = _TOP_RANKS.get(fields)
    if rank is None:
        rank = _TOP_RANKS[fields] = {k: i for i, k in enumerate(_ENVELOPE + fields)}
    return rank


def order_fields(obj: dict[str, Any]) -> None:
    """Put ``obj``'s top-level fields and ``metadata`` in the Go structs' order, in place (the
    dicts keep their identity); fields the table does not know keep their order, after the
    envelope. ``metadata.resourceVersion`` gets its place even when not yet known (an empty
    placeholder the store fills in on read). Costs a key scan when already in order."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        if "resourceVersion" not in meta:
            meta["resourceVersion"] = ""
        _reorder(meta, _META_RANK, len(META_ORDER))
    api_version = obj.get("apiVersion")
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    fields = _TOP_ORDER.get((group, str(obj.get("kind"))), _DEFAULT_TOP)
    _reorder(obj, _top_rank(fields), len(_ENVELOPE))


def _reorder(d: dict[str, Any], rank: dict[str, int], other: int) -> None:
    last = -1
    for k in d:
        r = rank.get(k, other)
        if r < last:
            break
        last = r
    else:
        return  # already in order
    items = sorted(d.items(), key=lambda kv: rank.get(kv[0], other))  # stable: others keep their order
    d.clear()
    d.update(items)
