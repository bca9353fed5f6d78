"""The secure port every control-plane component serves: health and metrics, as Kubernetes' components.

kube-scheduler (10259), kube-controller-manager (10257) and cloud-controller-manager (10258) serve
HTTPS on ``--secure-port`` (0: none) at ``--bind-address`` (default 0.0.0.0). Contract:

- **Certificate.** ``--tls-cert-file``/``--tls-private-key-file`` when given; otherwise a
  self-signed one made at start for ``localhost`` and 127.0.0.1 (its own throw-away CA, as
  Kubernetes' ``MaybeDefaultWithSelfSignedCerts``). ``kyb server`` passes one signed by the
  cluster CA (as k3s does), so a scraper that trusts the cluster CA verifies it.
- **Who and what** (:mod:`kybernetes.serving.delegated` on :mod:`kybernetes.client.delegatedauth`): client certificates against
  ``--client-ca-file`` (default: ``client-ca-file`` of ``kube-system/extension-apiserver-authentication``,
  read once at start; unreadable: no client certificates, as Kubernetes' tolerated lookup
  failure), bearer tokens by TokenReview, then SubjectAccessReview for ``get`` on the path;
  ``--authorization-always-allow-paths`` (default ``/healthz,/readyz,/livez``) and ``system:masters``
  skip the review. 401 and 403 are ``Status`` bodies with Kubernetes' wording.
- **Endpoints.** ``/healthz``, ``/livez``, ``/readyz`` with named checks
  (:mod:`kybernetes.httpserver.healthz`: ``?verbose``, ``?exclude``, ``/readyz/NAME``); ``ping``
  always, then the component's (``leaderElection``, ``sched-handler-sync``, ...). ``/metrics``:
  the process's default registry as the component that made the server sees it
  (:func:`kybernetes.metrics.exposition` with its task's ``COMPONENT``: in ``kyb control-plane``,
  its own series only). ``/metrics/slis``:
  Kubernetes' component SLIs, ``kubernetes_healthcheck{name,type}`` (1 passed, 0 failed) and
  ``kubernetes_healthchecks_total{name,type,status}``, recorded for every check run by a
  ``/healthz``, ``/livez`` or ``/readyz`` request (not ``/readyz/NAME``), in a registry of their
  own as in Kubernetes (:class:`SLIs`, one per server). Anything else 404.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.client.delegatedauth import ANONYMOUS_USER, User, certificate_user
from kybernetes.client.leaderelection import HealthzAdaptor
from kybernetes.client.rest import Client
from kybernetes.httpserver import healthz
from kybernetes.httpserver.messages import Request, Response
from kybernetes.httpserver.protocol import HTTPServer
from kybernetes.metrics import COMPONENT, exposition
from kybernetes.serving.delegated import DEFAULT_ALWAYS_ALLOW_PATHS, ComponentAuth, request_verb

log = logging.getLogger(__name__)

SCHEDULER_PORT = 10259
CONTROLLER_MANAGER_PORT = 10257
CLOUD_CONTROLLER_MANAGER_PORT = 10258
CA_LOOKUP_TIMEOUT = 10.0
AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")

Checks = dict[str, healthz.Check]

class SLIs:
    """A component's SLI metrics (``component-base/metrics/prometheus/slis``), in a registry of its
    own: one per secure port, so components sharing a process keep theirs apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.healthcheck = Gauge("kubernetes_healthcheck", "This metric records the result of a single healthcheck.",
                                 ["name", "type"], registry=self.registry)
        self.healthchecks_total = Counter("kubernetes_healthchecks_total",
                                          "This metric records the results of all healthcheck.",
                                          ["name", "type", "status"], registry=self.registry)

    def recorded(self, endpoint: str, name: str, check: healthz.Check) -> healthz.Check:
        """``check``, its result recorded in the SLI metrics (``slis.ObserveHealthcheck``)."""

        async def run() -> None:
            try:
                await check()
            except Exception:
                self.healthcheck.labels(name, endpoint).set(0)
                self.healthchecks_total.labels(name, endpoint, "error").inc()
                raise
            self.healthcheck.labels(name, endpoint).set(1)
            self.healthchecks_total.labels(name, endpoint, "success").inc()

        return run


@dataclass
class SecureServingOptions:
    """``--secure-port``, ``--bind-address``, the certificate and the delegated auth's flags."""

    secure_port: int
    bind_address: str = "0.0.0.0"
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    always_allow_paths: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW_PATHS


F = TypeVar("F", bound=Callable[..., Any])


def secure_serving_flags(default_port: int) -> Callable[[F], F]:
    """Click options for a component's secure port; the command receives ``serving=SecureServingOptions``."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            paths = tuple(p.strip() for p in kw.pop("authorization_always_allow_paths").split(",") if p.strip())
            opts = SecureServingOptions(
                secure_port=kw.pop("secure_port"), bind_address=kw.pop("bind_address"),
                tls_cert_file=kw.pop("tls_cert_file"), tls_private_key_file=kw.pop("tls_private_key_file"),
                client_ca_file=kw.pop("client_ca_file"), always_allow_paths=paths)
            if bool(opts.tls_cert_file) != bool(opts.tls_private_key_file):
                raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
            return f(*args, serving=opts, **kw)

        options = [
            click.option("--secure-port", type=click.IntRange(0, 65535), default=default_port, show_default=True,
                         help="HTTPS port of /healthz, /livez, /readyz and /metrics; 0: none."),
            click.option("--bind-address", default="0.0.0.0", show_default=True,
                         help="The address the secure port listens on."),
            click.option("--tls-cert-file", default=None, help="Serving certificate (default: self-signed)."),
            click.option("--tls-private-key-file", default=None, help="Key of --tls-cert-file."),
            click.option("--client-ca-file", default=None,
                         help="CA of client certificates (default: from kube-system/extension-apiserver-authentication)."),
            click.option("--authorization-always-allow-paths", default=",".join(DEFAULT_ALWAYS_ALLOW_PATHS),
                         show_default=True, help="Paths served without a SubjectAccessReview."),
        ]
        out: Any = wrapper
        for opt in reversed(options):
            out = opt(out)
        return out  # type: ignore[no-any-return]

    return decorate


def self_signed(host: str = "localhost", ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[bytes, bytes]:
    """A serving certificate (PEM) for ``host`` and ``ips`` from a throw-away CA of its own, and its key."""
    # Imported here: the PKI's cryptography costs ~10 MB for the life of a process, and a component
    # given its certificate (as ``kyb server`` gives each) never makes one.
    from kybernetes.pki import PKI

    with tempfile.TemporaryDirectory(prefix="kyb-selfsigned-") as tmp:
        ca = PKI.load_or_create(Path(tmp), f"{host}-ca", f"{host}-ca")
        stamp = int(dt.datetime.now(dt.UTC).timestamp())
        return ca.issue(f"{host}@{stamp}", dns_names=(host,), ip_addresses=ips, server=True)


async def _client_ca(client: Client | None, options: SecureServingOptions) -> bytes | None:
    if options.client_ca_file:
        return Path(options.client_ca_file).read_bytes()
    if client is None:
        return None
    ns, name = AUTH_CONFIGMAP
    try:
        cm = await wait_for(client.get("v1", "configmaps", name, ns), CA_LOOKUP_TIMEOUT)
    except Exception as e:  # tolerated, as Kubernetes' --authentication-tolerate-lookup-failure
        log.warning("no client certificate authentication: cannot read %s/%s: %s", ns, name, e)
        return None
    ca = (cm.get("data") or {}).get("client-ca-file")
    return ca.encode() if ca else None


def _ssl_context(options: SecureServingOptions, client_ca: bytes | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if options.tls_cert_file:
        ctx.load_cert_chain(options.tls_cert_file, options.tls_private_key_file)
    else:
        cert, key = self_signed()
        with tempfile.TemporaryDirectory(prefix="kyb-serving-") as tmp:
            (Path(tmp) / "tls.crt").write_bytes(cert)
            (Path(tmp) / "tls.key").write_bytes(key)
            ctx.load_cert_chain(str(Path(tmp) / "tls.crt"), str(Path(tmp) / "tls.key"))
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _status(err: errors.StatusError) -> Response:
    return Response(body=orjson.dumps(err.status()), status=err.code, content_type="application/json")


class ComponentServer:
    """A component's secure port (see the module doc). ``healthz`` is the checks of ``/healthz`` and
    ``/livez``, ``readyz`` those of ``/readyz``; both are read per request, so checks added after
    :meth:`start` (a controller's, once it runs) are served from then on."""

    def __init__(self, options: SecureServingOptions, client: Client | None, *,
                 healthz_checks: Checks | None = None, readyz_checks: Checks | None = None) -> None:
        self.options = options
        self.client = client
        self.healthz: Checks = {"ping": healthz.ping, **(healthz_checks or {})}
        self.readyz: Checks = {"ping": healthz.ping, **(readyz_checks or {})}
        self.auth = ComponentAuth(client, always_allow_paths=options.always_allow_paths)
        self.port = 0
        self.slis = SLIs()
        self.component = COMPONENT.get()
        """Whose ``/metrics`` this serves, in a process of several components (kybernetes.metrics)."""
        self._server: HTTPServer | None = None

    def add_ping_checks(self, names: list[str]) -> None:
        """A ping check per name in ``/healthz``, ``/livez`` and ``/readyz`` (kube-controller-manager's
        ``NamedPingChecker`` per started controller)."""
        for name in names:
            self.healthz[name] = self.readyz[name] = healthz.ping

    async def start(self) -> int:
        """Listen (nothing with ``--secure-port 0``); returns the port, 0 if none."""
        if self.options.secure_port == 0:
            return 0
        ctx = _ssl_context(self.options, await _client_ca(self.client, self.options))
        self._server = HTTPServer(self.handle, max_body=0)
        self.port = await self._server.start(self.options.bind_address, self.options.secure_port, ssl_context=ctx)
        log.info("serving securely on %s:%d", self.options.bind_address, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(1.0)
            self._server = None

    async def _user(self, req: Request) -> User | None:
        peercert = req.peercert
        if peercert:
            return certificate_user(peercert)
        header = req.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return await self.auth.authenticate_token(token.strip())
        return ANONYMOUS_USER

    async def handle(self, req: Request) -> Response:
        user = await self._user(req)
        if user is None:
            return _status(errors.Unauthorized("Unauthorized"))
        path = req.path
        verb = request_verb(req.method)
        decision = await self.auth.authorize_path(user, verb, path)
        if not decision.allowed:
            reason = decision.reason
            message = f'User "{user.name}" cannot {verb} path "{path}"'
            return _status(errors.Forbidden(f"forbidden: {message}: {reason}" if reason else f"forbidden: {message}",
                                            details={}))
        return await self._route(req, path)

    async def _route(self, req: Request, path: str) -> Response:
        if path in ("/metrics", "/metrics/slis"):
            if path == "/metrics/slis":
                body, content_type = exposition(req.headers.get("Accept", ""), self.slis.registry)
            else:
                body, content_type = exposition(req.headers.get("Accept", ""), REGISTRY, self.component)
            return Response(body=body, content_type=content_type)
        endpoint, _, sub = path.lstrip("/").partition("/")
        if endpoint in ("healthz", "livez", "readyz"):
            checks = self.readyz if endpoint == "readyz" else self.healthz
            if not sub:
                checks = {name: self.slis.recorded(endpoint, name, check) for name, check in checks.items()}
            return await healthz.serve(endpoint, sub, checks, req.query)
        return Response(text="404 page not found\n", status=404, content_type="text/plain")


async def serve_controllers(options: SecureServingOptions | None, client: Client,
                            election: HealthzAdaptor | None) -> ComponentServer | None:
    """A controller manager's secure port (kube-controller-manager's, the cloud-controller-manager's),
    started, with the ``leaderElection`` check on /healthz and /readyz when leader-elected (each
    controller adds its ping check once it runs: ``add_ping_checks``). None without ``options``."""
    if options is None:
        return None
    checks: Checks = {election.name: election.check} if election is not None else {}
    server = ComponentServer(options, client, healthz_checks=checks, readyz_checks=dict(checks))
    await server.start()
    return server
