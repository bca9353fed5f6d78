"""The aggregated API servers' OpenAPI, merged into the API server's own documents.

As kube-aggregator's OpenAPI controllers do: each available remote APIService's backend is asked
for ``/openapi/v2`` and for its group/version's ``/openapi/v3`` document (found through the
backend's ``/openapi/v3`` index), when the APIService first passes its check and again whenever its
discovery changes. Then:

* ``/openapi/v3`` lists ``apis/<group>/<version>`` of every remote APIService whose document was
  fetched (``serverRelativeURL`` with the document's own hash), and ``/openapi/v3/apis/<g>/<v>``
  serves that document as the backend gave it;
* ``/openapi/v2`` is the local document with each backend's ``paths`` and ``definitions`` added
  (what the local document already defines wins, as the aggregator keeps the first definition).

Merged documents are rebuilt only when the local document or a remote one changed.
"""

from __future__ import annotations

from typing import Any

import orjson

from kybernetes.api.obj import Obj
from kybernetes.apiserver.transport.openapi import Document, content_hash, serialize


class RemoteOpenAPI:
    """The fetched documents, by APIService name, and the merged documents built from them."""

    def __init__(self) -> None:
        self.v3: dict[str, tuple[str, Document]] = {}
        """APIService name -> (its v3 key ``apis/<g>/<v>``, the backend's document)."""
        self.v2: dict[str, Obj] = {}
        self.asked: set[str] = set()
        """APIServices whose backend was asked (whether or not it serves OpenAPI)."""
        self.generation = 0
        self._merged: dict[str, tuple[tuple[str, int], Document]] = {}

    def record(self, name: str, key: str, v3: bytes | None, v2: Obj | None) -> None:
        """Record what the backend of APIService ``name`` serves (None: nothing usable)."""
        self.asked.add(name)
        if v3 is not None:
            self.v3[name] = (key, Document(v3, content_hash(v3)))
        if v2 is not None:
            self.v2[name] = v2
        self.generation += 1

    def forget_except(self, names: set[str]) -> None:
        gone = ({*self.v3, *self.v2}) - names
        self.asked &= names
        for name in gone:
            self.v3.pop(name, None)
            self.v2.pop(name, None)
        if gone:
            self.generation += 1

    def _cached(self, which: str, local: Document, build: Any) -> Document:
        state = (local.hash, self.generation)
        hit = self._merged.get(which)
        if hit is None or hit[0] != state:
            body = build()
            hit = (state, Document(body, content_hash(body)))
            self._merged[which] = hit
        return hit[1]

    def index(self, local: Document) -> Document:
        if not self.v3:
            return local

        def build() -> bytes:
            doc = orjson.loads(local.body)
            for key, remote in self.v3.values():
                doc.setdefault("paths", {})[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={remote.hash}"}
            return serialize(doc)

        return self._cached("v3", local, build)

    def document(self, key: str) -> Document | None:
        return next((doc for k, doc in self.v3.values() if k == key.strip("/")), None)

    def merged_v2(self, local: Document) -> Document:
        if not self.v2:
            return local

        def build() -> bytes:
            doc = orjson.loads(local.body)
            for remote in self.v2.values():
                for section in ("paths", "definitions"):
                    into = doc.setdefault(section, {})
                    for k, val in (remote.get(section) or {}).items():
                        into.setdefault(k, val)
            return serialize(doc)

        return self._cached("v2", local, build)
