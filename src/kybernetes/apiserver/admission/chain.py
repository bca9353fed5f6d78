"""The admission chain: named plugins, run in a fixed order, in two phases.

kube-apiserver's ``k8s.io/apiserver/pkg/admission`` in Python. A write passes admission twice:

* **mutating** (:meth:`Chain.admit`), after the strategy's defaulting and before its validation:
  plugins may change ``attrs.object`` in place (ServiceAccount mounts the token, Priority sets
  ``spec.priority``...);
* **validating** (:meth:`Chain.validate`), after the strategy's validation and before the write:
  plugins may only refuse (raise a :class:`~kybernetes.errors.StatusError`, usually
  :func:`forbidden`); a plugin with side effects (ResourceQuota charges its quotas) belongs here,
  so that it only ever acts on an object that passed validation.

The contract for callers (today the generic store, :mod:`kybernetes.apiserver.registry.store`;
tomorrow each resource's REST object): build one :class:`Attributes` per request, call
``await chain.admit(attrs)`` once the object is defaulted, validate, then call
``await chain.validate(attrs)`` with the same record, then write. Both run on dry-run requests
too (``attrs.dry_run``): a plugin must then decide as usual but change nothing outside the
object. CREATE carries ``object``; UPDATE carries ``object`` and ``old_object``; DELETE carries
``old_object`` (the object being deleted) and no ``object``; a subresource write names it in
``subresource``. An empty :class:`Chain` admits everything.

A plugin is any object with ``handles(operation) -> bool`` and an ``async admit(attrs)``
(:class:`MutationInterface`), an ``async validate(attrs)`` (:class:`ValidationInterface`), or
both, and ``async start()``/``stop()`` if it keeps state from the cluster (:meth:`Chain.start`).
It may narrow itself to some resources with ``resources`` (a set of ``(group, plural)``;
``None`` for all), which lets the chain skip it without a call. Which plugins exist, their order
and which are on by default live in :mod:`.plugins`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kybernetes import errors
from kybernetes.api.obj import Obj

if TYPE_CHECKING:
    from kybernetes.apiserver.admission.metrics import AdmissionMetrics
    from kybernetes.apiserver.authz.authorizer import Chain as AuthorizerChain
    from kybernetes.apiserver.registry.request import User
    from kybernetes.apiserver.registry.store import Registry


CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"
OPERATIONS = frozenset({CREATE, UPDATE, DELETE, CONNECT})


@dataclass
class Attributes:
    """What a plugin knows about one request (Kubernetes' ``admission.Attributes``)."""

    operation: str
    """CREATE, UPDATE, DELETE or CONNECT."""
    group: str
    version: str
    resource: str
    """The plural (``pods``), as in Kubernetes' GroupVersionResource."""
    kind: str
    namespace: str
    name: str
    """Empty on a create that asks for a generated name (the object then has only ``generateName``)."""
    object: Obj | None
    old_object: Obj | None
    user: User
    subresource: str = ""
    dry_run: bool = False
    options: Any = None
    """The operation's options (DeleteOptions on DELETE), if the caller has any."""
    warnings: list[str] = field(default_factory=list)
    """The request's warnings (the caller passes its own list): a plugin appends, the client gets
    each as a ``Warning`` header (``warning.AddWarning``)."""
    audit_annotations: dict[str, str] | None = None
    """The request's audit annotations when it is audited (``RequestContext.audit_annotations``)."""

    field_manager: str = ""
    """The request's ``fieldManager`` parameter, if given (part of Create/UpdateOptions)."""
    reinvocation: dict[str, Any] = field(default_factory=dict)
    """Plugins' own state across the rounds of the mutating phase (``ReinvocationContext`` values)."""
    should_reinvoke: bool = False
    """Set by a plugin (a mutating webhook's patch changed the object): the chain runs the
    mutating phase a second time."""
    is_reinvoke: bool = False
    """True during that second round."""

    def add_annotation(self, key: str, value: str) -> None:
        """``Attributes.AddAnnotation``: a plugin's note for the audit event (``pod-security.kubernetes.io/
        audit-violations``); kept only when the request is audited, and the first value of a key stays."""
        if self.audit_annotations is not None:
            self.audit_annotations.setdefault(key, value)

    @property
    def group_resource(self) -> str:
        """``deployments.apps``, or ``pods`` for the core group (``GroupResource.String()``)."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


@runtime_checkable
class MutationInterface(Protocol):
    """A plugin that may change the object (runs in the mutating phase)."""

    def handles(self, operation: str) -> bool: ...

    async def admit(self, attrs: Attributes) -> None: ...


@runtime_checkable
class ValidationInterface(Protocol):
    """A plugin that may only refuse (runs in the validating phase)."""

    def handles(self, operation: str) -> bool: ...

    async def validate(self, attrs: Attributes) -> None: ...


class Handler:
    """A base for plugins: handles the operations it names (``admission.NewHandler``) and, if
    ``resources`` is set, only those ``(group, plural)`` resources."""

    operations: frozenset[str] = OPERATIONS
    resources: frozenset[tuple[str, str]] | None = None

    def handles(self, operation: str) -> bool:
        return operation in self.operations


@dataclass
class PluginInit:
    """What a plugin may ask for when it is built (Kubernetes' plugin initializers)."""

    registry: Registry
    authorizer: Callable[[], AuthorizerChain | None] = lambda: None
    """The server's authorizer chain as it is when called (made after the plugins; None: every
    request allowed, AlwaysAllow), for CEL's ``authorizer`` variable."""


def forbidden(attrs: Attributes, message: str) -> errors.Forbidden:
    """A plugin's refusal (``admission.NewForbidden``): 403, ``<resource> "<name>" is forbidden:
    <message>``; the name is the request's, else the object's ``generateName``."""
    name = attrs.name
    if not name:
        obj = attrs.object if attrs.object is not None else attrs.old_object
        meta = (obj or {}).get("metadata")
        if isinstance(meta, dict):
            name = str(meta.get("generateName") or meta.get("name") or "")
    what = attrs.group_resource
    text = f'{what} "{name}" is forbidden: {message}' if name else f"{what} is forbidden: {message}"
    details: dict[str, Any] = {"kind": attrs.resource}
    if name:
        details["name"] = name
    if attrs.group:
        details["group"] = attrs.group
    return errors.Forbidden(text, details=details)


def _covers(plugin: Any, group_resource: tuple[str, str]) -> bool:
    resources = getattr(plugin, "resources", None)
    return resources is None or group_resource in resources


class Chain:
    """The enabled plugins, in order; each phase runs the ones that implement it."""

    def __init__(self, plugins: Iterable[tuple[str, Any]] = ()) -> None:
        self.plugins: list[tuple[str, Any]] = list(plugins)
        self._mutating = [p for _n, p in self.plugins if isinstance(p, MutationInterface)]
        self._validating = [p for _n, p in self.plugins if isinstance(p, ValidationInterface)]
        self._for: dict[tuple[bool, str, str, str], list[tuple[str, Any]]] = {}
        self._names = {id(p): n for n, p in self.plugins}
        self.metrics: AdmissionMetrics | None = None
        """Set by the API server when its metrics are on: every step and plugin call is timed."""

    def instrument(self, metrics: AdmissionMetrics) -> None:
        """Time every step and plugin call with ``metrics``, and hand it to plugins that record
        their own (``instrument(metrics)``: the webhook plugins)."""
        self.metrics = metrics
        for _n, plugin in self.plugins:
            instrument = getattr(plugin, "instrument", None)
            if instrument is not None:
                instrument(metrics)

    @property
    def names(self) -> list[str]:
        return [n for n, _p in self.plugins]

    async def start(self) -> None:
        """Start the plugins that keep state from the cluster (``start()``), before requests come."""
        for _n, plugin in self.plugins:
            start = getattr(plugin, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        for _n, plugin in self.plugins:
            stop = getattr(plugin, "stop", None)
            if stop is not None:
                await stop()

    def _selected(self, validating: bool, attrs: Attributes) -> list[tuple[str, Any]]:
        """The plugins (name, plugin) of a phase that handle requests like ``attrs``, in order."""
        key = (validating, attrs.operation, attrs.group, attrs.resource)
        found = self._for.get(key)
        if found is None:
            pool = self._validating if validating else self._mutating
            gr = (attrs.group, attrs.resource)
            found = [(self._names[id(p)], p) for p in pool if p.handles(attrs.operation) and _covers(p, gr)]
            self._for[key] = found
        return found

    async def admit(self, attrs: Attributes) -> None:
        """The mutating phase: each mutating plugin that handles the request, in order; once more
        if a plugin asked for it (``attrs.should_reinvoke``), as Kubernetes' reinvoker runs the
        whole chain a second time (plugins must be idempotent; webhooks decide in that round by
        their ``reinvocationPolicy``)."""
        selected = self._selected(False, attrs)
        await self._run(False, selected, attrs)
        if attrs.should_reinvoke and not attrs.is_reinvoke:
            attrs.is_reinvoke = True
            await self._run(False, selected, attrs)

    async def validate(self, attrs: Attributes) -> None:
        """The validating phase: each validating plugin that handles the request, in order."""
        await self._run(True, self._selected(True, attrs), attrs)

    async def _run(self, validating: bool, plugins: list[tuple[str, Any]], attrs: Attributes) -> None:
        if self.metrics is not None:  # the same calls, timed (admission/metrics.py)
            await self.metrics.run_step(validating, plugins, attrs)
        elif validating:
            for _, plugin in plugins:
                await plugin.validate(attrs)
        else:
            for _, plugin in plugins:
                await plugin.admit(attrs)
