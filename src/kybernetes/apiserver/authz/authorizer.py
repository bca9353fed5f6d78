"""The authorization contract: attributes in, a decision out; and the chain kube-apiserver builds.

An :class:`Authorizer` answers one question, ``authorize(attrs) -> (decision, reason)``, for the
:class:`Attributes` of a request (who, which verb, on what):

- ``ALLOW``: the request may go on; the chain stops.
- ``DENY``: refused outright; the chain stops (no later authorizer may allow it).
- ``NO_OPINION``: this authorizer neither allows nor denies; the next one is asked. A chain
  where every authorizer has no opinion refuses the request.

``reason`` is a human explanation, shown to a refused client after the standard sentence (the
Node authorizer's ``no relationship found between node 'n1' and this object``, RBAC's
``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``).

The guarantees every implementation keeps, because the server calls ``authorize`` on every
request: it is synchronous and answers from memory (watch-fed caches, never a store read), it
never raises for any attributes, and a change to its inputs (a role deleted, a pod bound) is
seen by the next request once the change has been observed from the store's watch.

An authorizer that keeps watch-fed caches has ``async start()`` (returns once its caches are
filled) and ``async stop()``; the server calls them. An authorizer that can list what a user may
do also implements :class:`RuleResolver`
(``SelfSubjectRulesReview`` and ``kubectl auth can-i --list`` use it). An authorizer whose
decisions the chain may remember implements :class:`Stable`.

:func:`new_chain` builds kube-apiserver's ``--authorization-mode`` chain: first the privileged
groups (``system:masters`` may do everything, whatever the modes), then each mode in the order
given. :meth:`Chain.decide` is the server's per-request step: for a user every authorizer calls
stable, it remembers the chain's decisions per request shape until one of them reports a change.
:func:`forbidden` is the 403 a refused request gets, in Kubernetes' words.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kybernetes import errors
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

PRIVILEGED_GROUP = "system:masters"
MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC", "Webhook")
"""kube-apiserver's authorization modes (Webhook is named but not built here)."""
DEFAULT_MODES = ("Node", "RBAC")


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


_ALLOWED = (Decision.ALLOW, "")
_NO_OPINION = (Decision.NO_OPINION, "")

@dataclass(slots=True)
class Attributes:
    """Kubernetes' ``authorizer.AttributesRecord``: a user, a verb, and what it acts on."""

    user: User
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    field_selector: str = ""
    """A list's or watch's raw ``fieldSelector`` (``GetFieldSelector``), parsed by who needs it."""

    @classmethod
    def of(cls, user: User, info: RequestInfo) -> Attributes:
        return cls(user, info.verb, info.is_resource_request, info.api_group, info.api_version, info.namespace,
                   info.resource, info.subresource, info.name, info.path, info.field_selector)


@dataclass
class RulesInfo:
    """What a :class:`RuleResolver` knows a user may do in a namespace (SelfSubjectRulesReview's status)."""

    resource_rules: list[dict[str, Any]] = field(default_factory=list)
    """PolicyRule-shaped dicts: verbs, apiGroups, resources, resourceNames."""
    non_resource_rules: list[dict[str, Any]] = field(default_factory=list)
    """verbs and nonResourceURLs."""
    incomplete: bool = False
    evaluation_error: str = ""


@runtime_checkable
class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]: ...


@runtime_checkable
class RuleResolver(Protocol):
    def rules_for(self, user: User, namespace: str) -> RulesInfo: ...


@runtime_checkable
class Stable(Protocol):
    """An authorizer whose decisions for some users a :class:`Chain` may remember.

    ``stable_for(user)`` is True when every decision for the user depends only on its name and
    groups and on the request's kind (resource or not), verb, path, namespace, API group,
    resource, subresource and name (not on its uid, extra, API version or field selector), and
    stays the same until the authorizer calls the callbacks given to ``on_change`` (at once, in
    the change that makes one differ). Its answer for a name and groups never changes.
    ``on_change`` may hold a bound method weakly (as long as its object lives)."""

    def stable_for(self, user: User) -> bool: ...

    def on_change(self, callback: Callable[[], None]) -> None: ...


class ChangeListeners:
    """Callbacks of :meth:`Stable.on_change`, held weakly when they are bound methods (a chain
    built for one review must not live as long as the authorizer)."""

    __slots__ = ("_refs",)

    def __init__(self) -> None:
        self._refs: list[Callable[[], Callable[[], None] | None]] = []

    def add(self, callback: Callable[[], None]) -> None:
        self._refs = [r for r in self._refs if r() is not None]
        ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        self._refs.append(ref)  # type: ignore[arg-type]

    def notify(self) -> None:
        for ref in self._refs:
            callback = ref()
            if callback is not None:
                callback()


def _always_stable(user: User) -> bool:
    return True


class AlwaysAllow:
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.ALLOW, ""

    stable_for = staticmethod(_always_stable)

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # never changes

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        return RulesInfo([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                         [{"verbs": ["*"], "nonResourceURLs": ["*"]}])


class AlwaysDeny:
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.NO_OPINION, "Everything is forbidden."

    stable_for = staticmethod(_always_stable)

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # never changes

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        return RulesInfo()


class PrivilegedGroups:
    """Members of a privileged group may do everything (``authorizerfactory.NewPrivilegedGroups``)."""

    def __init__(self, groups: Sequence[str] = (PRIVILEGED_GROUP,)) -> None:
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        groups = self.groups
        for g in attrs.user.groups:  # a user has a few groups: no set built per request
            if g in groups:
                return _ALLOWED
        return _NO_OPINION

    stable_for = staticmethod(_always_stable)  # the user's groups decide

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # never changes

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        if self.groups.intersection(user.groups):
            return AlwaysAllow().rules_for(user, namespace)
        return RulesInfo()


MAX_REMEMBERED = 8192
"""Decisions (and users) a chain remembers; beyond this it starts over."""


class Chain:
    """The union of authorizers, asked in order (Kubernetes' ``union.New``)."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)
        self._remembered: dict[tuple[Any, ...], tuple[Decision, str]] = {}
        """(user name, groups, request shape...) -> decision, for stable users."""
        self._users: dict[tuple[str, tuple[str, ...]], bool] = {}
        """(user name, groups) -> whether every authorizer is stable for the user."""
        stable = [a for a in self.authorizers if isinstance(a, Stable)]  # (a Protocol check is slow: once)
        self._stable_for = tuple(a.stable_for for a in stable) if len(stable) == len(self.authorizers) else None
        for a in stable:
            a.on_change(self.forget)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        reasons: list[str] | None = None
        for a in self.authorizers:
            decision, reason = a.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons = [*(reasons or ()), reason]
        return Decision.NO_OPINION, "\n".join(reasons or ())

    def decide(self, user: User, info: RequestInfo) -> tuple[Decision, str]:
        """``authorize(Attributes.of(user, info))``, remembered per user and request shape when
        every authorizer is :class:`Stable` for the user, until one of them reports a change: a
        repeated request costs one dict lookup and builds no Attributes."""
        key = (user.name, user.groups, info.is_resource_request, info.verb, info.path, info.namespace,
               info.api_group, info.resource, info.subresource, info.name)
        found = self._remembered.get(key)
        if found is None:
            found = self.authorize(Attributes.of(user, info))
            if self._stable(user):
                if len(self._remembered) >= MAX_REMEMBERED:
                    self._remembered.clear()
                self._remembered[key] = found
        return found

    def _stable(self, user: User) -> bool:
        who = (user.name, user.groups)
        stable = self._users.get(who)
        if stable is None:
            if len(self._users) >= MAX_REMEMBERED:
                self._users.clear()
            stable = self._users[who] = (self._stable_for is not None
                                         and all(stable_for(user) for stable_for in self._stable_for))
        return stable

    def forget(self) -> None:
        """Drop every remembered decision (an authorizer's inputs changed)."""
        self._remembered.clear()

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        out = RulesInfo()
        errs: list[str] = []
        for a in self.authorizers:
            if not isinstance(a, RuleResolver):
                out.incomplete = True  # this authorizer may allow more than can be listed
                continue
            info = a.rules_for(user, namespace)
            out.resource_rules += info.resource_rules
            out.non_resource_rules += info.non_resource_rules
            out.incomplete |= info.incomplete
            if info.evaluation_error:
                errs.append(info.evaluation_error)
        out.evaluation_error = ", ".join(errs)
        return out

    def allowed(self, attrs: Attributes) -> bool:
        return self.authorize(attrs)[0] is Decision.ALLOW

    async def start(self) -> None:
        """Start the authorizers that keep caches (``async start()``): they have their data
        before the server answers its first request."""
        for a in self.authorizers:
            start = getattr(a, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        for a in self.authorizers:
            stop = getattr(a, "stop", None)
            if stop is not None:
                await stop()


AuthorizerFactory = Callable[[], Authorizer]


def validate_modes(modes: Sequence[str]) -> list[str]:
    """kube-apiserver's flag errors for ``--authorization-mode`` (empty when the list is good)."""
    problems: list[str] = []
    if not modes:
        problems.append("at least one authorization-mode must be passed")
    for mode in modes:
        if mode not in MODES:
            problems.append(f"authorization-mode {mode!r} is not a valid mode")
    seen: set[str] = set()
    for mode in modes:
        if mode in seen:
            problems.append(f"authorization-mode {mode!r} has mode specified more than once")
        seen.add(mode)
    return problems


def new_chain(modes: Sequence[str], factories: dict[str, AuthorizerFactory]) -> Chain:
    """The chain for ``--authorization-mode``: privileged groups first, then each mode in order.
    ``factories`` makes the modes that need the server's parts (RBAC, Node); a mode with no
    factory is an error (ValueError, as a bad flag)."""
    authorizers: list[Authorizer] = [PrivilegedGroups()]
    for mode in modes:
        if mode == "AlwaysAllow":
            authorizers.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            authorizers.append(AlwaysDeny())
        elif mode in factories:
            authorizers.append(factories[mode]())
        else:
            raise ValueError(f"authorization-mode {mode!r} is not supported by this server")
    return Chain(authorizers)


def forbidden_message(attrs: Attributes) -> str:
    """``responsewriters.forbiddenMessage``: who cannot do what, where."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if attrs.namespace:
        return (f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" '
                f'in the namespace "{attrs.namespace}"')
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" at the cluster scope'


class Refused(errors.Forbidden):
    """A 403 from a filter (authorization, impersonation), before any handler ran: the API
    server's request metrics leave it out, as Kubernetes' filters answer it unmeasured."""


def forbidden(attrs: Attributes, reason: str = "") -> errors.Forbidden:
    """The 403 of a refused request (``responsewriters.Forbidden`` + ``errors.NewForbidden``)::

        pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default"
        pods "web" is forbidden: User "jane" cannot get resource "pods" ...: <reason>
        forbidden: User "jane" cannot get path "/metrics"
    """
    message = forbidden_message(attrs)
    if reason:
        message = f"{message}: {reason}"
    if not attrs.resource_request:
        return Refused(f"forbidden: {message}", details={})
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    details: dict[str, Any] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    details["kind"] = attrs.resource
    if attrs.name:
        return Refused(f'{qualified} "{attrs.name}" is forbidden: {message}', details=details)
    return Refused(f"{qualified} is forbidden: {message}", details=details)
