"""ConfigMaps and Secrets: data keys, sizes, immutability, stringData.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

import json
from typing import Any

from kybernetes.api import gobytes
from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict
from kybernetes.apiserver.registry.core.common import MAX_DATA_SIZE, field_reader
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- ConfigMap and Secret -------------------------------------------------------------------


def _validate_keys(data: Any, path: Path) -> list[FieldError]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [v.type_invalid(path, data, "must be a map of string keys to values")]
    errs: list[FieldError] = []
    for key in data:
        errs.extend(v.invalid(path.key(key), key, m) for m in v.is_config_map_key(key))
    return errs


def _decode_b64(value: Any) -> bytes | None:
    """The bytes of a ``[]byte`` map value (the typed decoder has made it canonical base64)."""
    if not isinstance(value, str):
        return None
    try:
        return gobytes.decode(value)
    except gobytes.CorruptInputError:
        return None


def _validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    """Objects marked ``immutable: true`` never change their data, nor become mutable again."""
    if not old.get("immutable"):
        return []
    errs: list[FieldError] = []
    if not new.get("immutable"):
        errs.append(v.forbidden(Path("immutable"), "field is immutable when `immutable` is set"))
    for field in fields:
        if new.get(field) != old.get(field):
            errs.append(v.forbidden(Path(field), "field is immutable when `immutable` is set"))
    return errs


class ConfigMapStrategy(Strategy):
    kind = "ConfigMap"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        data, binary = obj.get("data"), obj.get("binaryData")
        errs = _validate_keys(data, Path("data")) + _validate_keys(binary, Path("binaryData"))
        total = 0
        for key, value in as_dict(data).items():
            if not isinstance(value, str):
                errs.append(v.type_invalid(Path("data").key(key), value, "must be a string"))
                continue
            total += len(value.encode())
            if key in as_dict(binary):
                errs.append(v.invalid(Path("data").key(key), key, "duplicate of key present in binaryData"))
        for key, value in as_dict(binary).items():
            raw = _decode_b64(value)
            if raw is None:
                errs.append(v.invalid(Path("binaryData").key(key), "<value omitted>", "must be base64-encoded bytes"))
                continue
            total += len(raw)
        if total > MAX_DATA_SIZE:
            errs.append(v.too_long(Path(""), MAX_DATA_SIZE))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _validate_immutable_data(new, old, ("data", "binaryData"))


SECRET_TYPES_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def fold_string_data(obj: Obj) -> None:
    """``stringData`` is write-only: merge it into ``data`` (base64) and drop it, as v1 conversion does."""
    string_data = obj.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = obj.get("data")
    if not isinstance(data, dict):
        data = obj["data"] = {}
    for key, value in string_data.items():
        data[key] = gobytes.encode(str(value).encode())


class SecretStrategy(Strategy):
    kind = "Secret"
    tracks_generation = False
    field_selectors = {"type": field_reader("type")}

    def prepare_for_create(self, obj: Obj) -> None:
        fold_string_data(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        fold_string_data(new)

    def default(self, obj: Obj) -> None:
        fold_string_data(obj)
        if not obj.get("type"):
            obj["type"] = "Opaque"

    def validate(self, obj: Obj) -> list[FieldError]:
        data = obj.get("data")
        errs = _validate_keys(data, Path("data"))
        total = 0
        decoded: dict[str, bytes] = {}
        for key, value in as_dict(data).items():
            raw = _decode_b64(value)
            if raw is None:
                errs.append(v.invalid(Path("data").key(key), "<secret contents redacted>",
                                      "must be base64-encoded bytes"))
                continue
            decoded[key] = raw
            total += len(raw)
        if total > MAX_DATA_SIZE:
            errs.append(v.too_long(Path("data"), MAX_DATA_SIZE))
        errs.extend(self._validate_type(obj, decoded))
        return errs

    @staticmethod
    def _validate_type(obj: Obj, decoded: dict[str, bytes]) -> list[FieldError]:
        secret_type = str(obj.get("type") or "Opaque")
        data_path = Path("data")
        errs: list[FieldError] = []
        if secret_type == "kubernetes.io/service-account-token":
            if not as_dict(as_dict(obj.get("metadata")).get("annotations")).get(SA_NAME_ANNOTATION):
                errs.append(v.required(Path("metadata", "annotations").key(SA_NAME_ANNOTATION)))
        elif secret_type == "kubernetes.io/basic-auth" and "username" not in decoded and "password" not in decoded:
            errs.append(v.required(data_path.key("username")))
            errs.append(v.required(data_path.key("password")))
        for key in SECRET_TYPES_REQUIRED_KEYS.get(secret_type, ()):
            if key not in decoded:
                errs.append(v.required(data_path.key(key)))
            elif key in (".dockercfg", ".dockerconfigjson"):
                try:
                    json.loads(decoded[key])
                except ValueError as exc:
                    errs.append(v.invalid(data_path.key(key), "<secret contents redacted>", str(exc)))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        errs.extend(v.immutable(new.get("type") or "Opaque", old.get("type") or "Opaque", Path("type")))
        errs.extend(_validate_immutable_data(new, old, ("data",)))
        return errs
