"""Admission webhook machinery: rule matching, configuration validation, the AdmissionReview and
its checks, matchConditions, denials, and the mutating dispatcher's patches and reinvocation
through a real registry (SQLite store, no server; the webhook's HTTPS call is replaced by a
scripted answer here, the integration tests call real webhook servers)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.api.validation import Path as FieldPath
from kybernetes.apiserver.admission.chain import CREATE, DELETE, Attributes, Chain, Handler, PluginInit
from kybernetes.apiserver.admission.webhook import mutating, validating
from kybernetes.apiserver.admission.webhook.conditions import Conditions, compile_error
from kybernetes.apiserver.admission.webhook.dispatch import conditions_failed, denied
from kybernetes.apiserver.admission.webhook.matching import equivalents
from kybernetes.apiserver.admission.webhook.review import (
    InvalidResponse,
    Target,
    admission_request,
    review_version,
    verify_response,
)
from kybernetes.apiserver.admission.webhook.rules import is_exempt, rule_matches
from kybernetes.apiserver.authz.authorizer import new_chain
from kybernetes.apiserver.cel import library_authz
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.admissionregistration import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
    validate_rule,
)
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

# --- rules ---------------------------------------------------------------------------------------


def _rule(resources: list[str], scope: str = "*", ops: tuple[str, ...] = ("CREATE",)) -> dict[str, Any]:
    return {"operations": list(ops), "apiGroups": ["", "apps"], "apiVersions": ["v1"], "resources": resources,
            "scope": scope}


@pytest.mark.parametrize(("resources", "resource", "sub", "expected"), [
    (["pods"], "pods", "", True),
    (["pods"], "pods", "status", False),
    (["pods/status"], "pods", "status", True),
    (["pods/status"], "pods", "", False),
    (["pods/*"], "pods", "", True),
    (["pods/*"], "pods", "exec", True),
    (["pods/*"], "services", "", False),
    (["*"], "pods", "", True),
    (["*"], "pods", "status", False),
    (["*/status"], "deployments", "status", True),
    (["*/status"], "deployments", "scale", False),
    (["*/*"], "deployments", "scale", True),
    (["*/*"], "deployments", "", True),
])
def test_rule_resources_and_subresources(resources: list[str], resource: str, sub: str, expected: bool) -> None:
    assert rule_matches(_rule(resources), CREATE, "", "v1", resource, sub, "ns") is expected


def test_rule_operations_groups_versions() -> None:
    rule = _rule(["*"], ops=("CREATE", "UPDATE"))
    assert rule_matches(rule, "UPDATE", "apps", "v1", "deployments", "", "ns")
    assert not rule_matches(rule, DELETE, "apps", "v1", "deployments", "", "ns")
    assert not rule_matches(rule, CREATE, "batch", "v1", "jobs", "", "ns")
    assert not rule_matches(rule, CREATE, "apps", "v1beta1", "deployments", "", "ns")
    assert rule_matches({**rule, "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"]},
                        "CONNECT", "x.io", "v9", "things", "", "ns")


def test_rule_scope() -> None:
    cluster, namespaced = _rule(["*"], "Cluster"), _rule(["*"], "Namespaced")
    assert rule_matches(cluster, CREATE, "", "v1", "nodes", "", "")
    assert not rule_matches(cluster, CREATE, "", "v1", "pods", "", "ns")
    assert rule_matches(namespaced, CREATE, "", "v1", "pods", "", "ns")
    assert not rule_matches(namespaced, CREATE, "", "v1", "nodes", "", "")
    # A Namespace is cluster-scoped, even where Kubernetes' attributes carry its name as namespace.
    assert rule_matches(cluster, CREATE, "", "v1", "namespaces", "", "ns")
    assert not rule_matches(namespaced, CREATE, "", "v1", "namespaces", "", "ns")


def test_admission_configuration_is_exempt() -> None:
    assert is_exempt("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    assert is_exempt("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    assert not is_exempt("", "configmaps")


def test_equivalent_resources_come_from_the_catalogue() -> None:
    cat = Catalogue.builtin()
    assert [(r.group, r.version) for r in equivalents(cat, "autoscaling", "v2", "horizontalpodautoscalers")] == [
        ("autoscaling", "v1")]
    assert [(r.group, r.version) for r in equivalents(cat, "events.k8s.io", "v1", "events")] == [("", "v1")]
    assert equivalents(cat, "", "v1", "configmaps") == []


# --- configuration validation ------------------------------------------------------------------


def _messages(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


def test_rule_validation_wording() -> None:
    errs = _messages(validate_rule({"operations": [], "apiGroups": ["*", "apps"], "apiVersions": [""],
                                    "resources": ["pods/*", "pods/status", "*/*", "*/x", "a/x"], "scope": "All"},
                                   FieldPath("rules").index(0)))
    assert errs == [
        "rules[0].operations: Required value",
        "rules[0].apiGroups: Invalid value: [...]: if '*' is present, must not specify other API groups",
        "rules[0].apiVersions[0]: Required value",
        "rules[0].resources[1]: Invalid value: \"pods/status\": if 'pods/*' is present, must not specify pods/status",
        "rules[0].resources[3]: Invalid value: \"*/x\": if '*/*' is present, must not specify */x",
        "rules[0].resources[4]: Invalid value: \"a/x\": if '*/x' is present, must not specify a/x",
        "rules[0].resources: Invalid value: [...]: if '*/*' is present, must not specify other resources",
        'rules[0].scope: Unsupported value: "All": supported values: "*", "Cluster", "Namespaced"',
    ]


def _config(**hook: Any) -> dict[str, Any]:
    base = {"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://example.test/x"}}
    return {"metadata": {"name": "c"}, "webhooks": [{**base, **hook}]}


def test_service_and_side_effects_validation() -> None:
    s = ValidatingWebhookConfigurationStrategy()
    errs = _messages(s.validate(_config(clientConfig={"service": {"name": "", "namespace": "ns", "port": 0,
                                                                  "path": "/Bad//x"}}, sideEffects="Some")))
    assert errs == [
        'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"',
        "webhooks[0].clientConfig.service.name: Required value",
        "webhooks[0].clientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, "
        "inclusive",
        'webhooks[0].clientConfig.service.path: Invalid value: "/Bad//x": segment[0]: a lowercase RFC 1123 '
        "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
        "an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'webhooks[0].clientConfig.service.path: Invalid value: "/Bad//x": segment[1] may not be empty',
    ]
    # An update keeps what the old object already had: Kubernetes' ratcheting of stored objects.
    old = _config(sideEffects="Some")
    assert s.validate_update(_config(sideEffects="Unknown"), old) == []
    assert _messages(s.validate_update(_config(sideEffects="Unknown"), _config())) == [
        'webhooks[0].sideEffects: Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun"']


def test_mutating_defaults_and_reinvocation_policy() -> None:
    s = MutatingWebhookConfigurationStrategy()
    obj = _config(rules=[{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    s.default(obj)
    hook = obj["webhooks"][0]
    assert (hook["failurePolicy"], hook["matchPolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"]) == (
        "Fail", "Equivalent", 10, "Never")
    assert hook["rules"][0]["scope"] == "*"
    assert _messages(s.validate(_config(reinvocationPolicy="Always"))) == [
        'webhooks[0].reinvocationPolicy: Unsupported value: "Always": supported values: "IfNeeded", "Never"']


# --- the AdmissionReview -------------------------------------------------------------------------


def _attrs(**kw: Any) -> Attributes:
    base: dict[str, Any] = dict(operation=CREATE, group="", version="v1", resource="configmaps", kind="ConfigMap",
                                namespace="ns", name="", object={"metadata": {"generateName": "x-"}},
                                old_object=None, user=User("alice", ("team",), "u-1", {"k": ["v"]}))
    base.update(kw)
    return Attributes(**base)


def test_request_fields_in_kubernetes_order() -> None:
    req = admission_request("uid-1", _attrs(subresource="status", dry_run=True),
                            Target("", "v1", "configmaps", "ConfigMap"), {"a": 1}, None)
    assert list(req) == ["uid", "kind", "resource", "subResource", "requestKind", "requestResource",
                         "requestSubResource", "namespace", "operation", "userInfo", "object", "oldObject",
                         "dryRun", "options"]
    assert req["userInfo"] == {"username": "alice", "uid": "u-1", "groups": ["team"], "extra": {"k": ["v"]}}
    assert req["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]}
    assert req["oldObject"] is None and req["dryRun"] is True
    ns = dict(group="", resource="namespaces", kind="Namespace", namespace="", name="team")
    deleted = admission_request("u", _attrs(operation=DELETE, object=None, old_object={}, **ns),
                                Target("", "v1", "namespaces", "Namespace"), None, {})
    created = admission_request("u", _attrs(**ns), Target("", "v1", "namespaces", "Namespace"), {}, None)
    assert deleted["namespace"] == "team" and created["namespace"] == "team"


def _review(uid: str = "u", **response: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, **response}}


@pytest.mark.parametrize(("review", "mutating", "message"), [
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, False, "webhook response was absent"),
    (_review("other", allowed=True), False, 'expected response.uid="u", got "other"'),
    ({**_review(allowed=True), "apiVersion": "admission.k8s.io/v1beta1"}, False,
     "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
     "admission.k8s.io/v1beta1, Kind=AdmissionReview"),
    ({**_review(allowed=True), "apiVersion": "v1", "kind": "Status"}, False,
     "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /v1, Kind=Status"),
    (_review(allowed=True, patch="W10="), False, "validating webhook may not return response.patch"),
    (_review(allowed=True, patchType="JSONPatch"), False, "validating webhook may not return response.patchType"),
    (_review(allowed=True, patch="W10="), True, "webhook returned response.patch but not response.patchType"),
    (_review(allowed=True, patchType="JSONPatch"), True, "webhook returned response.patchType but not response.patch"),
])
def test_invalid_responses_in_kubernetes_words(review: dict[str, Any], mutating: bool, message: str) -> None:
    with pytest.raises(InvalidResponse) as caught:
        verify_response("u", mutating, review)
    assert str(caught.value) == message


def test_v1beta1_answers_are_taken_as_they_come() -> None:
    assert review_version(["v1beta1", "v1"]) == "v1beta1" and review_version(["v2"]) == ""
    resp = verify_response("u", True, {"response": {"uid": "x", "allowed": True, "patch": "W10="}}, "v1beta1")
    assert (resp.allowed, resp.patch, resp.patch_type) == (True, "W10=", "JSONPatch")


@pytest.mark.parametrize(("status", "code", "message"), [
    ({"code": 422, "message": "bad", "reason": "Invalid"}, 422, 'admission webhook "w.x.y" denied the request: bad'),
    ({"reason": "NoReason"}, 400, 'admission webhook "w.x.y" denied the request: NoReason'),
    (None, 400, 'admission webhook "w.x.y" denied the request without explanation'),
    ({"code": 200, "message": "ok?"}, 400, 'admission webhook "w.x.y" denied the request: ok?'),
])
def test_denials_in_kubernetes_words(status: dict[str, Any] | None, code: int, message: str) -> None:
    err = denied("w.x.y", status)
    assert (err.code, err.message) == (code, message)


def test_non_2xx_answers_in_client_go_words() -> None:
    from kybernetes.apiserver.admission.webhook.client import http_error

    assert http_error(500, b"boom") == 'an error on the server ("boom") has prevented the request from succeeding'
    assert http_error(404, b"") == "the server could not find the requested resource"
    assert http_error(418, b"") == "the server responded with the status code 418 but did not return more information"
    assert http_error(400, b'{"kind":"Status","message":"nope"}') == "nope"


# --- matchConditions -----------------------------------------------------------------------------


def test_match_conditions_semantics() -> None:
    assert compile_error("object.x ==").startswith("compilation failed: ")
    assert compile_error("object.metadata.name == 'a'") == ""
    conds = Conditions([{"name": "a", "expression": "object.metadata.name == 'x'"},
                        {"name": "b", "expression": "object.spec.missing == 1"},
                        {"name": "c", "expression": "'not a bool'"}])
    # A false condition skips the webhook whatever the others did.
    assert conds.evaluate({"object": {"metadata": {"name": "y"}, "spec": {}}}).matches is False
    out = conds.evaluate({"object": {"metadata": {"name": "x"}, "spec": {}}})
    assert (out.matches, out.error) == (False, "[expression 'object.spec.missing == 1' resulted in error: no such "
                                               "key: missing, expression ''not a bool'' resulted in error: cel "
                                               "expression must evaluate to bool]")
    ok = Conditions([{"name": "a", "expression": "request.operation == 'CREATE' && oldObject == null"}])
    assert ok.evaluate({"operation": "CREATE", "object": {}, "oldObject": None}).matches is True


def test_match_conditions_ask_the_authorizer() -> None:
    """matchConditions' ``authorizer`` asks the server's chain for the request's user:
    system:masters passes AlwaysDeny's chain, a plain user does not."""
    conds = Conditions([{"name": "may", "expression": "authorizer.requestResource.check('delete').allowed() && "
                                                      "authorizer.group('').resource('secrets').check('get').allowed()"}])
    chain = new_chain(("AlwaysDeny",), {})
    for user, want in ((User("alice"), False), (User("root", ("system:masters",)), True)):
        authz = library_authz.variables(chain, user, "", "configmaps", "", "team", "x")
        assert conds.evaluate({"object": {}}, authz).matches is want
    no_authz = conds.evaluate({"object": {}})  # no authorizer given: an evaluation error
    assert no_authz.matches is False and no_authz.error.startswith("expression 'authorizer.requestResource")


def test_failed_conditions_are_kubernetes_forbidden() -> None:
    err = conditions_failed(_attrs(group="apps", resource="deployments", name="web"), "boom")
    assert (err.code, err.message) == (403, 'deployments.apps "web" is forbidden: boom')
    assert err.details == {"name": "web", "group": "apps", "kind": "deployments"}
    assert conditions_failed(_attrs(), "boom").message == "configmaps is forbidden: boom"


# --- chain reinvocation --------------------------------------------------------------------------


class Counter(Handler):
    def __init__(self, ask: bool) -> None:
        self.rounds: list[bool] = []
        self.ask = ask

    async def admit(self, attrs: Attributes) -> None:
        self.rounds.append(attrs.is_reinvoke)
        if self.ask:
            attrs.should_reinvoke = True


async def test_chain_runs_the_mutating_phase_again_once_when_asked() -> None:
    first, asker = Counter(False), Counter(True)
    await Chain([("first", first), ("asker", asker)]).admit(_attrs())
    assert first.rounds == [False, True] and asker.rounds == [False, True]
    quiet = Counter(False)
    await Chain([("quiet", quiet)]).admit(_attrs())
    assert quiet.rounds == [False]


# --- the mutating dispatcher through a real registry --------------------------------------------


def _patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


class Scripted:
    """Stands in for the HTTPS call: answers each webhook by name with a function of its request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}

    async def call(self, hook: Any, review: dict[str, Any]) -> Any:
        req = review["request"]
        self.calls.append((hook.name, json.loads(json.dumps(req))))
        extra = self.answers.get(hook.name, lambda r: {})(req)
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": req["uid"], "allowed": True, **extra}}

    async def close(self) -> None:
        pass


def _hook(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://example.test/"},
            "rules": [{"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
            **extra}


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    ns = reg.catalogue.get("", "v1", "namespaces")
    assert ns is not None
    await reg.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, RequestContext())
    try:
        yield reg
    finally:
        await reg.admission.stop()
        await reg.stop()
        await store.close()


async def _install(reg: Registry, mutating_hooks: list[dict[str, Any]]) -> Scripted:
    r = reg.catalogue.get("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
    assert r is not None
    for i, hook in enumerate(mutating_hooks):
        await reg.create(r, "", {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                                 "metadata": {"name": f"c{i}"}, "webhooks": [hook]}, RequestContext())
    plugin = mutating.new(PluginInit(reg))
    scripted = Scripted()
    plugin.client = plugin.dispatcher.client = scripted  # type: ignore[assignment]
    reg.admission = Chain([(mutating.NAME, plugin), (validating.NAME, validating.new(PluginInit(reg)))])
    await reg.admission.start()
    return scripted


async def test_patches_apply_in_order_with_reinvocation(registry: Registry) -> None:
    scripted = await _install(registry, [_hook("a.x.io", reinvocationPolicy="IfNeeded"), _hook("b.x.io")])
    scripted.answers["b.x.io"] = lambda req: {} if "labels" in req["object"]["metadata"] else _patch(
        [{"op": "add", "path": "/metadata/labels", "value": {"by": "b"}}])
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    ctx = RequestContext(audit_annotations={})  # an audited request
    made = await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}},
                                 ctx)
    assert made["metadata"]["labels"] == {"by": "b"} and made["metadata"]["resourceVersion"]
    assert {k: json.loads(v) for k, v in ctx.audit_annotations.items()} == {
        "mutation.webhook.admission.k8s.io/round_0_index_0": {"configuration": "c0", "webhook": "a.x.io",
                                                              "mutated": False},
        "mutation.webhook.admission.k8s.io/round_0_index_1": {"configuration": "c1", "webhook": "b.x.io",
                                                              "mutated": True},
        "mutation.webhook.admission.k8s.io/round_1_index_0": {"configuration": "c0", "webhook": "a.x.io",
                                                              "mutated": False}}
    assert [name for name, _ in scripted.calls] == ["a.x.io", "b.x.io", "a.x.io"]
    assert scripted.calls[2][1]["object"]["metadata"]["labels"] == {"by": "b"}


async def test_warnings_and_audit_annotations_reach_the_request(registry: Registry) -> None:
    scripted = await _install(registry, [_hook("note.x.io")])
    scripted.answers["note.x.io"] = lambda req: {"warnings": ["careful"], "auditAnnotations": {"seen": "yes"}}
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}}, ctx)
    assert ctx.warnings == ["careful"] and ctx.audit_annotations["note.x.io/seen"] == "yes"


async def test_failing_open_is_recorded(registry: Registry) -> None:
    scripted = await _install(registry, [_hook("open.x.io", failurePolicy="Ignore")])
    scripted.answers["open.x.io"] = lambda req: {"uid": "wrong"}
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o"}}, ctx)
    assert ctx.audit_annotations["failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"] == "open.x.io"


async def test_a_patch_is_defaulted_and_validated(registry: Registry) -> None:
    scripted = await _install(registry, [_hook("svc.x.io")])
    scripted.answers["svc.x.io"] = lambda req: _patch(
        [{"op": "add", "path": "/spec/ports/-", "value": {"port": 81}}] if req["object"]["kind"] == "Service" else [])
    r = registry.catalogue.get("", "v1", "services")
    assert r is not None
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"name": "a", "port": 80}]}}
    with pytest.raises(errors.StatusError) as caught:
        await registry.create(r, "default", svc, RequestContext())
    assert caught.value.code == 422  # the added port has no name: validation of the patched object
    scripted.answers["svc.x.io"] = lambda req: _patch([{"op": "replace", "path": "/spec/ports",
                                                        "value": [{"port": 81}]}])
    made = await registry.create(r, "default", svc, RequestContext())
    assert made["spec"]["ports"][0]["protocol"] == "TCP"  # defaulted after the patch


async def test_a_patch_is_decoded_as_kubernetes_decodes_it(registry: Registry) -> None:
    scripted = await _install(registry, [_hook("dec.x.io")])
    scripted.answers["dec.x.io"] = lambda req: _patch([{"op": "add", "path": "/bogus", "value": 1},
                                                       {"op": "add", "path": "/data", "value": {"k": "v"}}])
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    made = await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u"}},
                                 RequestContext())
    assert "bogus" not in made and made["data"] == {"k": "v"}  # an unknown field is dropped
    scripted.answers["dec.x.io"] = lambda req: _patch([{"op": "add", "path": "/data", "value": "text"}])
    with pytest.raises(errors.InternalError) as caught:
        await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}},
                              RequestContext())
    assert caught.value.message.startswith("Internal error occurred: ")


async def test_a_patch_on_delete_is_refused(registry: Registry) -> None:
    hook = _hook("del.x.io", rules=[{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}])
    scripted = await _install(registry, [hook])
    scripted.answers["del.x.io"] = lambda req: _patch([{"op": "add", "path": "/x", "value": 1}])
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}},
                          RequestContext())
    from kybernetes.apiserver.registry.request import DeleteOptions

    with pytest.raises(errors.InternalError) as caught:
        await registry.delete(r, "default", "d", DeleteOptions(), RequestContext())
    assert caught.value.message == ('Internal error occurred: admission webhook "del.x.io" attempted to modify the '
                                    "object, which is not supported for this operation")


async def test_dry_run_refused_for_webhooks_with_side_effects(registry: Registry) -> None:
    # Only objects stored before v1 can have such webhooks; the dispatcher refuses them as Kubernetes does.
    scripted = await _install(registry, [_hook("fx.x.io")])
    plugin = registry.admission.plugins[0][1]
    plugin.source.webhooks[0].spec["sideEffects"] = "Some"
    r = registry.catalogue.get("", "v1", "configmaps")
    assert r is not None
    with pytest.raises(errors.BadRequest) as caught:
        await registry.create(r, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                              RequestContext(dry_run=True))
    assert caught.value.message == 'admission webhook "fx.x.io" does not support dry run'
    assert scripted.calls == []
