"""The PodSecurity plugin on a real registry (SQLite store, the generic store's admission calls):
what reaches the request's warnings and audit annotations, which updates are checked, pod
controllers, exemptions, and the warnings about existing pods when a namespace gets stricter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.admission.chain import Chain
from kybernetes.apiserver.admission.podsecurity.admission import (
    Configuration,
    PodSecurity,
    is_significant_pod_update,
    pod_template,
)
from kybernetes.apiserver.admission.podsecurity.levels import (
    BASELINE,
    LATEST,
    PRIVILEGED_LATEST,
    LevelVersion,
)
from kybernetes.apiserver.admission.podsecurity.namespaces import evaluate_pods_in_namespace
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]
REASONS = "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    reg.admission = Chain([("PodSecurity", PodSecurity(reg))])
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


def _r(reg: Registry, group: str, plural: str) -> Resource:
    r = reg.catalogue.get(group, "v1", plural)
    assert r is not None
    return r


async def _namespace(reg: Registry, name: str, **labels: str) -> None:
    labels = {f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}
    await reg.create(_r(reg, "", "namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name, "labels": labels}}, RequestContext())


def _pod(name: str, image: str = "nginx", owner: str = "", **sc: Any) -> Obj:
    meta: Obj = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    container = {"name": "c", "image": image, **({"securityContext": sc} if sc else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container]}}


async def test_enforce_audit_and_warn_reach_the_request(registry: Registry) -> None:
    await _namespace(registry, "ns", enforce="baseline", audit="restricted", warn="restricted", warn_version="v1.22")
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(_r(registry, "", "pods"), "ns", _pod("plain"), ctx)
    assert ctx.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "baseline:latest",
        "pod-security.kubernetes.io/audit-violations": 'would violate PodSecurity "restricted:latest": '
                                                       'allowPrivilegeEscalation != false (container "c" must set '
                                                       'securityContext.allowPrivilegeEscalation=false), '
                                                       'unrestricted capabilities (container "c" must set '
                                                       'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
                                                       'true (pod or container "c" must set securityContext.runAsNonRoot'
                                                       '=true), seccompProfile (pod or container "c" must set '
                                                       'securityContext.seccompProfile.type to "RuntimeDefault" or '
                                                       '"Localhost")'}
    assert len(ctx.warnings) == 1
    assert ctx.warnings[0].startswith('would violate PodSecurity "restricted:v1.22": allowPrivilegeEscalation')

    ctx = RequestContext(audit_annotations={})  # an audited request
    with pytest.raises(errors.Forbidden) as refused:
        await registry.create(_r(registry, "", "pods"), "ns", _pod("priv", privileged=True), ctx)
    assert str(refused.value) == ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                  '(container "c" must not set securityContext.privileged=true)')
    assert refused.value.details == {"name": "priv", "kind": "pods"}
    assert ctx.warnings == []  # no warning once refused
    assert "pod-security.kubernetes.io/audit-violations" in ctx.audit_annotations


async def test_privileged_namespace_and_generated_names(registry: Registry) -> None:
    await _namespace(registry, "open")
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(_r(registry, "", "pods"), "open", _pod("p", privileged=True), ctx)
    assert ctx.audit_annotations == {"pod-security.kubernetes.io/enforce-policy": str(PRIVILEGED_LATEST)}
    await _namespace(registry, "closed", enforce="baseline")
    pod = _pod("", privileged=True)
    pod["metadata"] = {"generateName": "web-"}
    with pytest.raises(errors.Forbidden, match=r'^pods "web-[a-z0-9]{5}" is forbidden: violates PodSecurity'):
        await registry.create(_r(registry, "", "pods"), "closed", pod, RequestContext())


async def test_only_significant_pod_updates_are_checked(registry: Registry) -> None:
    await _namespace(registry, "ns")
    pods = _r(registry, "", "pods")
    await registry.create(pods, "ns", _pod("p", privileged=True), RequestContext())
    await registry.patch(_r(registry, "", "namespaces"), "", "ns", "merge",
                         {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}, RequestContext())
    await registry.patch(pods, "ns", "p", "merge", {"metadata": {"labels": {"a": "b"}}}, RequestContext())
    with pytest.raises(errors.Forbidden, match="violates PodSecurity"):
        await registry.patch(pods, "ns", "p", "strategic", {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                             RequestContext())


async def test_pod_controllers_warn_but_are_never_refused(registry: Registry) -> None:
    await _namespace(registry, "ns", enforce="restricted")
    template = {"metadata": {"labels": {"app": "w"}}, "spec": _pod("")["spec"]}
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(_r(registry, "apps", "deployments"), "ns", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
        "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template}}, ctx)
    assert len(ctx.warnings) == 1
    assert ctx.warnings[0].startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation')
    assert "pod-security.kubernetes.io/enforce-policy" not in ctx.audit_annotations
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(_r(registry, "batch", "cronjobs"), "ns", {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
            **template, "spec": {**template["spec"], "restartPolicy": "Never"}}}}}}, ctx)
    assert len(ctx.warnings) == 1


async def test_exemptions(registry: Registry) -> None:
    await _namespace(registry, "ns", enforce="baseline")
    registry.admission = Chain([("PodSecurity", PodSecurity(registry, Configuration(
        exempt_usernames=frozenset({"alice"}), exempt_runtime_classes=frozenset({"kata"}))))])
    ctx = RequestContext(user=User("alice"), audit_annotations={})
    await registry.create(_r(registry, "", "pods"), "ns", _pod("a", privileged=True), ctx)
    assert ctx.audit_annotations == {"pod-security.kubernetes.io/exempt": "user"}
    pod = _pod("k", privileged=True)
    pod["spec"]["runtimeClassName"] = "kata"
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.create(_r(registry, "", "pods"), "ns", pod, ctx)
    assert ctx.audit_annotations == {"pod-security.kubernetes.io/exempt": "runtimeClass"}


async def test_invalid_labels_and_stricter_enforce_warnings(registry: Registry) -> None:
    namespaces = _r(registry, "", "namespaces")
    with pytest.raises(errors.Invalid) as invalid:
        await _namespace(registry, "bad", enforce="strict")
    assert str(invalid.value) == ('Namespace "bad" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                                  'Invalid value: "strict": must be one of privileged, baseline, restricted')
    await _namespace(registry, "ns")
    for name, owner in (("rs-b", "rs"), ("rs-a", "rs"), ("solo", "")):
        await registry.create(_r(registry, "", "pods"), "ns", _pod(name, owner=owner), RequestContext())
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.patch(namespaces, "", "ns", "merge", {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}}, ctx)
    assert ctx.warnings == ['existing pods in namespace "ns" violate the new PodSecurity enforce level '
                            '"restricted:latest"', f"rs-a (and 2 other pods): {REASONS}"]
    # Less strict, or the same: nothing to say.
    ctx = RequestContext(audit_annotations={})  # an audited request
    await registry.patch(namespaces, "", "ns", "merge", {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "baseline"}}}, ctx)
    assert ctx.warnings == []


def test_existing_pods_limits() -> None:
    """At most max_pods, one per controller first; stop at the deadline."""
    pods = [_pod("r1", owner="rs"), _pod("r2", owner="rs"), _pod("z", privileged=True), _pod("y")]
    lv = LevelVersion(BASELINE, LATEST)
    assert evaluate_pods_in_namespace("ns", lv, pods, frozenset(), 2, float("inf")) == [
        "new PodSecurity enforce level only checked against the first 2 of 4 existing pods",
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
        "z: privileged"]
    assert evaluate_pods_in_namespace("ns", lv, pods, frozenset(), 3000, 0.0) == [
        "new PodSecurity enforce level only checked against the first 1 of 4 existing pods"]


def test_significant_updates_and_templates() -> None:
    old = {"spec": {"containers": [{"name": "c", "image": "a"}],
                    "ephemeralContainers": [{"name": "e", "image": "x"}]}}
    same = json.loads(json.dumps(old))
    same["spec"]["containers"][0]["resources"] = {}
    assert not is_significant_pod_update(same, old)
    added = json.loads(json.dumps(old))
    added["spec"]["ephemeralContainers"].append({"name": "dbg", "image": "busybox"})
    assert is_significant_pod_update(added, old)
    init = json.loads(json.dumps(old))
    init["spec"]["initContainers"] = [{"name": "i", "image": "a"}]
    assert is_significant_pod_update(init, old)
    assert pod_template("", "replicationcontrollers", {"spec": {}}) is None
    assert pod_template("apps", "deployments", {"spec": {}}) == ({}, {})
    assert pod_template("", "podtemplates", {"template": {"metadata": {"a": 1}, "spec": {"b": 2}}}) == (
        {"a": 1}, {"b": 2})
