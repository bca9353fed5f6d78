"""A request body as the generic store first sees it: its type meta and its Go-style decoding.

kube-apiserver's decoding step before a write (``runtime.Decode`` with the strict/warn field
validation of ``fieldValidation``): the body's ``kind`` and ``apiVersion`` must be the resource's
(or absent: then set); a built-in object's fields are checked against its schema (a wrong type is
a 400 in the decoder's words; unknown fields are refused, warned about or dropped as
``fieldValidation`` says); a custom resource's unknown fields are pruned (reported the same way).
"""

from __future__ import annotations

from kybernetes import errors
from kybernetes.api import decode as typed
from kybernetes.api import schema as schemas
from kybernetes.api.fieldpath import go_quote
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.registry.request import RequestContext


def check_typed(r: Resource, sch: schemas.Schema | None, obj: Obj, ctx: RequestContext) -> None:
    """Go-style decoding: wrong types are 400; unknown fields dropped/warned/rejected."""
    if sch is None:
        return
    if not r.builtin:
        # Custom resources: unknown fields are pruned; wrong types are a 422 from validation.
        from kybernetes.api import structural

        report_unknown(r, structural.prune_custom_object(obj, sch.raw), ctx)
        return
    res = typed.check(obj, sch)
    if res.type_errors:
        raise errors.BadRequest(
            f'{r.kind} in version "{r.version}" cannot be handled as a {r.kind}: {res.type_errors[0]}'
        )
    report_unknown(r, res.unknown, ctx)


def report_unknown(r: Resource, unknown: list[str], ctx: RequestContext) -> None:
    if not unknown:
        return
    if ctx.field_validation == "Strict":
        detail = ", ".join(f"unknown field {go_quote(p)}" for p in unknown)
        raise errors.BadRequest(f"{r.kind} in version \"{r.version}\" cannot be handled as a {r.kind}: "
                                f"strict decoding error: {detail}")
    if ctx.field_validation == "Warn":
        ctx.warnings.extend(f"unknown field {go_quote(p)}" for p in unknown)


def check_type_meta(r: Resource, obj: Obj) -> None:
    """The body's kind and apiVersion: the resource's or absent (then set); 400 otherwise."""
    if not isinstance(obj, dict):
        raise errors.BadRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml")
    kind = obj.get("kind")
    av = obj.get("apiVersion")
    if kind and kind != r.kind:
        raise errors.BadRequest(
            f'the kind of the object in the request body ({kind}) does not match the kind of the resource ({r.kind})'
        )
    if av and av != r.api_version:
        raise errors.BadRequest(
            f"the API version in the data ({av}) does not match the expected API version ({r.api_version})"
        )
    obj["kind"] = r.kind
    obj["apiVersion"] = r.api_version


def check_type_meta_apply(r: Resource, obj: Obj) -> None:
    if not obj.get("apiVersion") or not obj.get("kind"):
        raise errors.BadRequest("apiVersion and kind must be set in an apply patch")
    check_type_meta(r, obj)
