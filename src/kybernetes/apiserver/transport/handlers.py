"""HTTP handlers for resource requests: verbs, subresources, watch streams, content negotiation.

One handler serves every resource URL. It resolves the path against the catalogue, reads the
query and body into registry calls, and renders the result as JSON, a ``Table`` (server-side
printing for kubectl) or ``PartialObjectMetadata``. Watches are chunked streams of JSON lines.
Errors are raised as :class:`~kybernetes.errors.StatusError` and rendered by ``APIServer._handle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api import gojson
from kybernetes.api.decode import go_json_type
from kybernetes.api.field_selectors import parse_field_selector
from kybernetes.api.label_selectors import parse_label_selector
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver import printers
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext
from kybernetes.apiserver.registry.rest import (
    METHOD_NOT_ALLOWED,
    Reply,
    ResourceREST,
    SubresourceCall,
    SubresourceREST,
    read_patch,
)
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.transport.requests import (
    Accept,
    ResourcePath,
    bool_param,
    int_param,
    parse_accept,
    patch_type,
    pretty_requested,
    read_body,
)
from kybernetes.httpserver.messages import AnyResponse, Request, Response, StreamResponse, chunk
from kybernetes.storage.cacher import CacheEvent
from kybernetes.storage.interface import OutOfSpaceError, UnavailableError

if TYPE_CHECKING:
    from kybernetes.apiserver.metrics import APIServerMetrics
    from kybernetes.metrics.accumulate import HistogramState

JSON = "application/json"
BOOKMARK_INTERVAL = 30.0
DIRECT_WRITE_LIMIT = 256 * 1024
"""Bytes unsent to a watch client beyond which events go through its task (which awaits drain)."""


def json_response(body: Any, status: int = 200, *, pretty: bool = False, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> Response:
    """A JSON body exactly as kube-apiserver's serializer writes it (:func:`kybernetes.api.gojson.dumps`)."""
    return Response(body=gojson.dumps(body, pretty=pretty), status=status, content_type=content_type,
                    headers=headers)


def status_success(details: dict[str, Any] | None = None) -> Obj:
    return errors.status_object("Success", details=details or None)


log = logging.getLogger(__name__)


ITEM_VERBS = ("get", "update", "patch", "delete")
"""The verbs served on an object's own path (``.../plural/NAME``)."""


def _storage_operation(method: str, rp: ResourcePath) -> str:
    """The storage operation kube-apiserver names in a storage error: get, list, create, update, delete."""
    if method == "GET":
        return "get" if rp.name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(method, "get")


class ResourceHandlers:
    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.shutting_down = asyncio.Event()
        self.watch_metrics: APIServerMetrics | None = None
        """Counts every watch event sent (``apiserver_watch_events_*``) when the server's metrics are on."""

    # --- entry ---------------------------------------------------------------------------

    async def handle(self, request: Request, rp: ResourcePath, ctx: RequestContext) -> AnyResponse:
        """Serve one resource request; an unreachable datastore is a 503 naming the operation."""
        try:
            return await self._handle(request, rp, ctx)
        except UnavailableError as e:
            log.warning("datastore unavailable serving %s %s: %s", request.method, request.path, e)
            raise errors.ServiceUnavailable.store_unreachable(
                rp.plural, rp.group, _storage_operation(request.method, rp)) from None
        except OutOfSpaceError as e:
            log.warning("datastore out of space serving %s %s: %s", request.method, request.path, e)
            raise errors.InternalError.store_out_of_space(str(e)) from None

    async def _handle(self, request: Request, rp: ResourcePath, ctx: RequestContext) -> AnyResponse:
        r = self.catalogue.get(rp.group, rp.version, rp.plural)
        if r is None:
            raise errors.NotFound.no_resource()
        if rp.namespace and not r.namespaced:
            raise errors.NotFound.no_resource()
        rest = self.registry.rest_for(r)
        sub = rest.subresource(rp.subresource) if rp.subresource else None
        if rest.computed is not None:
            return await self._computed(request, rest, rp, ctx)
        q = request.query
        accept = parse_accept(request.headers.get("Accept", ""))
        method = request.method
        _read_write_options(request, ctx)
        pretty = pretty_requested(request)
        ns = rp.namespace
        if r.namespaced and not ns and method not in ("GET",) and method == "POST" and not rp.name:
            raise errors.NotFound.no_resource()
        watch = rp.watch or bool_param(q.get("watch"))

        if sub is not None:
            return await self._subresource(request, rest, sub, rp, ctx, accept, pretty)
        if rp.name and not any(v in r.verbs for v in ITEM_VERBS):
            # A create-only resource (bindings, tokenreviews) has no item path at all: 404, as
            # kube-apiserver answers a path it has no route for, and nothing read or written.
            raise errors.NotFound.no_resource()
        if method == "GET":
            if rp.name:
                if watch:
                    return await self._watch(request, r, ns, ctx, accept, name=rp.name)
                obj = await self.registry.get(r, ns, rp.name, q.get("resourceVersion", ""))
                return await self._render_one(r, obj, accept, pretty, q)
            if watch:
                return await self._watch(request, r, ns, ctx, accept)
            return await self._list(request, r, ns, accept, pretty)
        if method == "POST" and rest.create is not None and not rp.name:
            reply = await rest.create.serve(rest, self._call(request, rp, ctx, r))
            return await self._reply(rest, reply, accept, pretty, q, ctx)
        if method == "POST":
            if rp.name:
                raise errors.MethodNotAllowed(METHOD_NOT_ALLOWED)
            self._require_verb(r, "create")
            body = await self._body(request, r, r.kind)
            # The decoded body is this request's own (audit decodes the bytes for itself).
            obj = await self.registry.create(r, ns, body, ctx, body_handed_over=True)  # type: ignore[arg-type]
            return await self._render_one(r, obj, accept, pretty, q, status=201, ctx=ctx)
        if method == "PUT":
            if not rp.name:
                raise errors.MethodNotAllowed(METHOD_NOT_ALLOWED)
            body = await self._body(request, r, r.kind)
            obj, created = await self.registry.update(r, ns, rp.name, body, ctx)  # type: ignore[arg-type]
            return await self._render_one(r, obj, accept, pretty, q, status=201 if created else 200, ctx=ctx)
        if method == "PATCH":
            if not rp.name:
                raise errors.MethodNotAllowed(METHOD_NOT_ALLOWED)
            ptype = self._patch_type(request, r)
            body = await read_patch(self.registry, r, ns, rp.name, ptype, lambda into: self._body(request, r, into))
            obj, created = await self.registry.patch(r, ns, rp.name, ptype, body, ctx,
                                                     force=bool_param(q.get("force")))
            return await self._render_one(r, obj, accept, pretty, q, status=201 if created else 200, ctx=ctx)
        if method == "DELETE":
            opts = await self._delete_options(request)
            ctx.dry_run = ctx.dry_run or opts.dry_run
            if not rp.name:
                self._require_verb(r, "deletecollection")
                lo = self._list_options(q)
                items = await self.registry.delete_collection(r, ns, lo, opts, ctx)
                items = await self.registry.to_version_all(r, items)
                return json_response({"kind": r.list_kind, "apiVersion": r.api_version,
                                      "metadata": {}, "items": items}, pretty=pretty)
            obj, gone = await self.registry.delete(r, ns, rp.name, opts, ctx)
            return await self._render_one(r, obj, accept, pretty, q, status=200 if gone else 202, ctx=ctx)
        raise errors.MethodNotAllowed(f"method {method} is not allowed")

    @staticmethod
    def _require_verb(r: Resource, verb: str) -> None:
        if verb not in r.verbs:
            raise errors.MethodNotAllowed(f"{verb} is not supported on resources of kind \"{r.plural}\"")

    async def _body(self, request: Request, r: Resource, into: str) -> Any:
        """The body of a request to ``r`` decoded, ``into`` naming the kind a create or update
        decodes it into (a decode failure quotes it; a custom resource's own kind takes no
        protobuf). The HTTP server has already refused a body over the limit."""
        return read_body(request.body, request.headers.get("Content-Type", ""), into=into,
                         field_validation=request.query.get("fieldValidation") or "",
                         patch=request.method == "PATCH",
                         custom_version="" if r.builtin or into != r.kind else r.api_version)

    async def _delete_options(self, request: Request) -> DeleteOptions:
        q = request.query
        opts = DeleteOptions(
            grace_period_seconds=int_param(q.get("gracePeriodSeconds"), "gracePeriodSeconds"),
            propagation_policy=q.get("propagationPolicy"),
        )
        if bool_param(q.get("orphanDependents")):
            opts.propagation_policy = "Orphan"
        if request.body.strip():
            body = read_body(request.body, request.headers.get("Content-Type", ""), into=None, patch=False)
            if not isinstance(body, dict):  # null: Go decodes it as empty options
                body = {}
            if body.get("gracePeriodSeconds") is not None:
                if not isinstance(body["gracePeriodSeconds"], int):
                    raise errors.BadRequest("gracePeriodSeconds must be an integer")
                opts.grace_period_seconds = body["gracePeriodSeconds"]
            if body.get("propagationPolicy"):
                opts.propagation_policy = str(body["propagationPolicy"])
            if body.get("orphanDependents") is True:
                opts.propagation_policy = "Orphan"
            if isinstance(body.get("preconditions"), dict):
                opts.preconditions = body["preconditions"]
            if body.get("dryRun"):
                opts.dry_run = _dry_run(_string_list(body["dryRun"], "DeleteOptions.dryRun"))
        return opts

    # --- rendering -----------------------------------------------------------------------

    def _columns(self, r: Resource) -> list[dict[str, Any]] | None:
        return None if r.builtin else (self.registry.rest_for(r).columns or [])

    def _table(self, r: Resource, objs: list[Obj], *, include_object: str, list_meta: Obj) -> Obj:
        """The Table of ``objs`` (in ``r``'s version). A built-in kind served in several versions is
        printed from its stored form by the stored kind's printer, as Kubernetes prints its internal
        form; the rows still embed the objects as ``r`` serves them."""
        conv = self.registry.conversions
        view = conv.view(r)
        if view is None or not view.adapt_strategy:
            return printers.to_table(r.group, r.kind, objs, now=_now(), include_object=include_object,
                                     list_meta=list_meta, custom_columns=self._columns(r))
        return printers.to_table(r.stored_in[0], r.kind, [conv.to_storage(r, o) for o in objs], now=_now(),
                                 include_object=include_object, list_meta=list_meta, row_objects=objs)

    async def _render_one(self, r: Resource, obj: Obj, accept: Accept, pretty: bool, q: Any, *, status: int = 200,
                    ctx: RequestContext | None = None) -> Response:
        headers = _warning_headers(ctx)
        obj = await self.registry.to_version(r, obj)
        if accept.table and status in (200, 201):
            table = self._table(r, [obj], include_object=q.get("includeObject", "Metadata"),
                                list_meta={"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")})
            return json_response(table, status, pretty=pretty, headers=headers)
        if accept.partial_metadata:
            return json_response(_partial(obj), status, pretty=pretty, headers=headers)
        return json_response(obj, status, pretty=pretty, headers=headers)

    def _list_options(self, q: Any) -> ListOptions:
        ls = q.get("labelSelector", "")
        fs = q.get("fieldSelector", "")
        limit = int_param(q.get("limit"), "limit") or 0
        return ListOptions(
            label_selector=parse_label_selector(ls) if ls else None,
            field_selector=parse_field_selector(fs) if fs else None,
            limit=max(0, limit),
            continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""),
        )

    async def _list(self, request: Request, r: Resource, ns: str, accept: Accept, pretty: bool) -> Response:
        self._require_verb(r, "list")
        q = request.query
        opts = self._list_options(q)
        res = await self.registry.list(r, ns, opts)
        if self.registry.conversions.view(r) is not None:
            res.items = await self.registry.to_version_all(r, res.items)
        meta: Obj = {"resourceVersion": res.resource_version}
        if res.continue_token:
            meta["continue"] = res.continue_token
        if res.remaining is not None:
            meta["remainingItemCount"] = res.remaining
        if accept.table:
            table = self._table(r, res.items, include_object=q.get("includeObject", "Metadata"), list_meta=meta)
            return json_response(table, pretty=pretty)
        if accept.partial_metadata:
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": meta, "items": [_partial(o) for o in res.items]}, pretty=pretty)
        body = {"kind": r.list_kind, "apiVersion": r.api_version, "metadata": meta, "items": res.items}
        return json_response(body, pretty=pretty)

    async def _computed(self, request: Request, rest: ResourceREST, rp: ResourcePath,
                        ctx: RequestContext) -> Response:
        """A computed resource: its objects made on each GET, never stored (get and list only)."""
        r, computed = rest.resource, rest.computed
        assert computed is not None
        if request.method != "GET":
            raise errors.MethodNotAllowed(METHOD_NOT_ALLOWED)
        q = request.query
        if rp.watch or bool_param(q.get("watch")):
            self._require_verb(r, "watch")
        if computed.warning:
            ctx.warnings.append(computed.warning)
        accept, pretty = parse_accept(request.headers.get("Accept", "")), pretty_requested(request)
        if rp.name:
            obj = await computed.get(rp.name)
            return await self._render_one(r, obj, accept, pretty, q, ctx=ctx)
        items = await computed.list()
        if accept.table:
            body = printers.to_table(r.group, r.kind, items, now=_now(),
                                     include_object=q.get("includeObject", "Metadata"), list_meta={})
        else:
            body = {"kind": r.list_kind, "apiVersion": r.api_version, "metadata": {}, "items": items}
        return json_response(body, pretty=pretty, headers=_warning_headers(ctx))

    # --- watch ---------------------------------------------------------------------------

    async def _watch(self, request: Request, r: Resource, ns: str, ctx: RequestContext, accept: Accept,
                     name: str = "") -> AnyResponse:
        self._require_verb(r, "watch")
        q = request.query
        opts, timeout = self._watch_options(q, name)
        bookmarks = bool_param(q.get("allowWatchBookmarks"))
        converted = self.registry.conversions.view(r) is not None

        try:
            stream = await self.registry.open_watch(r, ns, opts, bookmark_interval=BOOKMARK_INTERVAL if bookmarks
                                                    else None, timeout=timeout)
        except errors.Expired as e:
            return await _watch_expired(request, e)

        resp = StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
        encode = self._watch_encoder(r, accept, q.get("includeObject", "Metadata"), converted)
        sent = None if self.watch_metrics is None else self.watch_metrics.watch_events(r.group, r.version, r.kind)
        if sent is not None:
            encode = _counted(encode, sent)
        transport = request.transport
        if transport is not None and request.version >= (1, 1) and r.builtin and not converted \
                and not accept.table and not accept.partial_metadata:
            stream.direct = _direct_writer(transport, encode, sent)

        try:
            # The head goes out here, before any direct write.
            await resp.prepare(request)
            remote = self.registry.conversions.has_remote(r)
            async for batch in stream.batches():
                if remote:
                    batch = await self._converted_events(r, batch)
                await resp.write(b"".join([encode(ev) for ev in batch]))
        except errors.StatusError as e:
            with contextlib.suppress(Exception):
                await resp.write(gojson.dumps({"type": "ERROR", "object": e.status()}))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stream.close()
        with contextlib.suppress(Exception):
            await resp.write_eof()
        return resp

    async def _converted_events(self, r: Resource, batch: list[CacheEvent]) -> list[CacheEvent]:
        """A batch of events with their objects in ``r``'s version, converted by the webhook in
        one call (a failure ends the watch with an ERROR event carrying the Status)."""
        events = [ev for ev in batch if ev.type != "BOOKMARK"]
        if not events:
            return batch
        objs = [ev.obj for ev in events]
        converted = iter(await self.registry.conversions.to_view_all(
            r, objs, list_kind=r.list_kind if len(objs) > 1 else ""))
        return [ev if ev.type == "BOOKMARK" else CacheEvent(ev.type, ev.key, next(converted), ev.prev, ev.revision)
                for ev in batch]

    def _watch_options(self, q: Any, name: str) -> tuple[ListOptions, int]:
        """A watch's list options (a watch of one object selects it by name) and its timeout in
        seconds (``timeoutSeconds``, or a random 30 to 60 minutes as kube-apiserver picks for 0 or
        none; a negative one ends the watch at once, as there)."""
        opts = self._list_options(q)
        if name:
            sel = f"metadata.name={name}"
            if opts.field_selector is not None and not opts.field_selector.empty:
                sel += "," + q.get("fieldSelector", "")
            opts.field_selector = parse_field_selector(sel)
        timeout = int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        if timeout is None or timeout == 0:
            timeout = int(1800 * (1 + random.random()))
        elif timeout < 0:  # kube-apiserver's timer of a negative duration: it has already fired
            timeout = 0
        return opts, timeout

    def _watch_encoder(self, r: Resource, accept: Accept, include_object: str,
                       converted: bool) -> Callable[[CacheEvent], bytes]:
        """The function that turns one event into its line of the watch stream, in ``accept``'s form."""

        def encode(ev: CacheEvent) -> bytes:
            if ev.type == "BOOKMARK":
                bm = {"kind": r.kind, "apiVersion": r.api_version,
                      "metadata": {"resourceVersion": str(ev.revision)}}
                return gojson.dumps({"type": "BOOKMARK", "object": bm})
            obj = self.registry.conversions.to_view(r, ev.obj) if converted else ev.obj
            if accept.table:
                table = self._table(r, [obj], include_object=include_object,
                                    list_meta={"resourceVersion": str(ev.revision)})
                return gojson.dumps({"type": ev.type, "object": table})
            if accept.partial_metadata:
                return gojson.dumps({"type": ev.type, "object": _partial(obj)})
            if obj is not ev.obj:
                return gojson.dumps({"type": ev.type, "object": obj})
            if ev._encoded is None:
                # Serialised once per event, shared by every watcher with the same encoding.
                ev._encoded = gojson.dumps({"type": ev.type, "object": ev.obj})
            return ev._encoded

        return encode

    # --- subresources ----------------------------------------------------------------------

    @staticmethod
    def _patch_type(request: Request, r: Resource) -> str:
        """The PATCH's type from its headers, 415 where ``r`` takes no such patch (:func:`patch_type`)."""
        return patch_type(request.headers.get("Content-Type", ""), builtin=r.builtin,
                          content_length=request.headers.get("Content-Length"))

    def _call(self, request: Request, rp: ResourcePath, ctx: RequestContext, r: Resource) -> SubresourceCall:
        method = request.method
        return SubresourceCall(
            method=method, namespace=rp.namespace, name=rp.name, ctx=ctx,
            read_body=lambda into: self._body(request, r, into),
            read_patch_type=lambda: self._patch_type(request, r),
            force=bool_param(request.query.get("force")), request=request,
        )

    async def _subresource(self, request: Request, rest: ResourceREST, sub: SubresourceREST, rp: ResourcePath,
                           ctx: RequestContext, accept: Accept, pretty: bool) -> AnyResponse:
        """A subresource: its own REST object serves it (405 for a method it does not serve)."""
        if request.method not in sub.methods:
            raise errors.MethodNotAllowed(METHOD_NOT_ALLOWED)
        reply = await sub.serve(rest, self._call(request, rp, ctx, rest.resource))
        return await self._reply(rest, reply, accept, pretty, request.query, ctx)

    async def _reply(self, rest: ResourceREST, reply: Reply, accept: Accept, pretty: bool, q: Any,
               ctx: RequestContext) -> AnyResponse:
        if reply.response is not None:
            return reply.response  # type: ignore[no-any-return]
        assert reply.obj is not None
        if reply.as_resource:
            return await self._render_one(rest.resource, reply.obj, accept, pretty, q, status=reply.status, ctx=ctx)
        return json_response(reply.obj, reply.status, pretty=pretty)


def _partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def _read_write_options(request: Request, ctx: RequestContext) -> None:
    """The options every request may carry into the context: dryRun, fieldManager (at most 128
    bytes), fieldValidation (Strict, Warn or Ignore; Warn by default on writes), the User-Agent."""
    q = request.query
    ctx.dry_run = _dry_run(q.getall("dryRun", []))
    ctx.field_manager = q.get("fieldManager", "")
    ctx.user_agent = request.headers.get("User-Agent", "")
    fv = q.get("fieldValidation", "")
    if fv and fv not in ("Strict", "Warn", "Ignore"):
        raise errors.BadRequest(f"fieldValidation must be one of Strict, Warn, Ignore, got {fv!r}")
    ctx.field_validation = fv or ("Warn" if request.method != "GET" else "Ignore")
    if len(ctx.field_manager) > 128:
        raise errors.Invalid("", "", [{"reason": "FieldValueTooLong", "field": "fieldManager",
                                       "message": "Too long: may not be more than 128 bytes"}],
                             message="fieldManager: Too long: may not be more than 128 bytes")


def _string_list(value: Any, field: str) -> list[str]:
    """A body's ``[]string`` field, refused in Go's words when it is not one (a 400, not a 500)."""
    if not isinstance(value, list):
        raise errors.BadRequest(f"json: cannot unmarshal {go_json_type(value)} into Go struct field {field} "
                                "of type []string")
    for item in value:
        if not isinstance(item, str):
            raise errors.BadRequest(f"json: cannot unmarshal {go_json_type(item)} into Go struct field {field} "
                                    "of type string")
    return value


def _dry_run(values: Any) -> bool:
    if isinstance(values, str):
        values = [values]
    for val in values or ():
        if val != "All":
            raise errors.BadRequest(f'dryRun: Unsupported value: "{val}": supported values: "All"')
        return True
    return False


def _warning_headers(ctx: RequestContext | None) -> dict[str, str] | None:
    """The request's warnings as one ``Warning`` header, comma-joined, each as ``299 - "text"``
    (RFC 7234 warn-code form). As kube-apiserver's warning recorder (``net.NewWarningHeader``) does,
    a repeated text is sent once and a text with a control character is left out: a newline in a
    header would end it (a webhook's or an unknown field's words are the client's own)."""
    if ctx is None or not ctx.warnings:
        return None
    texts = [w for w in dict.fromkeys(ctx.warnings) if w and not any(unicodedata.category(c) == "Cc" for c in w)]
    if not texts:
        return None
    return {"Warning": ", ".join('299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                 for w in texts[:50])}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _watch_expired(request: Request, e: errors.Expired) -> AnyResponse:
    """Kubernetes answers a watch from a too-old resourceVersion with 200 and one ERROR event."""
    resp = StreamResponse(status=200, headers={"Content-Type": JSON})
    await resp.prepare(request)
    await resp.write(gojson.dumps({"type": "ERROR", "object": e.status()}))
    await resp.write_eof()
    return resp


def chunk_payload_size(data: bytes) -> int:
    """The size of the data in one HTTP chunk (``<hex size>\\r\\n<data>\\r\\n``)."""
    return len(data) - data.index(b"\r\n") - 4


def _counted(encode: Callable[[CacheEvent], bytes], sent: HistogramState) -> Callable[[CacheEvent], bytes]:
    """``encode``, observing each line's size in ``sent`` (``apiserver_watch_events_*``)."""

    def counted(ev: CacheEvent) -> bytes:
        line = encode(ev)
        sent.observe(len(line))
        return line

    return counted


def _direct_writer(transport: Any, encode: Callable[[CacheEvent], bytes],
                   sent: HistogramState | None = None) -> Callable[[list[CacheEvent]], bool]:
    """The watch stream's fast path: a batch of events written straight to the socket as one
    chunk of the chunked body (see :class:`~kybernetes.storage.cacher.Watcher`); False (the
    stream then writes through the response) while the socket is closing or backed up. An event
    encoded once for every watcher is counted in ``sent`` for each watcher it goes to."""

    def direct(batch: list[CacheEvent], transport: Any = transport) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        if len(batch) == 1:
            ev = batch[0]
            if ev._chunk is None:
                ev._chunk = chunk(encode(ev))
            elif sent is not None:
                sent.observe(chunk_payload_size(ev._chunk))
            transport.write(ev._chunk)
        else:
            transport.write(chunk(b"".join([encode(ev) for ev in batch])))
        return True

    return direct


__all__ = ["ResourceHandlers", "json_response", "status_success"]
