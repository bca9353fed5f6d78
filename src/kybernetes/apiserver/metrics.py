"""kube-apiserver's request metrics: what ``/metrics`` says about the requests this server served.

Contract: the series kube-apiserver 1.32 exposes, with its names, help texts, label names and
bucket bounds (``k8s.io/apiserver/pkg/endpoints/metrics``, ``.../endpoints/filters/metrics.go``):

- ``apiserver_request_total`` {verb, dry_run, group, version, resource, subresource, scope,
  component, code} and ``apiserver_request_duration_seconds`` (the same labels but code) for every
  request that reached a handler or was refused by API Priority and Fairness (429), as
  ``MonitorRequest`` and ``RecordDroppedRequest`` count them: not a request refused by
  authentication (401), impersonation or authorization (403, :class:`~kybernetes.apiserver.authz.
  authorizer.Refused`), which Kubernetes' filters answer before any handler. The verb is
  Kubernetes' reported verb: the HTTP method, with GET split into GET and LIST by scope, WATCH for a
  watch, APPLY for a server-side apply PATCH, CONNECT for ``log``/``exec``/``attach``/
  ``portforward``/``proxy``, ``other`` for a method Kubernetes does not name. The scope is the
  route's: ``resource`` for a named object and for a create, ``namespace``, ``cluster``; a health
  endpoint (``/healthz``, ``/livez``, ``/readyz``) counts with its path as subresource, no scope and
  no component, as Kubernetes' healthz handlers do. Custom resources count under component
  ``apiextensions-apiserver``. A long-running request (watch, connect) is counted when it ends.
- ``apiserver_response_sizes`` for GET and LIST bodies.
- ``apiserver_longrunning_requests``: watches and connections open now.
- ``apiserver_current_inflight_requests`` {request_kind}: the most requests (readOnly, mutating;
  long-running ones excluded) executing at once during the last full second.
- ``apiserver_watch_events_total`` / ``apiserver_watch_events_sizes`` {group, version, kind}: every
  event line sent to a watch client (bookmarks included).
- ``authentication_attempts`` {result}, ``authenticated_user_requests`` {username, compressed
  as Kubernetes does to admin/client/kube_proxy/kubelet/the kube-system default account,
  ``email_id`` or ``other``}; ``authorization_attempts_total`` {result: allowed, denied,
  no-opinion, error}. Not their ``*_duration_seconds`` histograms: two clock reads each would be
  a fifth of what the metrics cost a GET (``bench.request_metrics``).

Recording costs well under a microsecond per request: counts are plain numbers in dicts
(:mod:`kybernetes.metrics.accumulate`), rendered at scrape time by :meth:`APIServerMetrics.collect`,
which the server registers in the default registry (so ``kybernetes.metrics.exposition`` serves
them with the process's other metrics). ``KYB_APISERVER_METRICS=off`` in the server's environment
turns all of it off (for ``bench.apiserver --metrics-compare``): no per-request cost at all.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector

from kybernetes import errors
from kybernetes.apiserver.audit.events import LONG_RUNNING_SUBRESOURCES, long_running
from kybernetes.apiserver.authz.authorizer import Decision, Refused
from kybernetes.httpserver.messages import Response
from kybernetes.metrics.accumulate import (
    HistogramState,
    counter_family,
    exponential_buckets,
    gauge_family,
    histogram_family,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from kybernetes.apiserver.authz.authorizer import Chain
    from kybernetes.apiserver.registry.request import User
    from kybernetes.apiserver.transport.requestinfo import RequestInfo
    from kybernetes.apiserver.transport.requests import ResourcePath
    from kybernetes.httpserver.messages import AnyResponse, Request

ENV_SWITCH = "KYB_APISERVER_METRICS"
"""``off`` (or ``0``, ``false``) in the server's environment: no request instrumentation."""

REQUEST_DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10,
                            15, 20, 30, 45, 60)
RESPONSE_SIZE_BUCKETS = exponential_buckets(1000, 10.0, 7)
WATCH_EVENT_SIZE_BUCKETS = exponential_buckets(1024, 2.0, 8)

APISERVER = "apiserver"
EXTENSIONS = "apiextensions-apiserver"
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_REQUEST_LABELS = ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code")
_OBJECT_LABELS = ("verb", "group", "version", "resource", "subresource", "scope", "component")
_WATCH_LABELS = ("group", "version", "kind")
_VALID_VERBS = frozenset({"APPLY", "CONNECT", "CREATE", "DELETE", "DELETECOLLECTION", "GET", "LIST", "PATCH", "POST",
                          "PROXY", "PUT", "UPDATE", "WATCH", "WATCHLIST"})
_READ_ONLY = frozenset({"get", "list", "watch"})
_SIZED_VERBS = frozenset({"GET", "LIST"})
_MAX_SHAPES = 10_000
_APPLY_PATCH = "application/apply-patch+yaml"
_KNOWN_USERNAMES = frozenset({"admin", "client", "kube_proxy", "kubelet", "system:serviceaccount:kube-system:default"})
_AUTHZ_RESULT = {Decision.ALLOW: "allowed", Decision.DENY: "denied", Decision.NO_OPINION: "no-opinion"}
_ALLOW = Decision.ALLOW
_ALLOWED = (Decision.ALLOW, "")


def enabled() -> bool:
    """Whether this server instruments its requests (:data:`ENV_SWITCH`)."""
    return os.environ.get(ENV_SWITCH, "").lower() not in ("off", "0", "false")


def compress_username(name: str) -> str:
    """``compressUsername``: a few known identities by name, the rest as ``email_id`` or ``other``."""
    if name in _KNOWN_USERNAMES:
        return name
    return "email_id" if "@" in name else "other"


def dry_run_label(request: Request) -> str:
    """``cleanDryRun``: empty without ``dryRun``; the sorted distinct values; ``invalid`` unless all are All."""
    if "dryRun" not in request.query_string:
        return ""
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        return "invalid"
    return ",".join(sorted(set(values)))


def _watch_param(request: Request) -> bool:
    """``getVerbIfWatch``: a GET with a ``watch`` parameter other than 0/false is a WATCH."""
    if "watch" not in request.query_string:
        return False
    values = request.query.getall("watch", [])
    return bool(values) and values[0].lower() not in ("0", "false")


def route_scope(rp: ResourcePath | None, info: RequestInfo) -> str:
    """The scope the route reports: ``resource`` (a named object, or a create), ``namespace``, ``cluster``."""
    if rp is None:
        return ""
    if rp.name or info.verb == "create":
        return "resource"
    return "namespace" if rp.namespace else "cluster"


def reported_verb(request: Request, info: RequestInfo, scope: str) -> str:
    """Kubernetes' ``cleanVerb(CanonicalVerb(method, scope), ...)`` for this request."""
    method = request.method
    if info.verb == "watch" or (method == "GET" and _watch_param(request)):
        return "WATCH"
    if method in ("GET", "HEAD"):
        verb = "LIST" if scope not in ("resource", "") else "GET"
    elif method == "PATCH" and request.headers.get("Content-Type") == _APPLY_PATCH:
        verb = "APPLY"
    else:
        verb = method
    if info.is_resource_request and info.subresource in LONG_RUNNING_SUBRESOURCES:
        verb = "CONNECT"
    return verb if verb in _VALID_VERBS else "other"


_InFlight = tuple[float, "_Shape", tuple[str, ...], "dict[int, HistogramState] | None"]
"""A request being served: its start, shape, labels and (without ``dryRun``) its shape's histograms."""


class _Shape:
    """The metrics' view of one request shape: its labels (``dry_run`` empty), request kind
    (0 read-only, 1 mutating) and whether it is long-running."""

    __slots__ = ("by_code", "kind", "labels", "long_running", "sizes")

    def __init__(self, labels: tuple[str, ...], kind: int, long_running: bool, sizes: HistogramState | None) -> None:
        self.labels = labels
        self.kind = kind
        self.long_running = long_running
        self.sizes = sizes
        """The response size histogram of a GET or LIST shape (shared with its dry-run requests)."""
        self.by_code: dict[int, HistogramState] = {}
        """This shape's latency histograms by response code (requests without ``dryRun``), shared
        with :attr:`APIServerMetrics._requests`."""


def _merged_codes(requests: list[tuple[tuple[tuple[str, ...], int], HistogramState]]) -> dict[
        tuple[str, ...], HistogramState]:
    """The latency histograms summed over response codes (the duration metric has no code label)."""
    out: dict[tuple[str, ...], HistogramState] = {}
    for (labels, _code), h in requests:
        m = out.get(labels)
        if m is None:
            m = out[labels] = HistogramState(h.bounds)
        m.buckets = [a + b for a, b in zip(m.buckets, h.buckets, strict=True)]
        m.sum += h.sum
    return out


class APIServerMetrics(Collector):
    """The request, watch, authentication and authorization metrics of one API server process."""

    def __init__(self, builtin_groups: frozenset[str]) -> None:
        self._builtin_groups = builtin_groups
        self._shapes: dict[tuple[object, ...], _Shape] = {}
        """Request shape -> what its metrics need (labels, kind, histograms): one lookup a request."""
        self._requests: dict[tuple[tuple[str, ...], int], HistogramState] = {}
        """(labels but code, code) -> latency histogram; its count is apiserver_request_total."""
        self._sizes: dict[tuple[str, ...], HistogramState] = {}
        self._longrunning: dict[tuple[str, ...], int] = {}
        self._executing = [0, 0]
        """Requests executing now: read-only, mutating (long-running ones excluded)."""
        self._peak = [0, 0]
        self._reported = [0, 0]
        self._watch_events: dict[tuple[str, str, str], HistogramState] = {}
        self._users: dict[str, int] = {}
        """Authenticated requests by user name (``authenticated_user_requests`` compresses them)."""
        self._authz_allowed = 0
        self._authn: dict[str, int] = {}
        """Refused authentications (``failure``); successes are the sum of ``_users``."""
        self._authz: dict[str, int] = {}
        """Authorization results but ``allowed`` (``_authz_allowed``)."""
        self._ticker: asyncio.TimerHandle | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin the one-second in-flight watermark (on the running loop)."""
        self._tick()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self) -> None:
        self._reported = self._peak
        self._peak = list(self._executing)
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)

    # --- recording -------------------------------------------------------------------------

    def authenticate(self, authenticate: Callable[[], User]) -> User:
        """Run ``authenticate`` (the server's authenticator on this request), counting its result."""
        try:
            user = authenticate()
        except errors.Unauthorized:
            self.unauthenticated()
            raise
        self.authenticated(user)
        return user

    def unauthenticated(self) -> None:
        """Count a request that authentication refused (401)."""
        self._authn["failure"] = self._authn.get("failure", 0) + 1

    def authenticated(self, user: User) -> None:
        """Count a request authentication accepted, as ``user`` (by name; compressed when scraped)."""
        users = self._users
        name = user.name
        n = users.get(name)
        if n is not None:
            users[name] = n + 1
        elif len(users) < _MAX_SHAPES:
            users[name] = 1
        else:  # too many names to keep apart: count under one that compresses the same way
            folded = compress_username(name)
            users[folded] = users.get(folded, 0) + 1

    def decide(self, authorizer: Chain | None, user: User, info: RequestInfo) -> tuple[Decision, str]:
        """The authorizer's decision on this request (allow when there is none: AlwaysAllow), counted."""
        if authorizer is None:
            self._authz_allowed += 1
            return _ALLOWED
        try:
            found = authorizer.decide(user, info)
        except Exception:
            self._authz["error"] = self._authz.get("error", 0) + 1
            raise
        if found[0] is _ALLOW:
            self._authz_allowed += 1
        else:
            result = _AUTHZ_RESULT.get(found[0], "error")
            self._authz[result] = self._authz.get(result, 0) + 1
        return found

    def _add_shape(self, key: tuple[object, ...], request: Request, rp: ResourcePath | None,
                   info: RequestInfo) -> _Shape:
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        shape = self._shapes[key] = self._new_shape(request, rp, info)
        return shape

    def _new_shape(self, request: Request, rp: ResourcePath | None, info: RequestInfo) -> _Shape:
        if info.is_resource_request:
            scope = route_scope(rp, info)
            labels = (reported_verb(request, info, scope), "", info.api_group, info.api_version, info.resource,
                      info.subresource, scope, APISERVER if info.api_group in self._builtin_groups else EXTENSIONS)
        else:
            labels = ("GET" if request.method in ("GET", "HEAD") else "other", "", "", "", "", info.path, "", "")
        sizes = None
        if labels[0] in _SIZED_VERBS:
            key = labels[:1] + labels[2:]
            sizes = self._sizes.get(key)
            if sizes is None:
                sizes = self._sizes[key] = HistogramState(RESPONSE_SIZE_BUCKETS)
        return _Shape(labels, 0 if info.verb in _READ_ONLY else 1, long_running(info), sizes)

    async def serve(self, request: Request, rp: ResourcePath | None, info: RequestInfo,
                    call: Callable[[], Awaitable[AnyResponse]]) -> AnyResponse:
        """Run ``call`` (everything after authentication) and count the request as Kubernetes does:
        :meth:`begin`, then :meth:`done` or :meth:`failed` (the server calls those three itself)."""
        flight = self.begin(request, rp, info)
        if flight is None:
            return await call()
        try:
            response = await call()
        except BaseException as e:
            self.failed(flight, e)
            raise
        self.done(flight, response)
        return response

    def begin(self, request: Request, rp: ResourcePath | None, info: RequestInfo) -> _InFlight | None:
        """A request starts (after authentication): what :meth:`done` / :meth:`failed` need, or
        None when Kubernetes does not count it. The labels are worked out once per request shape
        (method, verb, resource, named or not, namespaced or not, watch or apply)."""
        t0 = perf_counter()
        method = request.method
        if rp is not None:
            special = (method == "GET" and "watch" in request.query_string and _watch_param(request)) or (
                method == "PATCH" and request.headers.get("Content-Type") == _APPLY_PATCH)
            key: tuple[object, ...] = (method, info.verb, rp.group, rp.version, rp.plural, rp.subresource,
                                       not rp.name, not rp.namespace, special)
        elif info.path in HEALTH_PATHS:
            key = (method, info.path)
        else:
            return None
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._add_shape(key, request, rp, info)
        labels = shape.labels
        by_code: dict[int, HistogramState] | None = shape.by_code
        if "dryRun" in request.query_string:
            labels, by_code = (labels[0], dry_run_label(request), *labels[2:]), None
        if shape.long_running:
            lr = labels[:1] + labels[2:]  # longrunning_requests has no dry_run
            self._longrunning[lr] = self._longrunning.get(lr, 0) + 1
        else:
            executing = self._executing
            kind = shape.kind
            executing[kind] += 1
            if executing[kind] > self._peak[kind]:
                self._peak[kind] = executing[kind]
        return (t0, shape, labels, by_code)

    def done(self, flight: _InFlight, response: AnyResponse) -> None:
        """The request was answered with ``response``."""
        t0, shape, labels, by_code = flight
        seconds = perf_counter() - t0
        if shape.long_running:
            self._end_long_running(labels, response.status, seconds)
            return
        self._executing[shape.kind] -= 1
        h = by_code.get(response.status) if by_code is not None else None
        if h is None:
            self._record(labels, response.status, seconds, by_code)
        else:  # _record and HistogramState.observe, inlined: this runs for every request
            h.buckets[bisect_left(REQUEST_DURATION_BUCKETS, seconds)] += 1
            h.sum += seconds
        sizes = shape.sizes
        if sizes is not None and response.__class__ is Response:
            size = len(response.body)  # type: ignore[union-attr]
            sizes.buckets[bisect_left(RESPONSE_SIZE_BUCKETS, size)] += 1
            sizes.sum += size

    def failed(self, flight: _InFlight, e: BaseException) -> None:
        """The request ended with ``e``: a Status error counts with its code, an internal error as
        500; a filter's refusal (:class:`Refused`) not at all; a client that left counts only when
        it was a watch or connection (served until then)."""
        t0, shape, labels, by_code = flight
        if isinstance(e, Refused):
            code = 0
        elif isinstance(e, errors.StatusError):
            code = e.code
        elif isinstance(e, (asyncio.CancelledError, ConnectionResetError)):
            code = 200 if shape.long_running else 0
        else:
            code = 500
        if shape.long_running:
            self._end_long_running(labels, code, perf_counter() - t0)
            return
        self._executing[shape.kind] -= 1
        if code:
            self._record(labels, code, perf_counter() - t0, by_code)

    def _end_long_running(self, labels: tuple[str, ...], code: int, seconds: float) -> None:
        self._longrunning[labels[:1] + labels[2:]] -= 1
        if code:
            self._record(labels, code, seconds)

    def _record(self, labels: tuple[str, ...], code: int, seconds: float,
                by_code: dict[int, HistogramState] | None = None) -> None:
        h = by_code.get(code) if by_code is not None else None
        if h is None:
            h = self._requests.get((labels, code))
            if h is None:
                h = self._requests[labels, code] = HistogramState(REQUEST_DURATION_BUCKETS)
            if by_code is not None:
                by_code[code] = h
        h.buckets[bisect_left(REQUEST_DURATION_BUCKETS, seconds)] += 1  # HistogramState.observe, inlined
        h.sum += seconds

    def watch_events(self, group: str, version: str, kind: str) -> HistogramState:
        """The watch events series of one resource: ``observe(size)`` per event line sent."""
        key = (group, version, kind)
        h = self._watch_events.get(key)
        if h is None:
            h = self._watch_events[key] = HistogramState(WATCH_EVENT_SIZE_BUCKETS)
        return h

    # --- exposition ------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        requests = list(self._requests.items())
        yield counter_family(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, "
            "scope, component, and HTTP response code.",
            _REQUEST_LABELS, (((*labels, str(code)), h.count) for (labels, code), h in requests))
        yield histogram_family(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, "
            "subresource, scope and component.",
            _REQUEST_LABELS[:-1], _merged_codes(requests).items())
        yield histogram_family(
            "apiserver_response_sizes",
            "Response size distribution in bytes for each group, version, verb, resource, subresource, scope and "
            "component.", _OBJECT_LABELS, list(self._sizes.items()))
        yield gauge_family(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, "
            "scope and component. Not all requests are tracked this way.",
            _OBJECT_LABELS, list(self._longrunning.items()))
        reported = [max(a, b) for a, b in zip(self._reported, self._peak, strict=True)] if self._ticker is None \
            else self._reported
        yield gauge_family(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last "
            "second.", ("request_kind",), [(("readOnly",), reported[0]), (("mutating",), reported[1])])
        events = list(self._watch_events.items())
        yield counter_family("apiserver_watch_events_total", "Number of events sent in watch clients",
                             _WATCH_LABELS, ((k, h.count) for k, h in events))
        yield histogram_family("apiserver_watch_events_sizes", "Watch event size distribution in bytes",
                               _WATCH_LABELS, events)
        yield from self._auth_families()

    def _auth_families(self) -> Iterator[Metric]:
        users: dict[str, int] = {}
        for name, n in list(self._users.items()):
            label = compress_username(name)
            users[label] = users.get(label, 0) + n
        yield counter_family("authenticated_user_requests", "Counter of authenticated requests broken out by username.",
                             ("username",), (((u,), n) for u, n in users.items()), legacy_name=True)
        attempts = {"success": sum(users.values()), **self._authn}
        yield counter_family("authentication_attempts", "Counter of authenticated attempts.", ("result",),
                             (((r,), n) for r, n in attempts.items()), legacy_name=True)
        results = {"allowed": self._authz_allowed, **self._authz}
        yield counter_family("authorization_attempts_total",
                             "Counter of authorization attempts broken down by result. It can be either 'allowed', "
                             "'denied', 'no-opinion' or 'error'.", ("result",),
                             (((r,), n) for r, n in results.items()))
