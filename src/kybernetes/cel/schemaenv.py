"""Type checking of CRD rules against the schema: ``self`` declared with the schema's types.

Kubernetes declares ``self`` (and ``oldSelf``) with a type built from the structural schema, so
a rule naming a field the schema does not have (``self.spec.replicsa``) or using one with the
wrong type is refused when the CRD is written (``undefined field 'replicsa'``). cel-expr-python
checks field selections on protobuf messages, so :class:`SchemaTypes` builds, for one CRD
version's schema, a protobuf file with one message per object node (fields: int64, double, bool,
string, bytes, Timestamp for ``date-time``/``date``, Duration for ``duration``, repeated fields
for lists, maps for ``additionalProperties``), and :meth:`SchemaTypes.check` compiles a rule
with ``self`` of its node's type. This is for checking only: rules run on the JSON values
(:mod:`.env`, :mod:`.schematypes`).

Where the schema cannot be a message, the node is ``google.protobuf.Struct`` (any field) or
``Value`` (any value), so that nothing Kubernetes accepts is refused: objects without properties
or with ``x-kubernetes-preserve-unknown-fields`` or ``x-kubernetes-embedded-resource``, property
names that are not plain identifiers (Kubernetes' ``__dash__``-style escapes are not
implemented), int-or-string, nullable fields (which may be compared with null), lists of lists. At the root, ``metadata`` has only ``name`` and
``generateName``, and ``apiVersion`` and ``kind`` are strings, as Kubernetes declares them.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import cel_expr_python.cel as ce
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from kybernetes.cel.environment import new_environment

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                       "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"})
_SCALARS = {"integer": F.TYPE_INT64, "number": F.TYPE_DOUBLE, "boolean": F.TYPE_BOOL, "string": F.TYPE_STRING}
_FORMATS = {"date-time": ".google.protobuf.Timestamp", "date": ".google.protobuf.Timestamp",
            "duration": ".google.protobuf.Duration"}
_STRUCT, _VALUE, _LIST = ".google.protobuf.Struct", ".google.protobuf.Value", ".google.protobuf.ListValue"
_files = itertools.count()


class SchemaTypes:
    """The protobuf types of one CRD schema's nodes (or of several schemas': a policy's object and
    params), and checking environments per node type. ``kubernetes_root``: the first schema is a
    CRD's, whose root gets ``apiVersion``, ``kind`` and Kubernetes' ``metadata``; otherwise roots
    are taken as they are (a built-in kind's OpenAPI schema declares its own)."""

    def __init__(self, *schemas: Any, kubernetes_root: bool = True) -> None:
        n = next(_files)
        self.package = f"kyb.crd{n}"
        self.file = descriptor_pb2.FileDescriptorProto(name=f"kyb/crd{n}.proto", package=self.package,
                                                       syntax="proto3")
        self.file.dependency.extend(["google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
                                     "google/protobuf/duration.proto"])
        self.schemas = schemas  # their nodes are recorded by id: keep them alive
        self.types: dict[int, str] = {}
        """id(schema node) -> its CEL type (a message's full name, or a scalar/list/map spec)."""
        self._names = itertools.count()
        self.pool = descriptor_pool.DescriptorPool()
        for dep in (struct_pb2, timestamp_pb2, duration_pb2):
            self.pool.AddSerializedFile(dep.DESCRIPTOR.serialized_pb)
        try:
            for i, schema in enumerate(schemas):
                if isinstance(schema, dict):
                    self._message(schema, root=kubernetes_root and i == 0)
            self.pool.Add(self.file)
        except Exception:
            # A schema protobuf cannot express (fields whose JSON names collide, say): check
            # nothing against it (every node dyn) rather than refuse what Kubernetes accepts.
            self.types.clear()
        self._envs: dict[str, Any] = {}

    def type_of(self, node: dict[str, Any]) -> str:
        return self.types.get(id(node), _VALUE.lstrip("."))

    def cel_type(self, node: dict[str, Any]) -> Any:
        """The CEL type of values at ``node`` (a message type of this pool, a scalar, list or map)."""
        return _cel_type(self.type_of(node))

    def environment(self, node: dict[str, Any]) -> Any:
        """The checking environment for rules at ``node``: ``self`` and ``oldSelf`` of its type
        (None if cel-cpp cannot make one of it: then the rules there are not checked)."""
        t = self.type_of(node)
        if t not in self._envs:
            declared = _cel_type(t)
            try:
                self._envs[t] = new_environment({"self": declared, "oldSelf": declared}, self.pool)
            except Exception:
                self._envs[t] = None
        return self._envs[t]

    # --- building ------------------------------------------------------------------------------

    def _field_type(self, s: Any) -> tuple[int, str, bool]:
        """(protobuf type, message type name, repeated) of a field with schema ``s``."""
        if not isinstance(s, dict) or s.get("x-kubernetes-int-or-string") or s.get("nullable"):
            return F.TYPE_MESSAGE, _VALUE, False
        t = s.get("type")
        if t == "string" and s.get("format") in _FORMATS:
            return F.TYPE_MESSAGE, _FORMATS[s["format"]], False
        if t == "string" and s.get("format") == "byte":
            return F.TYPE_BYTES, "", False
        if t in _SCALARS:
            return _SCALARS[t], "", False
        if t == "array":
            item_type, item_name, repeated = self._field_type(s.get("items"))
            return (F.TYPE_MESSAGE, _LIST, False) if repeated else (item_type, item_name, True)
        if t == "object":
            return F.TYPE_MESSAGE, self._message(s), False
        return F.TYPE_MESSAGE, _VALUE, False

    def _message(self, s: dict[str, Any], *, root: bool = False) -> str:
        props: dict[str, Any] = s["properties"] if isinstance(s.get("properties"), dict) else {}
        additional = s.get("additionalProperties")
        if not props and isinstance(additional, dict) and not s.get("x-kubernetes-preserve-unknown-fields"):
            return self._map(s, additional)
        if s.get("x-kubernetes-preserve-unknown-fields") or s.get("x-kubernetes-embedded-resource") or not props \
                or any(not _IDENT.match(k) or k in _RESERVED for k in props):
            self._record(s, _STRUCT)
            return _STRUCT
        name = f"M{next(self._names)}"
        msg = self.file.message_type.add(name=name)
        fields = dict(props)
        if root:  # kept alive with the types: they are recorded by id
            self._root_fields = fields
            fields.update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", "properties": {"name": {"type": "string"},
                                                                           "generateName": {"type": "string"}}}})
        for number, (field, sub) in enumerate(fields.items(), start=1):
            ftype, type_name, repeated = self._field_type(sub)
            label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            f = msg.field.add(name=field, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            self._record(sub, _spec(ftype, type_name, repeated))
        full = f"{self.package}.{name}"
        self._record(s, full)
        return f".{full}"

    def _map(self, s: dict[str, Any], value_schema: dict[str, Any]) -> str:
        """A map node: ``self`` there is a map of the values' type; as a field, any map."""
        vtype, vname, repeated = self._field_type(value_schema)
        self._record(s, f"map({_LIST.lstrip('.') if repeated else _spec(vtype, vname, False)})")
        return _STRUCT

    def _record(self, s: Any, spec: str) -> None:
        if isinstance(s, dict):
            self.types.setdefault(id(s), spec.lstrip("."))


_SCALAR_SPECS: dict[int, str] = {F.TYPE_INT64: "int", F.TYPE_DOUBLE: "double", F.TYPE_BOOL: "bool", F.TYPE_STRING: "string",
                 F.TYPE_BYTES: "bytes"}


def _spec(ftype: int, type_name: str, repeated: bool) -> str:
    inner = _SCALAR_SPECS.get(ftype) or type_name.lstrip(".")
    return f"list({inner})" if repeated else inner


def _cel_type(spec: str) -> Any:
    if spec.startswith("list(") and spec.endswith(")"):
        return ce.Type.List(_cel_type(spec[5:-1]))
    if spec.startswith("map(") and spec.endswith(")"):
        return ce.Type.Map(ce.Type.STRING, _cel_type(spec[4:-1]))
    scalar = {"int": ce.Type.INT, "double": ce.Type.DOUBLE, "bool": ce.Type.BOOL, "string": ce.Type.STRING,
              "bytes": ce.Type.BYTES, "google.protobuf.Timestamp": ce.Type.TIMESTAMP,
              "google.protobuf.Duration": ce.Type.DURATION, "google.protobuf.Value": ce.Type.DYN}.get(spec)
    if scalar is not None:
        return scalar
    if spec == "google.protobuf.Struct":
        return ce.Type.Map(ce.Type.STRING, ce.Type.DYN)
    if spec == "google.protobuf.ListValue":
        return ce.Type.List(ce.Type.DYN)
    return ce.Type(spec)


_STRUCT_NAMES = re.compile(r"(undefined field '[^']*') not found in struct '[^']*'")


def go_issues(issues: str) -> str:
    """cel-cpp's issue text in cel-go's words: cel-cpp adds where it looked (``undefined field 'x'
    not found in struct 'kyb.crd3.M0'``), cel-go says only ``undefined field 'x'``; cel-cpp goes on
    to report every selection from the failed one (``expression of type '*error*' cannot be the
    operand of a select operation``), cel-go does not."""
    blocks: list[list[str]] = []
    for line in _STRUCT_NAMES.sub(r"\1", issues).split("\n"):
        if line.startswith("ERROR: ") or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    kept = [b for b in blocks if "of type '*error*'" not in b[0]]
    return "\n".join(line for b in kept for line in b)


__all__ = ["SchemaTypes", "go_issues"]
