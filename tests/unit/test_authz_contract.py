"""The authorization contract: RequestInfo, RBAC's rule matching, the mode chain and the 403 wording."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from kybernetes import errors
from kybernetes.apiserver.authz.authorizer import (
    AlwaysAllow,
    AlwaysDeny,
    Attributes,
    Chain,
    ChangeListeners,
    Decision,
    PrivilegedGroups,
    forbidden,
    new_chain,
    validate_modes,
)
from kybernetes.apiserver.authz.rules import rule_allows
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo, request_info
from kybernetes.apiserver.transport.requests import parse_resource_path

JANE = User("jane", ("system:authenticated",))


def info(method: str, path: str, query: str = ""):  # type: ignore[no-untyped-def]
    q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    return request_info(method, path, parse_resource_path(path), q)


@pytest.mark.parametrize(("method", "path", "query", "want"), [
    ("GET", "/api/v1/namespaces/default/pods", "", ("list", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", "watch=true", ("watch", "default", "pods", "", "")),
    ("GET", "/api/v1/watch/namespaces/default/pods/web", "", ("watch", "default", "pods", "web", "")),
    ("GET", "/api/v1/namespaces/default/pods", "fieldSelector=metadata.name=web&watch=1",
     ("watch", "default", "pods", "web", "")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", "", ("get", "default", "pods", "web", "log")),
    ("POST", "/api/v1/namespaces/default/pods/web/exec", "", ("create", "default", "pods", "web", "exec")),
    ("DELETE", "/api/v1/namespaces/default/pods", "", ("deletecollection", "default", "pods", "", "")),
    ("DELETE", "/apis/apps/v1/namespaces/x/deployments/d", "", ("delete", "x", "deployments", "d", "")),
    ("GET", "/api/v1/namespaces/kube-system", "", ("get", "kube-system", "namespaces", "kube-system", "")),
    ("PUT", "/api/v1/namespaces/t/finalize", "", ("update", "t", "namespaces", "t", "finalize")),
    ("PATCH", "/api/v1/nodes/n1/status", "", ("patch", "", "nodes", "n1", "status")),
])
def test_request_info_is_kubernetes_requestinfo(method: str, path: str, query: str, want: tuple[str, ...]) -> None:
    ri = info(method, path, query)
    assert ri.is_resource_request
    assert (ri.verb, ri.namespace, ri.resource, ri.name, ri.subresource) == want


def test_non_resource_requests_use_the_method_as_verb() -> None:
    for path in ("/healthz", "/apis", "/api/v1", "/apis/apps/v1", "/openapi/v2"):
        ri = info("GET", path)
        assert not ri.is_resource_request and ri.verb == "get" and ri.path == path
    assert info("POST", "/logs").verb == "post"


def attrs(verb: str, resource: str = "pods", sub: str = "", name: str = "", group: str = "",
          ns: str = "default", path: str = "") -> Attributes:
    if path:
        return Attributes(JANE, verb, False, path=path)
    return Attributes(JANE, verb, True, group, "v1", ns, resource, sub, name)


@pytest.mark.parametrize(("rule", "request_attrs", "allowed"), [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", name="a"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", sub="log", name="a"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, attrs("get", sub="log", name="a"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, attrs("get", sub="log", name="a"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, attrs("get", name="a"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, attrs("escalate", "roles", group="x"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, attrs("get", name="a"), False),
    ({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
     attrs("list"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
     attrs("get", name="a"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
     attrs("get", name="b"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/healthz/*"]}, attrs("get", path="/healthz/etcd"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, attrs("get", path="/healthzz"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, attrs("post", path="/x"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", path="/api"), False),
])
def test_rule_matching(rule: dict, request_attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(request_attrs, rule) is allowed


def test_chain_privileged_groups_first_then_modes_in_order() -> None:
    chain = new_chain(("AlwaysDeny",), {})
    admin = Attributes(User("admin", ("system:masters",)), "delete", True, "", "v1", "", "nodes", "", "n1")
    assert chain.authorize(admin) == (Decision.ALLOW, "")
    assert chain.authorize(attrs("get", name="a")) == (Decision.NO_OPINION, "Everything is forbidden.")
    assert new_chain(("AlwaysDeny", "AlwaysAllow"), {}).allowed(attrs("get", name="a"))
    assert isinstance(new_chain(("AlwaysAllow",), {}).authorizers[0], PrivilegedGroups)
    made: list[str] = []

    class Recorder:
        def authorize(self, a: Attributes) -> tuple[Decision, str]:
            made.append(a.verb)
            return Decision.DENY, "no"

    assert new_chain(("RBAC", "AlwaysAllow"), {"RBAC": Recorder}).authorize(attrs("get")) == (Decision.DENY, "no")
    with pytest.raises(ValueError, match="not supported"):
        new_chain(("Node",), {})
    rules = new_chain(("AlwaysDeny", "AlwaysAllow"), {}).rules_for(JANE, "default")
    assert rules.resource_rules == AlwaysAllow().rules_for(JANE, "").resource_rules
    assert AlwaysDeny().rules_for(JANE, "x").resource_rules == []


class Switch:
    """A Stable authorizer whose answer the test sets, reporting a change only when told."""

    def __init__(self, stable_users: tuple[str, ...] = ("jane",)) -> None:
        self.answer = (Decision.NO_OPINION, "")
        self.asked: list[tuple[str, str, str]] = []
        self.stable_users = stable_users
        self.listeners = ChangeListeners()

    def authorize(self, a: Attributes) -> tuple[Decision, str]:
        self.asked.append((a.user.name, a.verb, a.resource))
        return self.answer

    def stable_for(self, user: User) -> bool:
        return user.name in self.stable_users

    def on_change(self, callback: Callable[[], None]) -> None:
        self.listeners.add(callback)


GET_POD = RequestInfo(True, "/api/v1/namespaces/default/pods/web", "get", "", "v1", "default", "pods", "", "web")


def test_decide_remembers_stable_decisions_until_a_change_is_reported() -> None:
    switch = Switch()
    chain = Chain([PrivilegedGroups(), switch])
    assert chain.decide(JANE, GET_POD) == (Decision.NO_OPINION, "")
    switch.answer = (Decision.ALLOW, "yes")
    assert chain.decide(JANE, GET_POD) == (Decision.NO_OPINION, "")  # remembered: no change reported
    assert switch.asked == [("jane", "get", "pods")]
    switch.listeners.notify()
    assert chain.decide(JANE, GET_POD) == (Decision.ALLOW, "yes")
    # Another request shape, another user or other groups are decisions of their own.
    switch.answer = (Decision.NO_OPINION, "")
    delete = RequestInfo(True, GET_POD.path, "delete", "", "v1", "default", "pods", "", "web")
    assert chain.decide(JANE, delete) == (Decision.NO_OPINION, "")
    assert chain.decide(User("jane", ("system:authenticated", "ops")), GET_POD) == (Decision.NO_OPINION, "")
    # decide answers as authorize does, privileged groups first.
    admin = User("jane", ("system:masters",))
    assert chain.decide(admin, GET_POD) == chain.authorize(Attributes.of(admin, GET_POD)) == (Decision.ALLOW, "")


class _NotStable:
    def authorize(self, a: Attributes) -> tuple[Decision, str]:
        return Decision.NO_OPINION, ""


@pytest.mark.parametrize("case", ["an authorizer not stable for the user", "an authorizer not Stable"])
def test_decide_asks_every_time_unless_every_authorizer_is_stable_for_the_user(case: str) -> None:
    switch = Switch(stable_users=("jane",))
    if case == "an authorizer not stable for the user":
        chain, user = Chain([PrivilegedGroups(), switch]), User("bob")
    else:
        chain, user = Chain([_NotStable(), switch]), JANE
    assert chain.decide(user, GET_POD) == (Decision.NO_OPINION, "")
    switch.answer = (Decision.ALLOW, "")
    assert chain.decide(user, GET_POD) == (Decision.ALLOW, "")  # asked again, though no change was reported
    assert len(switch.asked) == 2


def test_change_listeners_hold_chains_weakly() -> None:
    switch = Switch()
    chain = Chain([switch])
    chain.decide(JANE, GET_POD)
    del chain
    gc.collect()
    switch.listeners.notify()  # the dropped chain is not called, nor kept
    Chain([switch])
    assert len(switch.listeners._refs) == 1


def test_mode_flag_errors_are_kube_apiservers() -> None:
    assert validate_modes(("Node", "RBAC")) == []
    assert validate_modes(("Foo",)) == ["authorization-mode 'Foo' is not a valid mode"]
    assert validate_modes(("RBAC", "RBAC")) == ["authorization-mode 'RBAC' has mode specified more than once"]


def test_forbidden_is_worded_as_kubernetes() -> None:
    e = forbidden(attrs("list"))
    assert isinstance(e, errors.Forbidden) and e.code == 403
    assert e.message == ('pods is forbidden: User "jane" cannot list resource "pods" in API group "" '
                         'in the namespace "default"')
    assert e.status()["details"] == {"kind": "pods"}
    e = forbidden(attrs("get", "deployments", sub="scale", name="web", group="apps"), "RBAC: x")
    assert e.message == ('deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" '
                         'in API group "apps" in the namespace "default": RBAC: x')
    assert e.status()["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    e = forbidden(attrs("list", "nodes", ns=""))
    assert e.message.endswith('cannot list resource "nodes" in API group "" at the cluster scope')
    e = forbidden(attrs("get", path="/metrics"))
    assert e.message == 'forbidden: User "jane" cannot get path "/metrics"'
    assert e.status()["details"] == {}
