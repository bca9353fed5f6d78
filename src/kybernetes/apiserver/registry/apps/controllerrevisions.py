"""apps/v1 ControllerRevisions.

Mirrors ``pkg/registry/apps/<resource>`` with the rules of ``pkg/apis/apps/validation`` and the
``apps/v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import validate_nonneg
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- ControllerRevision ------------------------------------------------------------------------


class ControllerRevisionStrategy(Strategy):
    kind = "ControllerRevision"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("data") is None:
            errs.append(v.required(Path("data"), "data is mandatory"))
        errs += validate_nonneg(obj.get("revision", 0), Path("revision"))
        return errs

    def default(self, obj: Obj) -> None:
        # ``revision`` is a plain int64 without omitempty: it is always there.
        obj.setdefault("revision", 0)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + v.immutable(new.get("data"), old.get("data"), Path("data"))
