"""The admission chain: plugin order, the two phases, the flags, and what a plugin sees of a
request made through a real registry (SQLite store, no server)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kybernetes import errors
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.admission import plugins
from kybernetes.apiserver.admission.chain import (
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Chain,
    Handler,
    forbidden,
)
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.cli import main
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]


# --- order and the default set ---------------------------------------------------------------


def test_default_plugins_in_kubernetes_order() -> None:
    assert plugins.enabled_plugin_names() == [
        "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "PodSecurity", "Priority", "DefaultTolerationSeconds",
        "DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass", "CertificateSubjectRestriction",
        "DefaultIngressClass", "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "ResourceQuota"]


def test_enabled_plugins_keep_the_fixed_order_whatever_the_flag_order() -> None:
    names = plugins.enabled_plugin_names(["AlwaysDeny", "AlwaysAdmit"], ["ServiceAccount", "ResourceQuota"])
    assert names == ["AlwaysAdmit", "NamespaceLifecycle", "LimitRanger", "NodeRestriction", "PodSecurity", "Priority",
                     "DefaultTolerationSeconds",
                     "DefaultStorageClass", "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass",
                     "CertificateSubjectRestriction", "DefaultIngressClass", "MutatingAdmissionWebhook",
                     "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "AlwaysDeny"]


def test_every_registered_module_is_the_plugin_it_is_listed_as() -> None:
    ordered = [name for name, _m in plugins.ORDERED_PLUGINS]
    assert len(ordered) == len(set(ordered))
    assert ordered[-2:] == ["ResourceQuota", "AlwaysDeny"]  # Kubernetes: these go at the end
    for name, module in plugins.ORDERED_PLUGINS:
        if module is not None:
            mod = importlib.import_module(module)
            assert name == mod.NAME and callable(mod.new)
    assert set(ordered) >= plugins.DEFAULT_ON


# --- flags -------------------------------------------------------------------------------------


def test_flag_values_split_on_commas_and_repeat() -> None:
    assert plugins.split_flag(["Priority,ResourceQuota", " AlwaysDeny ", ""]) == [
        "Priority", "ResourceQuota", "AlwaysDeny"]


def test_unknown_and_overlapping_plugins_are_refused_with_kubernetes_wording() -> None:
    assert plugins.validate_flags(["Priority"], ["ResourceQuota"]) == []
    problems = plugins.validate_flags(["Nope", "Priority"], ["Gone", "Priority"])
    assert problems == ['enable-admission-plugins plugin "Nope" is unknown',
                        'disable-admission-plugins plugin "Gone" is unknown',
                        "[Priority] in enable-admission-plugins and disable-admission-plugins overlapped"]
    assert plugins.flag_error(problems[:1]) == 'enable-admission-plugins plugin "Nope" is unknown'
    assert plugins.flag_error(problems[:2]) == ('[enable-admission-plugins plugin "Nope" is unknown, '
                                                'disable-admission-plugins plugin "Gone" is unknown]')


@pytest.mark.parametrize("command", ["apiserver", "server"])
def test_cli_refuses_an_unknown_plugin_before_starting(command: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, [command, "--data-dir", str(tmp_path), "--https-port", "0",
                                    "--enable-admission-plugins", "Priority,NoSuchPlugin"])
    assert res.exit_code == 1
    assert 'Error: enable-admission-plugins plugin "NoSuchPlugin" is unknown' in res.output
    assert not (tmp_path / "db").exists()


# --- the chain's phases ------------------------------------------------------------------------


class Recorder(Handler):
    """Records each call as (name, phase, operation)."""

    def __init__(self, name: str, log: list[tuple[str, str, str]], *,
                 operations: frozenset[str] = frozenset({CREATE, UPDATE, DELETE}),
                 resources: frozenset[tuple[str, str]] | None = None) -> None:
        self.name, self.log, self.operations, self.resources = name, log, operations, resources

    async def admit(self, attrs: Attributes) -> None:
        self.log.append((self.name, "admit", attrs.operation))

    async def validate(self, attrs: Attributes) -> None:
        self.log.append((self.name, "validate", attrs.operation))


class OnlyMutating(Handler):
    def __init__(self, log: list[tuple[str, str, str]]) -> None:
        self.log = log

    async def admit(self, attrs: Attributes) -> None:
        self.log.append(("m", "admit", attrs.operation))


class OnlyValidating(Handler):
    operations = frozenset({UPDATE})

    def __init__(self, log: list[tuple[str, str, str]]) -> None:
        self.log = log

    async def validate(self, attrs: Attributes) -> None:
        self.log.append(("v", "validate", attrs.operation))


def attrs(operation: str = CREATE, resource: str = "configmaps", name: str = "x", obj: Obj | None = None) -> Attributes:
    return Attributes(operation, "", "v1", resource, "ConfigMap", "default", name,
                      obj if obj is not None else {"metadata": {"name": name}}, None, User("alice"))


async def test_each_phase_runs_its_plugins_in_chain_order() -> None:
    log: list[tuple[str, str, str]] = []
    chain = Chain([("a", Recorder("a", log)), ("m", OnlyMutating(log)), ("v", OnlyValidating(log)),
                   ("b", Recorder("b", log, operations=frozenset({CREATE}), resources=frozenset({("", "pods")})))])
    await chain.admit(attrs(UPDATE))
    await chain.validate(attrs(UPDATE))
    assert log == [("a", "admit", UPDATE), ("m", "admit", UPDATE), ("a", "validate", UPDATE), ("v", "validate", UPDATE)]
    log.clear()
    await chain.admit(attrs(CREATE, "pods"))
    await chain.validate(attrs(CREATE, "pods"))
    assert log == [("a", "admit", CREATE), ("m", "admit", CREATE), ("b", "admit", CREATE),
                   ("a", "validate", CREATE), ("b", "validate", CREATE)]
    assert Chain().names == [] and chain.names == ["a", "m", "v", "b"]


def test_forbidden_names_the_resource_and_object_like_kubernetes() -> None:
    e = forbidden(attrs(name="cm"), "not today")
    assert e.code == 403 and e.message == 'configmaps "cm" is forbidden: not today'
    generated = attrs(name="", obj={"metadata": {"name": "cm-x7k2p", "generateName": "cm-"}})
    assert forbidden(generated, "no").message == 'configmaps "cm-" is forbidden: no'
    grouped = Attributes(CREATE, "apps", "v1", "deployments", "Deployment", "default", "web", {}, None, User("a"))
    err = forbidden(grouped, "no")
    assert err.message == 'deployments.apps "web" is forbidden: no'
    assert err.status()["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


# --- through a real registry -------------------------------------------------------------------


class Spy(Handler):
    """A test plugin: records what it saw; refuses ConfigMaps labelled deny=<phase>; its mutating
    phase repairs a key that validation would refuse."""

    def __init__(self) -> None:
        self.seen: list[Attributes] = []
        self.validated: list[tuple[str, Obj | None]] = []

    async def admit(self, attrs: Attributes) -> None:
        self.seen.append(attrs)
        obj = attrs.object or {}
        if (obj.get("metadata", {}).get("labels") or {}).get("deny") == "admit":
            raise forbidden(attrs, "denied while mutating")
        if "bad key!" in (obj.get("data") or {}):
            obj["data"]["good-key"] = obj["data"].pop("bad key!")

    async def validate(self, attrs: Attributes) -> None:
        self.validated.append((attrs.operation, attrs.object))
        if ((attrs.object or {}).get("metadata", {}).get("labels") or {}).get("deny") == "validate":
            raise forbidden(attrs, "denied while validating")


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[tuple[Registry, Spy]]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    ns = reg.catalogue.get("", "v1", "namespaces")
    assert ns is not None
    await reg.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, RequestContext())
    spy = Spy()
    reg.admission = Chain([("Spy", spy)])
    try:
        yield reg, spy
    finally:
        await reg.stop()
        await store.close()


def configmaps(reg: Registry) -> Resource:
    r = reg.catalogue.get("", "v1", "configmaps")
    assert r is not None
    return r


def cm(name: str, **extra: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


async def test_a_plugin_sees_user_operation_old_object_and_dry_run(registry: tuple[Registry, Spy]) -> None:
    reg, spy = registry
    r = configmaps(reg)
    alice = RequestContext(user=User("alice", ("team",)))
    await reg.create(r, "default", cm("c", data={"a": "1"}), alice)
    created = spy.seen[-1]
    assert (created.operation, created.user.name, created.user.groups) == (CREATE, "alice", ("team",))
    assert (created.group, created.version, created.resource, created.kind) == ("", "v1", "configmaps", "ConfigMap")
    assert (created.namespace, created.name, created.old_object, created.dry_run) == ("default", "c", None, False)

    bob = RequestContext(user=User("bob"), dry_run=True)
    await reg.patch(r, "default", "c", "merge", {"data": {"a": "2"}}, bob)
    updated = spy.seen[-1]
    assert (updated.operation, updated.user.name, updated.dry_run) == (UPDATE, "bob", True)
    assert updated.old_object is not None and updated.old_object["data"] == {"a": "1"}
    assert updated.object is not None and updated.object["data"] == {"a": "2"}
    assert (await reg.get(r, "default", "c"))["data"] == {"a": "1"}  # dry run: nothing written

    await reg.update(r, "default", "c", {**await reg.get(r, "default", "c"), "data": {"a": "3"}},
                     RequestContext(), subresource="")
    await reg.delete(r, "default", "c", DeleteOptions(), RequestContext(user=User("carol")))
    deleted = spy.seen[-1]
    assert (deleted.operation, deleted.user.name, deleted.object) == (DELETE, "carol", None)
    assert deleted.old_object is not None and deleted.old_object["data"] == {"a": "3"}
    assert isinstance(deleted.options, DeleteOptions)


async def test_mutating_runs_before_validation_and_validating_after(registry: tuple[Registry, Spy]) -> None:
    reg, spy = registry
    r = configmaps(reg)
    # The mutating phase repairs what validation would refuse.
    obj = await reg.create(r, "default", cm("fixed", data={"bad key!": "v"}), RequestContext())
    assert obj["data"] == {"good-key": "v"}
    # An object validation refuses never reaches the validating phase.
    spy.validated.clear()
    with pytest.raises(errors.Invalid):
        await reg.create(r, "default", cm("Not Valid"), RequestContext())
    assert spy.validated == []
    # Refusals in either phase are 403 in Kubernetes' wording, and nothing is stored.
    for phase in ("admit", "validate"):
        with pytest.raises(errors.Forbidden) as e:
            await reg.create(r, "default", cm(f"deny-{phase}", metadata={"name": f"deny-{phase}",
                                                                       "labels": {"deny": phase}}), RequestContext())
        verb = "mutating" if phase == "admit" else "validating"
        assert e.value.message == f'configmaps "deny-{phase}" is forbidden: denied while {verb}'
        with pytest.raises(errors.NotFound):
            await reg.get(r, "default", f"deny-{phase}")
