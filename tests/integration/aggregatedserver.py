"""A small aggregated API server for tests, shaped like metrics-server.

HTTPS (aiohttp, in a thread of the test process) serving one group/version, ``GROUP/VERSION``,
with one cluster-scoped resource ``nodes`` (kind ``NodeMetrics``): its discovery document, a
list (JSON, a ``meta.k8s.io/v1`` Table when asked, or a watch stream of ADDED events), and a get.
Like an aggregated server built on k8s.io/apiserver, it trusts the identity in the front-proxy
headers only on a connection whose client certificate was signed by the request-header CA and
names an allowed common name, both read from ``kube-system/extension-apiserver-authentication``;
every other request gets 401. Every request is recorded with the identity it carried, and each
served object echoes it (``user``, ``groups``, ``extra``), so tests see what the API server sent.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

GROUP, VERSION = "metrics.example.com", "v1beta1"
SEEN = web.RequestKey("seen", dict)
SCHEMA_NAME = "com.example.metrics.v1beta1.NodeMetrics"
GET_OPERATION = {"operationId": "readNodeMetrics", "x-kubernetes-action": "get",
                 "x-kubernetes-group-version-kind": {"group": GROUP, "version": VERSION, "kind": "NodeMetrics"},
                 "responses": {"200": {"description": "OK", "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/com.example.metrics.v1beta1.NodeMetrics"}}}}}}
NODE_METRICS_SCHEMA = {
    "description": "NodeMetrics sets resource usage metrics of a node.", "type": "object",
    "properties": {"apiVersion": {"type": "string", "description": "APIVersion of the object."},
                   "kind": {"type": "string", "description": "Kind of the object."},
                   "window": {"type": "string", "description": "The window of the usage sample."}},
    "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION, "kind": "NodeMetrics"}],
}
NODES = ("alpha", "beta")


def _cn(peercert: Any) -> str:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class AggregatedServer:
    """Serves ``GROUP/VERSION`` on ``host`` (a free port) until :meth:`stop`."""

    def __init__(self, host: str, cert: Path, key: Path, requestheader_ca_pem: str, allowed_names: list[str]) -> None:
        self.host, self.allowed_names = host, allowed_names
        self.requests: list[dict[str, Any]] = []
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(cert, key)
        self.ssl.load_verify_locations(cadata=requestheader_ca_pem)
        self.ssl.verify_mode = ssl.CERT_OPTIONAL
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("aggregated server did not start")

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get(f"/apis/{GROUP}/{VERSION}", self._discovery)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}/nodes", self._list)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}/nodes/{{name}}", self._get)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}/nodes/{{name}}/echo", self._echo)
        app.router.add_get("/openapi/v2", self._openapi_v2)
        app.router.add_get("/openapi/v3", self._openapi_v3_index)
        app.router.add_get(f"/openapi/v3/apis/{GROUP}/{VERSION}", self._openapi_v3)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        cn = _cn(peercert)
        seen = {"path": request.path, "query": dict(request.query), "cn": cn,
                "user": request.headers.get("X-Remote-User", ""),
                "groups": request.headers.getall("X-Remote-Group", []),
                "extra": {k[len("X-Remote-Extra-"):].lower(): request.headers.getall(k)
                          for k in set(request.headers) if k.lower().startswith("x-remote-extra-")},
                "authorization": request.headers.get("Authorization", "")}
        self.requests.append(seen)
        if not cn or cn not in self.allowed_names or not seen["user"]:
            return _status(401, "Unauthorized", "Unauthorized")
        request[SEEN] = seen
        return await handler(request)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                                  "resources": [{"name": "nodes", "singularName": "", "namespaced": False,
                                                 "kind": "NodeMetrics", "verbs": ["get", "list"]}]})

    async def _echo(self, request: web.Request) -> web.WebSocketResponse:
        """A WebSocket answering each text message with ``<user>: <message>``."""
        ws = web.WebSocketResponse(protocols=("echo.test",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                await ws.send_str(f"{request[SEEN]['user']}: {msg.data}")
        return ws

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        return web.json_response({"swagger": "2.0", "info": {"title": "metrics", "version": "v0"},
                                  "paths": {f"/apis/{GROUP}/{VERSION}/nodes": {"get": {"operationId": "listNodes"}}},
                                  "definitions": {SCHEMA_NAME: NODE_METRICS_SCHEMA}})

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        url = f"/openapi/v3/apis/{GROUP}/{VERSION}?hash=0123"
        return web.json_response({"paths": {f"apis/{GROUP}/{VERSION}": {"serverRelativeURL": url}}})

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        return web.json_response({"openapi": "3.0.0", "info": {"title": "metrics", "version": "v0"},
                                  "paths": {f"/apis/{GROUP}/{VERSION}/nodes/{{name}}": {"get": GET_OPERATION}},
                                  "components": {"schemas": {SCHEMA_NAME: NODE_METRICS_SCHEMA}}})

    def _node(self, name: str, seen: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeMetrics",
                "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "window": "10s", "usage": {"cpu": "10m", "memory": "1Mi"},
                "user": seen["user"], "groups": seen["groups"], "extra": seen["extra"]}

    async def _list(self, request: web.Request) -> web.StreamResponse:
        seen = request[SEEN]
        items = [self._node(n, seen) for n in NODES]
        if request.query.get("watch") in ("1", "true"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            for item in items:
                await resp.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
                await asyncio.sleep(0.2)  # a stream, not one body
            await resp.write_eof()
            return resp
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response({
                "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
                "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": ""},
                                      {"name": "User", "type": "string", "format": "", "description": ""}],
                "rows": [{"cells": [i["metadata"]["name"], i["user"]],
                          "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                     "metadata": i["metadata"]}} for i in items]})
        return web.json_response({"kind": "NodeMetricsList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
                                  "items": items})

    async def _get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in NODES:
            return _status(404, "NotFound", f'nodemetrics.{GROUP} "{name}" not found')
        return web.json_response(self._node(name, request[SEEN]))


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def host_address() -> str:
    """This machine's own global IPv4 address: EndpointSlice validation refuses loopback, as
    Kubernetes' does, and the API server connects to this address without leaving the machine."""
    import subprocess

    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return ""
