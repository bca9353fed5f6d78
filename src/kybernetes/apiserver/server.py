"""kube-apiserver: configuration, assembly, and the HTTPS server.

``run(config)`` opens the store, loads (or makes) the cluster PKI, builds the registry with every
built-in strategy, starts the watch cache and the CRD controller, creates the namespaces and the
``kubernetes`` Service a cluster starts with, writes the admin kubeconfig, and serves HTTPS until
it is told to stop. ``/livez``, ``/readyz`` and ``/healthz`` run their checks once serving (``health.py``:
``ok``, or 500 naming the failed check, e.g. the store's), to whoever is authorized to read them (``system:public-info-viewer`` lets anonymous requests read them).

Request flow (``kybernetes.httpserver`` parses HTTP/1.1 and calls ``_handle``, which turns every
error into a Status; ``_dispatch`` routes):

    TLS (client cert verified against the cluster CA, optional)
      -> node join, before authentication
      -> authenticate (cert or bearer token; system:anonymous without either when anonymous
         requests are on; 401 otherwise, and for bad credentials)
      -> impersonation (auth/impersonation.py: Impersonate-* headers, authorized; 400/403)
      -> RequestInfo (transport/requestinfo.py: verb, resource, namespace, name), once
      -> audit (audit/, only with --audit-policy-file and --audit-log-path: the policy's level for
         the request, its event written at each stage; the Audit-Id header on every response)
      -> API Priority and Fairness (flowcontrol/: classify, take a seat or queue, or 429)
      -> authorize (authz/: system:masters, then each --authorization-mode; 403 otherwise)
      -> route: health and version, discovery, openapi, an aggregated API (aggregator/: proxied), or a resource
         URL -> ResourceHandlers -> Registry -> watch cache / Store
      -> any StatusError rendered as a Status object with its code; an unreachable store
         (storage UnavailableError) a 503 with Retry-After; anything else a 500 Status
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver import health, monitoring
from kybernetes.apiserver.admission import plugins as admission_plugins
from kybernetes.apiserver.admission import priority
from kybernetes.apiserver.admission.chain import PluginInit
from kybernetes.apiserver.aggregator import Aggregator, FrontProxyConfig
from kybernetes.apiserver.aggregator.frontproxy import Trust, resolve_trust
from kybernetes.apiserver.audit import Auditor, new_auditor
from kybernetes.apiserver.audit.events import AuditEvent
from kybernetes.apiserver.audit.events import long_running as audit_long_running
from kybernetes.apiserver.auth.authenticator import Authenticator, TokenFile
from kybernetes.apiserver.auth.bootstraptokens import BootstrapTokens
from kybernetes.apiserver.auth.impersonation import impersonate
from kybernetes.apiserver.auth.legacytokens import LegacyTokens
from kybernetes.apiserver.auth.requestheader import Issuers, RequestHeaderAuthenticator, RequestHeaderConfig
from kybernetes.apiserver.auth.serviceaccounts import (
    API_AUDIENCES,
    JWKS_PATH,
    OIDC_CONFIGURATION_PATH,
    ServiceAccounts,
)
from kybernetes.apiserver.authz.authorizer import (
    DEFAULT_MODES,
    Attributes,
    AuthorizerFactory,
    Chain,
    Decision,
    forbidden,
    new_chain,
    validate_modes,
)
from kybernetes.apiserver.authz.bootstrappolicy.reconcile import ensure_rbac_policy
from kybernetes.apiserver.authz.node import NodeAuthorizer
from kybernetes.apiserver.authz.rbac import RBACAuthorizer
from kybernetes.apiserver.componentstatus import ComponentStatuses
from kybernetes.apiserver.crds import CRDController
from kybernetes.apiserver.endpointreconciler import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_INTERVAL,
    EndpointReconciler,
)
from kybernetes.apiserver.flowcontrol import FlowControl
from kybernetes.apiserver.join.service import JoinService
from kybernetes.apiserver.metrics import APIServerMetrics
from kybernetes.apiserver.registry import (
    builtin_conversions,
    builtin_strategies,
    certificates,
    rbac_escalation,
)
from kybernetes.apiserver.registry.core.serviceallocator import ServiceAllocator
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.rest import ResourceREST
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.transport import discovery, openapi_pb
from kybernetes.apiserver.transport.handlers import JSON, ResourceHandlers, json_response
from kybernetes.apiserver.transport.openapi import OpenAPIService
from kybernetes.apiserver.transport.requestinfo import RequestInfo, request_info
from kybernetes.apiserver.transport.requests import (
    ResourcePath,
    parse_accept,
    parse_resource_path,
    pretty_requested,
)
from kybernetes.datadir import store_path
from kybernetes.httpserver.messages import AnyResponse, Request, Response
from kybernetes.httpserver.protocol import HTTPServer
from kybernetes.join import NodeSettings
from kybernetes.pki import PKI, kubeconfig, write_kubeconfig
from kybernetes.storage.interface import Store, StoreError, UnavailableError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""Kubernetes' limit on a request body (413 beyond it)."""

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+kyb",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-28T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class APIServerConfig:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    datastore_endpoint: str = ""
    """Empty or ``sqlite://PATH`` for the embedded store; ``https://H:P[,...]`` or ``http://`` for etcd."""
    datastore_tls: tuple[str, str, str] = ("", "", "")
    """etcd's (CA file, client certificate file, key file)."""
    etcd_compaction_interval: float = 300.0
    """Seconds between etcd compaction rounds (0: none); kube-apiserver's ``--etcd-compaction-interval``."""
    token_file: Path | None = None
    service_cidr: str = "10.43.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    extra_sans: tuple[str, ...] = ()
    advertise_address: str = ""
    extra_bind_addresses: tuple[str, ...] = ()
    """Addresses served besides `bind_address` (`kyb server`'s default: the advertised primary
    address, so that pods reach the API server through the kubernetes Service)."""
    kubeconfig_path: Path | None = None
    on_ready: Callable[[APIServer], Awaitable[None] | None] | None = None
    compact_interval: float = 60.0
    compact_keep: int = 1000
    """Revisions of history kept by compaction (watches may resume within them)."""
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    """Their sum is the concurrency API Priority and Fairness divides among priority levels."""
    enable_admission_plugins: tuple[str, ...] = ()
    disable_admission_plugins: tuple[str, ...] = ()
    """Admission plugins on besides / off among the default ones (see ``admission/plugins.py``)."""
    authorization_modes: tuple[str, ...] = DEFAULT_MODES
    """``--authorization-mode``: the authorizers after ``system:masters``, in order (``authz/``)."""
    anonymous_auth: bool = True
    """``--anonymous-auth``: requests without credentials are ``system:anonymous``; as in
    kube-apiserver, turned off whatever this says when AlwaysAllow is among the modes."""
    audit_policy_file: str = ""
    audit_log_path: str = ""
    """``--audit-log-path``: a file, or ``-`` for standard output; auditing needs it and the policy."""
    audit_log_maxsize: int = 0
    """MB before the log is rotated (0: lumberjack's 100)."""
    audit_log_maxbackup: int = 0
    audit_log_maxage: int = 0
    """Rotated logs kept: at most this many (0: all), and none older than this many days (0: any age)."""
    node_settings: NodeSettings | None = None
    """What the join service tells nodes of the cluster (``GET /kybernetes.io/v1/node-config``);
    ``kyb server`` fills it, None (``kyb apiserver`` alone) says only the service range."""
    front_proxy: FrontProxyConfig = field(default_factory=FrontProxyConfig)
    """``--requestheader-*``, ``--proxy-client-*``: how the aggregation layer asserts users to backends."""
    identity_lease_duration: int = DEFAULT_LEASE_DURATION
    identity_lease_renew_interval: int = DEFAULT_RENEW_INTERVAL
    """Seconds: an API server leaves the kubernetes endpoints this long after its last renewal."""
    extra: dict[str, Any] = field(default_factory=dict)




KEY_LAYOUT = 2
"""The store's key layout: 2 is kube-apiserver's (``Resource.key_prefix``)."""


async def open_store(config: APIServerConfig) -> Store:
    ep = config.datastore_endpoint
    path = store_path(config.data_dir, ep)
    if path is not None:
        from kybernetes.storage.sqlite import SQLiteStore

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = await SQLiteStore.open(str(path), compact_interval=config.compact_interval,
                                       compact_keep=config.compact_keep)
        # A store an older kybernetes wrote keeps built-in resources under /registry/<group or core>/.
        renames = sorted({(r.legacy_key_prefix, r.key_prefix) for r in Catalogue.builtin().all() if r.stored})
        moved = await store.rename_prefixes(renames, KEY_LAYOUT)
        if moved:
            log.info("store: moved %d rows to kube-apiserver's key layout", moved)
        return store
    if ep.startswith(("https://", "http://")):
        return await _open_etcd(config)
    raise errors.BadRequest(f"unsupported datastore endpoint {ep!r} (supported: sqlite://PATH, "
                            "https://HOST:PORT or http://HOST:PORT for etcd)")


async def _open_etcd(config: APIServerConfig) -> Store:
    """The etcd store; while no endpoint answers, say so and retry (as k3s does), never a traceback."""
    from kybernetes.storage.etcd import EtcdStore
    from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints

    try:
        endpoints = parse_endpoints(config.datastore_endpoint)
    except ValueError as e:
        raise errors.BadRequest(str(e)) from None
    tls = TLSFiles(*config.datastore_tls)
    for f in config.datastore_tls:
        if f and not Path(f).is_file():
            raise errors.BadRequest(f"datastore TLS file {f} does not exist")
    delay = 1.0
    while True:
        conn = EtcdConnection(endpoints, tls)
        try:
            return await EtcdStore.open(conn, compact_interval=config.etcd_compaction_interval)
        except StoreError as e:
            await conn.close()
            log.error("datastore %s is not reachable (%s); retrying in %.0fs", config.datastore_endpoint, e, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


class APIServer:
    def __init__(self, config: APIServerConfig) -> None:
        self.config = config
        self.catalogue = Catalogue.builtin()
        self.store: Store | None = None
        self.registry: Registry | None = None
        self.handlers: ResourceHandlers | None = None
        self.allocator = ServiceAllocator(config.service_cidr, config.node_port_range)
        self.crds: CRDController | None = None
        self.pki: PKI | None = None
        self.http: HTTPServer | None = None
        self.port = 0
        self.ready = asyncio.Event()
        self.openapi: OpenAPIService | None = None
        self.authenticator: Authenticator | None = None
        self.service_accounts: ServiceAccounts | None = None
        self.join: JoinService | None = None
        self.discovery = discovery.DiscoveryCache(self.catalogue)
        self.flowcontrol: FlowControl | None = None
        self.authorizer: Chain | None = None
        """None when every request is allowed (``AlwaysAllow`` alone): no per-request cost then."""
        self.authorizer_factories: dict[str, AuthorizerFactory] = {}
        """The modes that need this server's parts, by name (RBAC, Node), made at start."""
        self.anonymous = config.anonymous_auth and "AlwaysAllow" not in config.authorization_modes
        """Whether a request without credentials is served as ``system:anonymous``."""
        if config.anonymous_auth and not self.anonymous:
            log.warning("AnonymousAuth is not allowed with the AlwaysAllow authorizer. Resetting AnonymousAuth "
                        "to false. You should use a different authorizer")
        self.audit: Auditor | None = None
        """None unless both an audit policy and an audit log are configured: no per-request cost then."""
        self.aggregator: Aggregator | None = None
        self._front_proxy_trust: Trust | None = None
        self.endpoints: EndpointReconciler | None = None
        """This server's identity lease and its place in the ``kubernetes`` Service's endpoints."""
        self.monitoring: monitoring.Monitoring | None = None
        """``/metrics``' collectors (monitoring.py); None when metrics are off: no per-request cost then."""

    @property
    def url(self) -> str:
        host = self.config.advertise_address or self.config.bind_address
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def local_url(self) -> str:
        """The URL for clients on this machine (the admin kubeconfig, the bundled components):
        loopback when the server listens there, so that it does not change with the advertised
        address (k3s's kubeconfig says 127.0.0.1 too)."""
        bind = self.config.bind_address
        if bind in ("0.0.0.0", "", "127.0.0.1"):
            return f"https://127.0.0.1:{self.port}"
        if bind in ("::", "::1"):
            return f"https://[::1]:{self.port}"
        return self.url

    async def start(self) -> None:
        cfg = self.config
        concurrency = cfg.max_requests_inflight + cfg.max_mutating_requests_inflight
        if concurrency <= 0:
            raise ValueError(f"invalid configuration: MaxRequestsInFlight={cfg.max_requests_inflight} and "
                             f"MaxMutatingRequestsInFlight={cfg.max_mutating_requests_inflight}; they must add up "
                             "to something positive")
        problems = admission_plugins.validate_flags(cfg.enable_admission_plugins, cfg.disable_admission_plugins)
        if problems:
            raise ValueError(admission_plugins.flag_error(problems))
        if problems := validate_modes(cfg.authorization_modes):
            raise ValueError("; ".join(problems))
        self.audit = new_auditor(cfg.audit_policy_file, cfg.audit_log_path, cfg.audit_log_maxsize,
                                 cfg.audit_log_maxbackup, cfg.audit_log_maxage)
        if self.audit is not None:
            self.audit.start()
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pki = PKI.load_or_create(cfg.data_dir)
        self.join = JoinService(self)
        self.store = await open_store(cfg)
        self.registry = Registry(self.store, self.catalogue, builtin_strategies(), builtin_conversions())
        self.allocator.install(self.registry)
        certificates.install(self.registry)
        rbac_escalation.install(self.registry, lambda: self.authorizer)
        self.registry.admission = admission_plugins.new_chain(
            admission_plugins.enabled_plugin_names(cfg.enable_admission_plugins, cfg.disable_admission_plugins),
            PluginInit(self.registry, lambda: self.authorizer))
        self.service_accounts = ServiceAccounts(self.registry, self.pki.service_account_key())
        self.handlers = ResourceHandlers(self.registry, self.catalogue)
        self.monitoring = monitoring.attach(self.catalogue, self.store, self.registry.admission, self.handlers)
        self.authenticator = Authenticator(TokenFile(cfg.token_file))
        self._front_proxy_trust = resolve_trust(cfg.front_proxy, self.pki)
        self._install_request_header_auth()
        self._install_rest()
        await self.registry.start()
        self.allocator.start_repair(self.registry)
        # Token authentication reads these from memory: have them cached from the start.
        for plural in ("serviceaccounts", "pods", "secrets"):
            r = self.catalogue.get("", "v1", plural)
            assert r is not None
            await self.registry.cacher.cache_for(r.key_prefix)
        self.crds = CRDController(self.registry, self.catalogue)
        await self.crds.start()
        self.openapi = OpenAPIService(self.catalogue, self.crds.custom_schema_for, lambda: self.crds.schema_version)  # type: ignore[union-attr]
        await self._bootstrap()
        self.aggregator = Aggregator(self.registry, self.catalogue, self.pki, cfg.front_proxy, self.discovery.invalidate)
        await self.aggregator.start()
        self.flowcontrol = FlowControl(self.registry, self.catalogue, concurrency,
                                       metrics=self.monitoring.flowcontrol if self.monitoring is not None else None)
        await self.flowcontrol.start()
        await self.registry.admission.start()  # plugins with state from the cluster (webhook configurations)
        self.authorizer_factories["RBAC"] = lambda: RBACAuthorizer(self.registry, self.catalogue)  # type: ignore[arg-type]
        self.authorizer_factories["Node"] = self._node_authorizer
        if cfg.authorization_modes != ("AlwaysAllow",):
            self.authorizer = new_chain(cfg.authorization_modes, self.authorizer_factories)
            await self.authorizer.start()
        self.authenticator.extra_token_authenticators.append(self.service_accounts.authenticate)
        self.authenticator.review_authenticators.append(self.service_accounts.review)
        legacy = LegacyTokens(self.registry, self.service_accounts.public_key, API_AUDIENCES)
        self.authenticator.extra_token_authenticators.append(legacy.authenticate)
        self.authenticator.review_authenticators.append(legacy.review)
        bootstrap = BootstrapTokens(self.registry)
        self.authenticator.extra_token_authenticators.append(bootstrap.authenticate)
        self.authenticator.review_authenticators.append(bootstrap.review)

        # kybernetes.httpserver, not aiohttp's server: aiohttp's request and response machinery
        # cost more per GET than everything the API server itself does for it.
        self.http = HTTPServer(self._handle, max_body=MAX_REQUEST_BYTES)
        # Port 0 would pick one free port per address: then the bind address alone is served.
        hosts = list(dict.fromkeys([cfg.bind_address, *(cfg.extra_bind_addresses if cfg.port else ())]))
        self.port = await self.http.start(hosts if len(hosts) > 1 else hosts[0], cfg.port,
                                          ssl_context=self._ssl_context())
        self._write_kubeconfig()
        host = self.url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
        self.endpoints = EndpointReconciler(self.registry, self.catalogue, address=host, port=self.port,
                                            lease_duration=cfg.identity_lease_duration,
                                            renew_interval=cfg.identity_lease_renew_interval)
        await self.endpoints.start()
        if self.monitoring is not None:
            self.monitoring.start(self.store)
        self.ready.set()
        if cfg.on_ready is not None:
            res = cfg.on_ready(self)
            if asyncio.iscoroutine(res):
                await res

    def _node_authorizer(self) -> NodeAuthorizer:
        assert self.registry is not None
        return NodeAuthorizer(self.registry, self.catalogue)

    def _install_rest(self) -> None:
        """The REST objects that need this server's parts: serviceaccounts' token (the token
        issuer), pods' connect subresources (the streaming proxy to kubelets), the computed
        componentstatuses, the authentication reviews (on the authenticator) and the access reviews
        (on the authorizer)."""
        from kybernetes.apiserver.auth.reviews import SelfSubjectReviewREST, TokenReviewREST
        from kybernetes.apiserver.registry.core import TokenREST
        from kybernetes.apiserver.registry.rest import ConnectREST
        from kybernetes.apiserver.transport.lazyproxy import LazyStreamingProxy

        assert self.registry is not None and self.pki is not None and self.service_accounts is not None

        def rest(plural: str) -> ResourceREST:
            r = self.catalogue.get("", "v1", plural)
            assert r is not None and self.registry is not None
            return self.registry.rest_for(r)

        rest("serviceaccounts").subresources["token"] = TokenREST(self.service_accounts.token_request)
        rest("componentstatuses").computed = ComponentStatuses(self.registry)
        assert self.authenticator is not None
        authn = self.catalogue.get("authentication.k8s.io", "v1", "tokenreviews")
        self_review = self.catalogue.get("authentication.k8s.io", "v1", "selfsubjectreviews")
        assert authn is not None and self_review is not None
        self.registry.rest_for(authn).create = TokenReviewREST(self.authenticator.review_token, API_AUDIENCES)
        self.registry.rest_for(self_review).create = SelfSubjectReviewREST()
        self._install_access_reviews()
        kc_crt, kc_key = self.pki.ensure("kubelet-client", common_name="kube-apiserver-kubelet-client",
                                         organizations=("system:masters",), client=True)
        streaming = LazyStreamingProxy(self.registry, self.catalogue, ca=self.pki.ca_path,
                                       client_cert=kc_crt, client_key=kc_key)
        pods = rest("pods")
        for sub in ("log", "exec", "attach", "portforward"):
            pods.subresources[sub] = ConnectREST(sub, streaming)

    def _install_access_reviews(self) -> None:
        """authorization.k8s.io's reviews, answered by this server's authorizer chain (made at start)."""
        from kybernetes.apiserver.authz import reviews

        assert self.registry is not None
        for plural, rest_class in (("subjectaccessreviews", reviews.SubjectAccessReviewREST),
                                   ("localsubjectaccessreviews", reviews.LocalSubjectAccessReviewREST),
                                   ("selfsubjectaccessreviews", reviews.SelfSubjectAccessReviewREST),
                                   ("selfsubjectrulesreviews", reviews.SelfSubjectRulesReviewREST)):
            r = self.catalogue.get(reviews.GROUP, "v1", plural)
            assert r is not None
            self.registry.rest_for(r).create = rest_class(lambda: self.authorizer)

    async def stop(self) -> None:
        if self.handlers is not None:
            self.handlers.shutting_down.set()
        if self.endpoints is not None:
            await self.endpoints.stop()
        if self.flowcontrol is not None:
            await self.flowcontrol.stop()
        if self.monitoring is not None:
            await self.monitoring.stop()
        if self.aggregator is not None:
            await self.aggregator.stop()
        if self.authorizer is not None:
            await self.authorizer.stop()
        await self.allocator.stop()
        if self.registry is not None:
            await self.registry.admission.stop()
            await self.registry.stop()
        if self.http is not None:
            await self.http.stop(timeout=2.0)
        if self.audit is not None:
            self.audit.stop()  # after the last request: every event recorded is written
        if self.crds is not None:
            await self.crds.stop()
        if self.store is not None:
            await self.store.close()

    def _install_request_header_auth(self) -> None:
        """kube-apiserver's ``--requestheader-*`` authentication, with the front-proxy trust the
        aggregation layer publishes (its own front-proxy CA without the flags, as kubeadm sets it)."""
        assert self.authenticator is not None and self.pki is not None and self._front_proxy_trust is not None
        fp, trust = self.config.front_proxy, self._front_proxy_trust
        self.authenticator.request_header = RequestHeaderAuthenticator(RequestHeaderConfig(
            trust.ca_pem, trust.allowed_names, fp.username_headers, fp.group_headers, fp.extra_headers_prefix))
        self.authenticator.client_ca = Issuers(self.pki.ca_pem)

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        # In-cluster clients dial the kubernetes Service's address and verify it; others the
        # advertised and served addresses.
        cfg = self.config
        sans = (*cfg.extra_sans, self.allocator.kubernetes_ip, *cfg.extra_bind_addresses,
                *([cfg.advertise_address] if cfg.advertise_address else []))
        crt, key = self.pki.serving(sans)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        ctx.load_verify_locations(cafile=str(self.pki.ca_path))
        if self._front_proxy_trust is not None:  # front proxies' certificates pass the handshake too
            ctx.load_verify_locations(cadata=self._front_proxy_trust.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _write_kubeconfig(self) -> None:
        assert self.pki is not None
        crt, key = self.pki.admin()
        cfg = kubeconfig(self.local_url, self.pki.ca_pem, crt.read_bytes(), key.read_bytes())
        write_kubeconfig(self.config.kubeconfig_path or self.config.data_dir / "kubeconfig.yaml", cfg)

    async def _bootstrap(self) -> None:
        """What every cluster starts with: system namespaces, the system PriorityClasses, the
        bootstrap RBAC policy (reconciled: kube-apiserver's ``rbac/bootstrap-roles`` hook) and the
        kubernetes Service."""
        assert self.registry is not None
        ctx = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")
        ns = self.catalogue.get("", "v1", "namespaces")
        assert ns is not None
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            with contextlib.suppress(errors.AlreadyExists):
                await self.registry.create(ns, "", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}}, ctx)
        await priority.bootstrap(self.registry, ctx)
        await ensure_rbac_policy(self.registry, ctx)
        svc = self.catalogue.get("", "v1", "services")
        assert svc is not None
        try:
            await self.registry.get(svc, "default", "kubernetes")
            return
        except errors.NotFound:
            pass
        with contextlib.suppress(errors.AlreadyExists):
            await self.registry.create(svc, "default", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": self.allocator.kubernetes_ip, "sessionAffinity": "None",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }, ctx)

    # --- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> AnyResponse:
        """Every request: dispatch, and turn any error into a Kubernetes ``Status``."""
        audit_id = self.audit.audit_id(request) if self.audit is not None else ""
        try:
            return await self._dispatch(request, audit_id)
        except errors.StatusError as e:
            return self._status_response(request, e)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except UnavailableError as e:  # outside a resource handler (authentication, admission...)
            log.warning("datastore unavailable serving %s %s: %s", request.method, request.path, e)
            return self._status_response(request, errors.ServiceUnavailable.store_unreachable())
        except Exception as e:
            log.exception("internal error serving %s %s", request.method, request.path)
            # NewInternalError: the error itself is the one cause.
            cause = f"{type(e).__name__}: {e}"
            err = errors.InternalError(f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]})
            return json_response(err.status(), 500, pretty=pretty_requested(request))

    @staticmethod
    def _status_response(request: Request, e: errors.StatusError) -> Response:
        # ErrorNegotiated: a Status that says when to retry says it in Retry-After too.
        retry = (e.details or {}).get("retryAfterSeconds")
        headers = {"Retry-After": str(retry)} if retry else None
        return json_response(e.status(), e.code, pretty=pretty_requested(request), headers=headers)

    async def _dispatch(self, request: Request, audit_id: str) -> AnyResponse:
        path = request.path
        if JoinService.handles(path):
            # Node join (kybernetes.apiserver.join): /cacerts is public, the credentials endpoint
            # authenticates the join token itself, so both come before normal authentication.
            assert self.join is not None
            return await self.join.handle(request)
        assert self.authenticator is not None and self.handlers is not None
        peercert = request.peercert
        m = self.monitoring.requests if self.monitoring is not None else None
        if m is not None:
            return await self._measured(m, request, path, audit_id, peercert)
        user = self.authenticator.authenticate(peercert, request.headers.get("Authorization"),
                                               anonymous=self.anonymous, headers=request.headers,
                                               der=request.peercert_der if peercert else None)
        rp = parse_resource_path(path)
        info = request_info(request.method, path, rp, request.query if request.query_string else None)
        if self.audit is not None:
            return await self.audit.serve(request, info, user, audit_id,
                                          lambda ev: self._gate(request, path, rp, info, user, ev))
        return await self._gate(request, path, rp, info, user, None)

    async def _measured(self, m: APIServerMetrics, request: Request, path: str, audit_id: str,
                        peercert: Any) -> AnyResponse:
        """``_dispatch``'s steps with the request metrics on (metrics.py counts each)."""
        assert self.authenticator is not None
        try:
            user = self.authenticator.authenticate(peercert, request.headers.get("Authorization"),
                                                   anonymous=self.anonymous, headers=request.headers,
                                                   der=request.peercert_der if peercert else None)
        except errors.Unauthorized:
            m.unauthenticated()
            raise
        m.authenticated(user)
        rp = parse_resource_path(path)
        info = request_info(request.method, path, rp, request.query if request.query_string else None)
        flight = m.begin(request, rp, info)
        try:
            if self.audit is not None:
                response = await self.audit.serve(request, info, user, audit_id,
                                                  lambda ev: self._gate(request, path, rp, info, user, ev))
            else:
                response = await self._gate(request, path, rp, info, user, None)
        except BaseException as e:
            if flight is not None:
                m.failed(flight, e)
            raise
        if flight is not None:
            m.done(flight, response)
        return response

    async def _gate(self, request: Request, path: str, rp: ResourcePath | None, info: RequestInfo, user: User,
                    ev: AuditEvent | None) -> AnyResponse:
        """Impersonation, API Priority and Fairness, then ``_serve``, in kube-apiserver's order of
        filters: after audit (whose policy is evaluated for the authenticated user; ``ev``, the
        event when the request is audited, records the user acted as), so the request is
        classified, authorized and served as the impersonated user, the authenticated one kept on
        the RequestContext (``impersonator``)."""
        impersonator = None
        acting = impersonate(request.headers, user, self.authorizer)
        if acting is not None:
            impersonator, user = user, acting
            if ev is not None:
                ev.set_impersonated_user(acting)
        if self.flowcontrol is not None:
            return await self.flowcontrol.serve(request, info, user,
                                                lambda: self._serve(request, path, rp, info, user, impersonator, ev))
        return await self._serve(request, path, rp, info, user, impersonator, ev)

    async def _serve(self, request: Request, path: str, rp: ResourcePath | None, info: RequestInfo,
                     user: User, impersonator: User | None = None, ev: AuditEvent | None = None) -> AnyResponse:
        """Authorize, then route. ``ev``: the request's audit event, when it is audited."""
        assert self.handlers is not None
        decision, reason = Decision.ALLOW, ""
        if self.monitoring is not None:
            decision, reason = self.monitoring.requests.decide(self.authorizer, user, info)
        elif self.authorizer is not None:
            decision, reason = self.authorizer.decide(user, info)
        if ev is not None:
            ev.annotate("authorization.k8s.io/decision", "allow" if decision is Decision.ALLOW else "forbid")
            ev.annotate("authorization.k8s.io/reason", reason)
            if self.audit is not None and audit_long_running(info):
                self.audit.on_response_start(request, ev)  # after APF set its own callback
        if decision is not Decision.ALLOW:
            raise forbidden(Attributes.of(user, info), reason)
        if rp is not None:
            remote = self.aggregator.remote(rp.group, rp.version) if self.aggregator is not None else None
            if remote is not None:  # an aggregated API: served by its own server, as this user
                return await self.aggregator.proxy(request, remote, user)  # type: ignore[union-attr]
            ctx = RequestContext(user=user, impersonator=impersonator,
                                 audit_annotations=ev.annotations if ev is not None else None)
            return await self.handlers.handle(request, rp, ctx)
        return await self._non_resource(request, path, user)

    async def _non_resource(self, request: Request, path: str, user: User) -> AnyResponse:
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            if not self.ready.is_set() or self.store is None:
                return Response(text="not ready", status=503, content_type="text/plain")
            endpoint, _, sub = path.strip("/").partition("/")
            return await health.serve(endpoint, sub, health.checks_for(self.store), request.query)
        if path.rstrip("/") == "/version":
            # responsewriters.WriteRawJSON: always indented, no newline at the end.
            return json_response(KUBERNETES_VERSION, pretty=True)
        if path == monitoring.METRICS_PATH:
            return monitoring.serve(request)
        if request.method != "GET":
            raise errors.MethodNotAllowed(f"the server does not allow this method on {path}")
        p = path.rstrip("/") or "/"
        accept_header = request.headers.get("Accept", "")
        if p in ("/api", "/apis"):
            accept = parse_accept(accept_header)
            if accept.aggregated_discovery:
                body, etag = self.discovery.get(f"agg:{p}", lambda: discovery.aggregated(self.catalogue, core=True)
                                                if p == "/api" else self.aggregator.aggregated())  # type: ignore[union-attr]
                return self._cached(request, body, etag, discovery.AGGREGATED_V2)
            if p == "/api":
                return json_response(discovery.api_versions(f"{self.config.bind_address}:{self.port}"))
            body, etag = self.discovery.get("apis", self.aggregator.api_group_list)  # type: ignore[union-attr]
            return self._cached(request, body, etag, JSON)
        parts = [x for x in p.split("/") if x]
        if parts[:2] == ["api", "v1"] and len(parts) == 2:
            body, etag = self.discovery.get("api/v1", lambda: discovery.resource_list(self.catalogue, "", "v1"))
            return self._cached(request, body, etag, JSON)
        if parts and parts[0] == "apis" and len(parts) == 2:
            doc = self.aggregator.api_group(parts[1]) or discovery.api_group(self.catalogue, parts[1])  # type: ignore[union-attr]
            if doc is None:
                raise errors.NotFound.no_resource()
            return json_response(doc)
        if parts and parts[0] == "apis" and len(parts) == 3:
            remote = self.aggregator.remote(parts[1], parts[2])  # type: ignore[union-attr]
            if remote is not None:
                return await self.aggregator.proxy(request, remote, user)  # type: ignore[union-attr]
            if parts[2] not in self.catalogue.groups().get(parts[1], []):
                raise errors.NotFound.no_resource()
            key = f"apis/{parts[1]}/{parts[2]}"
            body, etag = self.discovery.get(key, lambda: discovery.resource_list(self.catalogue, parts[1], parts[2]))
            return self._cached(request, body, etag, JSON)
        if parts and parts[0] == "openapi":
            return self._openapi(request, parts)
        if p in (OIDC_CONFIGURATION_PATH, JWKS_PATH):
            assert self.service_accounts is not None
            return self.service_accounts.issuer_discovery(p, self.url)
        if p == "/":
            paths = ["/.well-known/openid-configuration", "/api", "/api/v1", "/apis", "/healthz", "/livez", "/metrics",
                     "/openapi/v2",
                     "/openapi/v3", "/openid/v1/jwks", "/readyz", "/version"]
            paths += [f"/apis/{g}{suffix}" for g, versions in self.catalogue.groups().items() if g
                      for suffix in ("", *(f"/{v}" for v in versions))]
            if self.aggregator is not None:
                paths += self.aggregator.root_paths()
            return json_response({"paths": sorted(set(paths))}, pretty=True)  # WriteRawJSON: indented
        raise errors.NotFound.no_resource()

    def _openapi(self, request: Request, parts: list[str]) -> AnyResponse:
        assert self.openapi is not None
        if parts == ["openapi", "v2"]:
            accept = request.headers.get("Accept", "")
            doc = self.aggregator.openapi.merged_v2(self.openapi.v2())  # type: ignore[union-attr]
            if openapi_pb.wants_protobuf(accept):  # kubectl's client-side validation models
                pb = openapi_pb.protobuf_document(doc)
                return self._cached(request, pb.body, pb.hash, openapi_pb.PROTOBUF_V2_MEDIA_TYPE)
            if "protobuf" in accept and "json" not in accept:
                raise errors.NotAcceptable("only application/json is served for /openapi/v2")
            return self._cached(request, doc.body, doc.hash, JSON)
        if parts == ["openapi", "v3"]:
            doc = self.aggregator.openapi.index(self.openapi.index())  # type: ignore[union-attr]
            return self._cached(request, doc.body, doc.hash, JSON)
        if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
            key = "/".join(parts[2:])
            found = self.openapi.document(key) or self.aggregator.openapi.document(key)  # type: ignore[union-attr]
            if found is None:
                raise errors.NotFound.no_resource()
            headers = {"Cache-Control": "public, immutable"} if request.query.get("hash") else None
            return self._cached(request, found.body, found.hash, JSON, headers)
        raise errors.NotFound.no_resource()

    @staticmethod
    def _cached(request: Request, body: bytes, etag: str, content_type: str,
                headers: dict[str, str] | None = None) -> Response:
        quoted = f'"{etag}"'
        h = {"ETag": quoted, "Vary": "Accept", "Content-Type": content_type}
        h.update(headers or {})
        if request.headers.get("If-None-Match") == quoted:
            return Response(status=304, headers=h)
        return Response(body=body, headers=h)
