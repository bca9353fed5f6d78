"""The console's HTTP server: token and cookie, the JSON API, the event stream, the static UI.

Contract (CONSOLE.md, "Process and security" and "HTTP API"):

- ``GET /?token=T`` with the right token sets cookie ``kyb-console=<session id>`` (HttpOnly,
  SameSite=Strict, Path=/) and redirects (303) to ``/``. Every other request needs that cookie or
  ``Authorization: Bearer T``, else 401 ``{"error", "code"}``. The token is valid for the life of
  the process; ``token=None`` (``--no-token``) turns the check off.
- ``/`` is ``static/index.html``; ``/<path>`` (and ``/static/<path>``) a file under ``static/``;
  paths outside it or missing answer 404.
- API errors are ``{"error": message, "code": http code}`` with the API server's code relayed
  (403, 404, 400); a list the user may not read answers 200 with ``"forbidden": true`` and no
  items; a journey or object the user may not read answers 403.
- ``/api/stream``: ``changed`` (versions, coalesced, at most every :data:`CHANGED_INTERVAL` s,
  only when one moved), ``overview`` every :data:`OVERVIEW_INTERVAL` s, ``: ping`` every
  :data:`PING_INTERVAL` s.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.client import Client
from kybernetes.console import journey as journey_mod
from kybernetes.console import logs, problems
from kybernetes.console.architecture import Architecture, internal_ip, is_local, parse_sums
from kybernetes.console.cache import Forbidden, Model
from kybernetes.console.rows import KINDS, LISTED, event_time

log = logging.getLogger(__name__)
Obj = dict[str, Any]

COOKIE = "kyb-console"
STATIC_DIR = Path(__file__).parent / "static"
CHANGED_INTERVAL = 0.25
OVERVIEW_INTERVAL = 2.0
PING_INTERVAL = 15.0
MAX_LIMIT = 1000
MAX_LOG_TAILS = 20
JOURNEY_RESOURCES = ("deployments", "statefulsets", "jobs", "daemonsets", "replicasets", "pods")
JOURNEY_NEEDS = ("pods", "replicasets", "jobs", "events", "endpointslices", "nodes", "namespaces")
PROXY_METRICS_PORT = 10249


@dataclass
class ConsoleConfig:
    token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))
    """The one-time token of the URL; None: no authentication (``--no-token``)."""
    address: str = "127.0.0.1"
    port: int = 0
    context: str = ""
    component_urls: dict[str, str] = field(default_factory=dict)
    static_dir: Path = STATIC_DIR


def _error(message: str, code: int) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=code)


class Console:
    """The console server (``start``/``stop``); ``url`` is what ``kyb console`` prints."""

    def __init__(self, client: Client, config: ConsoleConfig | None = None) -> None:
        self.client = client
        self.config = config or ConsoleConfig()
        self.model = Model(client)
        self.architecture = Architecture(self.model, self.config.component_urls)
        self.sessions: set[str] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._user: str | None = None
        self._tails: dict[tuple[str, str, str, int], list[str]] = {}

    @property
    def url(self) -> str:
        query = f"?token={self.config.token}" if self.config.token else ""
        return f"http://{self.config.address}:{self.port}/{query}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth, self._errors])
        r = app.router
        r.add_get("/api/session", self._session)
        r.add_get("/api/stream", self._stream)
        r.add_get("/api/overview", self._overview)
        r.add_get("/api/list/{resource}", self._list)
        r.add_get("/api/object/{resource}/{namespace}/{name}", self._object)
        r.add_get("/api/journey/{resource}/{namespace}/{name}", self._journey)
        r.add_get("/api/problems", self._problems)
        r.add_get("/api/logs/{namespace}/{pod}", self._logs)
        r.add_get("/api/{tail:.*}", self._no_api)
        r.add_get("/{path:.*}", self._static)
        return app

    async def start(self) -> None:
        # Handler cancellation: a browser that goes away cancels its stream handlers (and so their
        # upstream log requests) at once, not at their next write.
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.address, self.config.port, reuse_address=True)
        await site.start()
        sockets = getattr(getattr(site, "_server", None), "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        self.architecture.start()

    async def stop(self) -> None:
        await self.architecture.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for cache in self.model.caches.values():
            for inf in list(cache.informers.values()):
                await inf.stop()

    # -- middleware ---------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        token = self.config.token
        if token is None:
            return await handler(request)
        given = request.query.get("token")
        if request.path == "/" and given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error("the token is not this console's (use the URL kyb console printed)", 401)
            session = secrets.token_urlsafe(32)
            self.sessions.add(session)
            resp = web.Response(status=303, headers={"Location": "/"})
            resp.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
            return resp
        if request.cookies.get(COOKIE) in self.sessions:
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return await handler(request)
        return _error("unauthorized: open the URL with the token that kyb console printed", 401)

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Forbidden as e:
            return _error(f"forbidden: you may not list and watch {e}", 403)
        except errors.StatusError as e:
            return _error(str(e), e.code)
        except ConnectionError as e:
            return _error(f"the API server did not answer: {e}", 502)

    # -- the API ------------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> web.Response:
        if self._user is None:
            try:
                review = await self.client.create("authentication.k8s.io/v1", "selfsubjectreviews",
                                                  {"apiVersion": "authentication.k8s.io/v1",
                                                   "kind": "SelfSubjectReview"})
                self._user = str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
            except errors.StatusError as e:
                log.info("SelfSubjectReview: %s", e)
                return web.json_response({"user": "", "server": self.client.config.server,
                                          "context": self.config.context})
        return web.json_response({"user": self._user, "server": self.client.config.server,
                                  "context": self.config.context})

    async def _overview(self, request: web.Request) -> web.Response:
        latest = self.architecture.latest
        if latest is None:
            await asyncio.gather(*(self.model.ensure_quietly(r) for r in ("nodes", "pods", "leases")))
            latest = self.architecture.build()
        return web.json_response(latest)

    async def _list(self, request: web.Request) -> web.Response:
        resource = request.match_info["resource"]
        if resource not in LISTED:
            raise errors.NotFound(f"the console lists no {resource!r}; it lists {', '.join(LISTED)}")
        q = request.query
        namespace = q.get("namespace", "")
        try:
            offset = max(0, int(q.get("offset", "0")))
            limit = min(MAX_LIMIT, max(1, int(q.get("limit", "100"))))
        except ValueError:
            raise errors.BadRequest("offset and limit must be integers") from None
        order = q.get("order", "asc")
        if order not in ("asc", "desc"):
            raise errors.BadRequest(f'order must be "asc" or "desc", not "{order}"')
        try:
            await self.model.ensure(resource, namespace)
        except Forbidden:
            return web.json_response({"resource": resource, "version": 0, "total": 0, "offset": offset,
                                      "limit": limit, "columns": [], "items": [], "forbidden": True})
        return web.json_response(self.model.page(resource, namespace=namespace, q=q.get("q", ""),
                                                 sort=q.get("sort", ""), desc=order == "desc", offset=offset,
                                                 limit=limit))

    def _target(self, request: web.Request) -> tuple[str, str, str]:
        resource, namespace, name = (request.match_info[k] for k in ("resource", "namespace", "name"))
        kind = KINDS.get(resource)
        if kind is None:
            raise errors.NotFound(f"unknown resource {resource!r}")
        return resource, "" if namespace == "_" or not kind.namespaced else namespace, name

    async def _object(self, request: web.Request) -> web.Response:
        resource, namespace, name = self._target(request)
        obj = await self.client.get(KINDS[resource].api_version, resource, name, namespace)
        shown = {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}}
        return web.json_response({"object": obj, "yaml": yaml.safe_dump(shown, sort_keys=False)})

    async def _journey(self, request: web.Request) -> web.Response:
        resource, namespace, name = self._target(request)
        if resource not in JOURNEY_RESOURCES:
            raise errors.BadRequest(f"no journey for {resource}; one of {', '.join(JOURNEY_RESOURCES)}")
        cache = await self.model.ensure(resource, namespace)
        await asyncio.gather(*(self.model.ensure_quietly(r, namespace) for r in JOURNEY_NEEDS if r != resource))
        # Not cached yet (just created: the watch lags the write): the API server's answer, or its 404.
        obj = cache.get(namespace, name) or await self.client.get(KINDS[resource].api_version, resource, name,
                                                                   namespace)
        out = journey_mod.journey(self.model, obj, with_scheduling=False)
        focus = out.get("focus")
        pod = obj if obj.get("kind") == "Pod" else \
            self.model.get("pods", focus["namespace"], focus["name"]) if focus is not None else None
        if pod is None:
            return web.json_response(out)
        out["scheduling"] = await self._scheduling(pod)
        proxy = next(s for s in out["stages"] if s["stage"] == "proxy")
        if proxy["detail"].startswith("kube-proxy's metrics"):  # the endpoints are there: is kube-proxy?
            synced = await self._proxy_synced(str((pod.get("spec") or {}).get("nodeName") or ""))
            if synced:
                out = {**journey_mod.journey(self.model, obj, lambda _node: synced, with_scheduling=False),
                       "scheduling": out["scheduling"]}
        return web.json_response(out)

    async def _scheduling(self, pod: Obj) -> Obj | None:
        """The scheduler's explanation of a pending pod; seconds of CPU with thousands of nodes, so
        it runs off the event loop, on copies of the cache's lists."""
        inputs = journey_mod.explain_inputs(self.model, pod)
        if inputs is None:
            return None
        exp = await asyncio.to_thread(journey_mod.explain, pod, inputs)
        return journey_mod.scheduling(self.model, pod, exp)

    async def _proxy_synced(self, node_name: str) -> str | None:
        """kube-proxy's last sync on a node of this machine: through the API server's node proxy,
        else at kube-proxy's own metrics address on loopback (127.0.0.1:10249, plain HTTP, as
        kube-proxy serves it). Nodes elsewhere (or made up, as hollow nodes' addresses are) are
        never contacted."""
        ip = internal_ip(self.model.get("nodes", "", node_name) or {})
        if not ip or not is_local(ip):
            return None
        text: Any = None
        try:
            text = await wait_for(self.client.request(
                "GET", f"/api/v1/nodes/{node_name}:{PROXY_METRICS_PORT}/proxy/metrics"), 2.0)
        except Exception as e:
            log.debug("kube-proxy metrics of %s through the API server: %s", node_name, e)
            text = await _loopback_proxy_metrics()
        name = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
        value = parse_sums(text if isinstance(text, str) else "", {name: None}).get(name)
        return format_rfc3339(datetime.fromtimestamp(value, UTC)) if value else None

    async def _problems(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace", "")
        await asyncio.gather(*(self.model.ensure_quietly(r, namespace)
                               for r in ("pods", "nodes", "jobs", "deployments", "events")))
        items = problems.collect([p for ps in list(self.model.problems.values()) for p in ps],
                                 datetime.now(UTC), self._last_failed_scheduling)
        if namespace:
            items = [p for p in items if p["namespace"] in (namespace, "")]
        await self._fill_log_tails(items)
        return web.json_response({"items": items})

    def _last_failed_scheduling(self, namespace: str, name: str) -> str:
        failed = [e for e in self.model.events_for("Pod", namespace, name) if e.get("reason") == "FailedScheduling"]
        return str(max(failed, key=event_time).get("message") or "") if failed else ""

    async def _fill_log_tails(self, items: list[Obj]) -> None:
        """The last lines of crash-looping containers (cached per restart: a new crash, a new read)."""
        crashing = [p for p in items if p.pop("crashLoop", False)][:MAX_LOG_TAILS]

        async def fill(p: Obj) -> None:
            key = (p["namespace"], p["name"], p.get("container", ""), int(p.get("restarts", 0)))
            if key not in self._tails:
                self._tails[key] = await logs.tail(self.client, key[0], key[1], key[2])
            p["logTail"] = self._tails[key]

        await asyncio.gather(*(fill(p) for p in crashing))
        for p in items:
            p.pop("crashLoop", None)
        if len(self._tails) > 10 * MAX_LOG_TAILS:
            self._tails.clear()

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        return await logs.relay(request, self.client, request.match_info["namespace"], request.match_info["pod"])

    async def _no_api(self, request: web.Request) -> web.Response:
        return _error(f"the console has no API {request.path}", 404)

    # -- the event stream ---------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        sent = self.model.versions()
        generation = self.model.generation
        last_changed = last_overview = last_ping = time.monotonic()
        if self.architecture.latest is not None:
            await resp.write(logs.sse(json.dumps(self.architecture.latest), "overview"))
        while True:
            generation = await self.model.wait_changed(generation, CHANGED_INTERVAL)
            now = time.monotonic()
            versions = self.model.versions()
            if versions != sent and now - last_changed >= CHANGED_INTERVAL:
                await resp.write(logs.sse(json.dumps({"versions": versions}), "changed"))
                sent, last_changed = versions, now
            if now - last_overview >= OVERVIEW_INTERVAL and self.architecture.latest is not None:
                await resp.write(logs.sse(json.dumps(self.architecture.latest), "overview"))
                last_overview = now
            if now - last_ping >= PING_INTERVAL:
                await resp.write(b": ping\n\n")
                last_ping = now

    # -- static files -------------------------------------------------------------------------

    async def _static(self, request: web.Request) -> web.StreamResponse:
        root = self.config.static_dir.resolve()
        rel = request.match_info["path"].removeprefix("static/") or "index.html"
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return _error(f"{request.path} not found", 404)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def _loopback_proxy_metrics() -> str | None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session, \
                session.get(f"http://127.0.0.1:{PROXY_METRICS_PORT}/metrics") as resp:
            return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError) as e:
        log.debug("kube-proxy metrics on loopback: %s", e)
        return None


