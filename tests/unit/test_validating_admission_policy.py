"""The ValidatingAdmissionPolicy plugin on a real registry (SQLite store, watch caches): matching,
params, actions (Deny, Warn, Audit), audit annotations, failurePolicy, lazy variables, and the
policy and binding validation."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.admission import validatingadmissionpolicy as vap
from kybernetes.apiserver.admission.chain import Attributes, Chain, PluginInit
from kybernetes.apiserver.admission.validatingadmissionpolicy.evaluate import CompiledPolicy
from kybernetes.apiserver.admission.validatingadmissionpolicy.matching import matches, rule_matches
from kybernetes.apiserver.authz.authorizer import new_chain
from kybernetes.apiserver.cel import EvalError, library_authz
from kybernetes.apiserver.cel.admission import compile_error, compile_policy_expression
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.admissionpolicies import STRATEGIES
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]
GROUP = "admissionregistration.k8s.io"


@pytest.fixture
async def reg(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    registry = Registry(store, Catalogue.builtin(), builtin_strategies())
    await registry.start()
    await registry.create(_r(registry, "", "namespaces"), "", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"policed": "yes"}}},
        RequestContext())
    registry.admission = Chain([(vap.NAME, vap.new(PluginInit(registry)))])
    try:
        yield registry
    finally:
        await registry.stop()
        await store.close()


def _r(reg: Registry, group: str, plural: str) -> Resource:
    r = reg.catalogue.get(group, "v1", plural)
    assert r is not None
    return r


def policy(name: str, **spec: Any) -> Obj:
    base: Obj = {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]},
                 "validations": [{"expression": "object.data.size() <= 1", "message": "at most one key"}]}
    return {"apiVersion": f"{GROUP}/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
            "spec": {**base, **spec}}


def binding(name: str, policy_name: str, actions: list[str], **spec: Any) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
            "spec": {"policyName": policy_name, "validationActions": actions, **spec}}


def cm(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def install(reg: Registry, *objs: Obj) -> None:
    for obj in objs:
        plural = "validatingadmissionpolicies" if obj["kind"] == "ValidatingAdmissionPolicy" else \
            "validatingadmissionpolicybindings"
        await reg.create(_r(reg, GROUP, plural), "", obj, RequestContext())
    await reg.cacher.wait_fresh()  # the plugin reads the watch caches, fed by the store's events


async def create(reg: Registry, obj: Obj, ctx: RequestContext | None = None) -> RequestContext:
    ctx = ctx or RequestContext(audit_annotations={})  # an audited request
    await reg.create(_r(reg, "", "configmaps"), "team", obj, ctx)
    return ctx


async def test_deny_with_the_exact_status(reg: Registry) -> None:
    await install(reg, policy("one-key"), binding("one-key-b", "one-key", ["Deny"]))
    await create(reg, cm("ok", a="1"))
    with pytest.raises(errors.StatusError) as e:
        await create(reg, cm("big", a="1", b="2"))
    msg = "ValidatingAdmissionPolicy 'one-key' with binding 'one-key-b' denied request: at most one key"
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.message == f'configmaps "big" is forbidden: {msg}'
    assert e.value.details == {"name": "big", "kind": "configmaps", "causes": [{"message": msg}]}


async def test_warn_and_audit_actions_and_audit_annotations(reg: Registry) -> None:
    p = policy("audited", auditAnnotations=[{"key": "size", "valueExpression": "string(object.data.size())"},
                                            {"key": "none", "valueExpression": "null"}])
    p["spec"]["validations"].append({"expression": "!('b' in object.data)", "message": "no b"})
    await install(reg, p, binding("audited-b", "audited", ["Warn", "Audit"]))
    ctx = await create(reg, cm("big", a="1", b="2"))
    assert ctx.warnings == ["Validation failed for ValidatingAdmissionPolicy 'audited' with binding 'audited-b': "
                            "at most one key",
                            "Validation failed for ValidatingAdmissionPolicy 'audited' with binding 'audited-b': "
                            "no b"]
    assert ctx.audit_annotations["audited/size"] == "2"
    assert "audited/none" not in ctx.audit_annotations
    assert json.loads(ctx.audit_annotations[vap.AUDIT_KEY]) == [
        {"message": "at most one key", "policy": "audited", "binding": "audited-b", "expressionIndex": 0,
         "validationActions": ["Warn", "Audit"]},
        {"message": "no b", "policy": "audited", "binding": "audited-b", "expressionIndex": 1,
         "validationActions": ["Warn", "Audit"]}]


async def test_selectors_conditions_and_exclusions(reg: Registry) -> None:
    p = policy("scoped", matchConditions=[{"name": "not-skipped", "expression": "!('skip' in object.data)"}])
    p["spec"]["matchConstraints"]["excludeResourceRules"] = [{"apiGroups": [""], "apiVersions": ["v1"],
                                                             "operations": ["*"], "resources": ["configmaps"],
                                                             "resourceNames": ["excluded"]}]
    b = binding("scoped-b", "scoped", ["Deny"], matchResources={
        "namespaceSelector": {"matchLabels": {"policed": "yes"}}, "objectSelector": {"matchLabels": {"check": "me"}}})
    await install(reg, p, b)
    await create(reg, cm("unlabelled", a="1", b="2"))  # objectSelector does not match
    labelled = cm("labelled", a="1", b="2")
    labelled["metadata"]["labels"] = {"check": "me"}
    with pytest.raises(errors.StatusError):
        await create(reg, labelled)
    await create(reg, {**labelled, "data": {"a": "1", "skip": "1"}})  # matchCondition false
    await create(reg, {**labelled, "metadata": {"name": "excluded", "labels": {"check": "me"}}})


async def test_params_and_failure_policy(reg: Registry) -> None:
    await reg.create(_r(reg, "", "configmaps"), "team", cm("limits", max="1"), RequestContext())
    p = policy("param", paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
               matchConditions=[{"name": "not-params", "expression": "object.metadata.name != 'limits'"}],
               validations=[{"expression": "object.data.size() <= int(params.data.max)",
                             "messageExpression": "'more than ' + params.data.max + ' keys'"}])
    await install(reg, p, binding("param-b", "param", ["Deny"],
                                  paramRef={"name": "limits", "parameterNotFoundAction": "Deny"}))
    with pytest.raises(errors.StatusError, match="denied request: more than 1 keys"):
        await create(reg, cm("big", a="1", b="2"))
    # An evaluation error under Fail denies; under Ignore it passes.
    broken = policy("broken", validations=[{"expression": "object.data.nope == 'x'"}])
    await install(reg, broken, binding("broken-b", "broken", ["Deny"]))
    with pytest.raises(errors.StatusError, match=re.escape("expression 'object.data.nope == 'x'' resulted in "
                                                           "error: no such key: nope")):
        await create(reg, cm("small", a="1"))
    ignored = policy("ignored", failurePolicy="Ignore", validations=[{"expression": "object.data.nope == 'x'"}])
    await reg.delete(_r(reg, GROUP, "validatingadmissionpolicybindings"), "", "broken-b", DeleteOptions(),
                     RequestContext())
    await install(reg, ignored, binding("ignored-b", "ignored", ["Deny"]))
    await create(reg, cm("small", a="1"))


def test_variables_are_lazy() -> None:
    compiled = CompiledPolicy.of(policy("lazy", variables=[
        {"name": "broken", "expression": "object.nope"}, {"name": "size", "expression": "object.data.size()"}],
        validations=[{"expression": "variables.size < 2"}]))
    data = {"object": {"data": {"a": "1"}}, "oldObject": None, "params": None, "request": {},
            "namespaceObject": None, "authorizer": None}
    assert compiled.evaluate(data).decisions == []  # the broken variable is never used
    data["object"] = {"data": {"a": "1", "b": "2"}}
    [d] = compiled.evaluate(data).decisions
    assert d.message == "failed expression: variables.size < 2" and not d.failure


@pytest.mark.parametrize(("obj", "want"), [
    (policy("p", validations=[{"expression": "object.x >"}]),
     "spec.validations[0].expression: Invalid value: \"object.x >\": compilation failed: ERROR: <input>:1:11:"),
    (policy("p", validations=[], auditAnnotations=[]),
     "spec.validations: Required value: validations or auditAnnotations must contain at least one item"),
    (policy("p", failurePolicy="Maybe"),
     'spec.failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore"'),
    (policy("p", validations=[{"expression": "true", "reason": "Teapot"}]),
     'spec.validations[0].reason: Unsupported value: "Teapot": supported values: "Forbidden", "Invalid", '
     '"RequestEntityTooLarge", "Unauthorized"'),
    (policy("p", matchConstraints={}), "spec.matchConstraints.resourceRules: Required value"),
    (policy("p", variables=[{"name": "1x", "expression": "1"}]),
     'spec.variables[0].name: Invalid value: "1x": name is not a valid CEL identifier'),
    (binding("b", "", []), "spec.policyName: Required value"),
    (binding("b", "p", ["Deny", "Shout"]),
     'spec.validationActions[1]: Unsupported value: "Shout": supported values: "Audit", "Deny", "Warn"'),
    (binding("b", "p", ["Deny"], paramRef={"name": "x"}), "spec.paramRef.parameterNotFoundAction: Required value"),
])
def test_validation(obj: Obj, want: str) -> None:
    strategy = STRATEGIES[(GROUP, obj["kind"])]
    strategy.default(obj)
    errs = [str(e) for e in strategy.validate(obj)]
    assert any(e.startswith(want) for e in errs), errs


def test_defaults() -> None:
    obj = policy("p")
    STRATEGIES[(GROUP, "ValidatingAdmissionPolicy")].default(obj)
    assert obj["spec"]["failurePolicy"] == "Fail"
    mc = obj["spec"]["matchConstraints"]
    assert (mc["matchPolicy"], mc["namespaceSelector"], mc["objectSelector"]) == ("Equivalent", {}, {})
    assert mc["resourceRules"][0]["scope"] == "*"


def _attrs(resource: str = "deployments", sub: str = "", version: str = "v1", op: str = "UPDATE",
           name: str = "web") -> Attributes:
    return Attributes(op, "apps", version, resource, "Deployment", "ns", name, {"metadata": {}}, {"metadata": {}},
                      User("u"), subresource=sub)


@pytest.mark.parametrize(("resources", "sub", "want"), [
    (["deployments"], "", True), (["deployments"], "scale", False), (["deployments/*"], "scale", True),
    (["deployments/*"], "", False), (["*"], "", True), (["*"], "status", False), (["*/*"], "status", True),
    (["*/scale"], "scale", True), (["*/scale"], "status", False), (["deployments/status"], "status", True),
])
def test_rule_resources_and_subresources(resources: list[str], sub: str, want: bool) -> None:
    rule = {"apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["*"], "resources": resources}
    assert rule_matches(rule, _attrs(sub=sub), "v1", namespaced=True) is want


def test_rule_scope_names_operations_and_equivalent_versions() -> None:
    base = {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}
    assert not rule_matches({**base, "scope": "Cluster"}, _attrs(), "v1", namespaced=True)
    assert rule_matches({**base, "scope": "Namespaced"}, _attrs(), "v1", namespaced=True)
    assert not rule_matches({**base, "resourceNames": ["other"]}, _attrs(), "v1", namespaced=True)
    assert not rule_matches(base, _attrs(op="CREATE"), "v1", namespaced=True)
    v2 = {**base, "apiVersions": ["v2"]}

    def match(policy: str) -> bool:
        return matches({"resourceRules": [v2], "matchPolicy": policy}, _attrs(), namespaced=True,
                       other_versions=lambda: ["v2"], namespace_labels=lambda: {})
    assert match("Equivalent") and not match("Exact")


@pytest.mark.parametrize("modes", [("AlwaysDeny",), ("AlwaysAllow",), None])
async def test_authorizer_asks_the_servers_chain_for_the_requests_user(reg: Registry, modes: Any) -> None:
    """``authorizer`` (authz.go) asks the chain about the request's user: AlwaysDeny refuses a
    plain user (with the chain's reason) but not system:masters; no chain allows everyone."""
    chain = new_chain(modes, {}) if modes else None
    reg.admission = Chain([(vap.NAME, vap.new(PluginInit(reg, lambda: chain)))])
    p = policy("may-delete", validations=[{
        "expression": "authorizer.group('').resource('configmaps').namespace(request.namespace)"
                      ".check('delete').allowed()",
        "messageExpression": "'no: ' + authorizer.requestResource.check('create').reason()"}])
    await install(reg, p, binding("may-delete-b", "may-delete", ["Deny"]))
    plain = RequestContext(user=User("alice", ("system:authenticated",)))
    if modes == ("AlwaysDeny",):
        with pytest.raises(errors.StatusError, match=r"denied request: no: Everything is forbidden\.$"):
            await create(reg, cm("plain"), plain)
    else:
        await create(reg, cm("plain"), plain)
    await create(reg, cm("admin"), RequestContext(user=User("root", ("system:masters",))))


@pytest.mark.parametrize(("expression", "want"), [
    ("authorizer.path('/healthz').check('get').allowed()", False),
    ("authorizer.serviceAccount('team', 'builder').group('apps').resource('deployments').check('get').reason()",
     "Everything is forbidden."),
    ("authorizer.group('').resource('pods').subresource('log').name('p').fieldSelector('a=b').labelSelector('c')"
     ".check('get').errored()", False),
    ("authorizer.path('/x').check('get').error()", ""),
    ("authorizer.requestResource.check('get').allowed()", False),
])
def test_authorizer_builders_evaluate(expression: str, want: Any) -> None:
    """Every builder of authz.go, on a real AlwaysDeny chain."""
    chain = new_chain(("AlwaysDeny",), {})
    user = User("alice")
    data = {"authorizer": library_authz.authorizer_value(chain, user),
            "authorizer.requestResource": library_authz.request_resource_value(chain, user, "", "pods", "", "t", "p")}
    assert compile_policy_expression(expression).evaluate(data) == want


@pytest.mark.parametrize(("expression", "message"), [
    ("authorizer.path(' ').check('get').allowed()", "path must not be empty"),
    ("authorizer.group('').resource('').check('get').allowed()", "resource must not be empty"),
    ("authorizer.serviceAccount('team', 'Bad_Name').path('/x').check('get').allowed()",
     "Invalid service account name"),
    ("authorizer.serviceAccount('a.b', 'ok').path('/x').check('get').allowed()", "Invalid service account namespace"),
])
def test_authorizer_errors(expression: str, message: str) -> None:
    data = {"authorizer": library_authz.authorizer_value(None, User("alice"))}
    with pytest.raises(EvalError, match=message):
        compile_policy_expression(expression).evaluate(data)


@pytest.mark.parametrize(("expression", "issue"), [
    ("authorizer.check('get')", "found no matching overload for 'check' applied to "
                                "'(kubernetes.authorization.Authorizer, string)'"),
    ("authorizer.path('/x').resource('r')", "found no matching overload for 'resource'"),
    ("authorizer.group('').resource('r').check('get') == true", "found no matching overload for '_==_'"),
])
def test_authorizer_misuse_refused_when_written(expression: str, issue: str) -> None:
    assert issue in (compile_error(expression) or "")


def test_authorizer_of_a_dropped_chain_never_allows() -> None:
    chain = new_chain(("AlwaysAllow",), {})
    data = {"authorizer": library_authz.authorizer_value(chain, User("alice"))}
    expression = compile_policy_expression("authorizer.path('/x').check('get').allowed()")
    assert expression.evaluate(data) is True
    del chain
    with pytest.raises(EvalError, match="authorizer is no longer available"):
        expression.evaluate(data)
