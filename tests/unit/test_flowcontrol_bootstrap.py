"""The APF bootstrap ensurer's rules, and the FlowSchema/PriorityLevelConfiguration strategies."""

from __future__ import annotations

import copy

from kybernetes.apiserver.flowcontrol import bootstrap
from kybernetes.apiserver.flowcontrol.bootstrap import AUTO_UPDATE_ANNOTATION, planned_update, should_remove
from kybernetes.apiserver.registry.flowcontrol import FlowSchemaStrategy, PriorityLevelConfigurationStrategy

FS, PL = FlowSchemaStrategy(), PriorityLevelConfigurationStrategy()


def obj(source: tuple[dict, ...], name: str, generation: int = 1, annotation: str | None = "true") -> dict:
    o = copy.deepcopy(next(x for x in source if x["metadata"]["name"] == name))
    o["metadata"]["generation"] = generation
    o["metadata"]["annotations"] = {} if annotation is None else {AUTO_UPDATE_ANNOTATION: annotation}
    return o


def messages(errs: list) -> list[str]:
    return [str(e) for e in errs]


def test_untouched_objects_are_left_alone() -> None:
    for src, mandatory in ((bootstrap.MANDATORY_FLOW_SCHEMAS, True), (bootstrap.SUGGESTED_PRIORITY_LEVELS, False)):
        for o in src:
            assert planned_update(obj(src, o["metadata"]["name"]), o, mandatory=mandatory) is None


def test_mandatory_spec_and_annotation_are_always_restored() -> None:
    want = obj(bootstrap.MANDATORY_FLOW_SCHEMAS, "catch-all")
    have = obj(bootstrap.MANDATORY_FLOW_SCHEMAS, "catch-all", generation=3, annotation="false")
    have["spec"]["matchingPrecedence"] = 9999
    new = planned_update(have, want, mandatory=True)
    assert new is not None
    assert new["spec"] == want["spec"]
    assert new["metadata"]["annotations"][AUTO_UPDATE_ANNOTATION] == "true"


def test_suggested_object_follows_its_annotation() -> None:
    want = obj(bootstrap.SUGGESTED_PRIORITY_LEVELS, "workload-low")
    changed = obj(bootstrap.SUGGESTED_PRIORITY_LEVELS, "workload-low", generation=2, annotation="false")
    changed["spec"]["limited"]["nominalConcurrencyShares"] = 7
    assert planned_update(changed, want, mandatory=False) is None  # "false": the operator's spec stays
    changed["metadata"]["annotations"][AUTO_UPDATE_ANNOTATION] = "true"
    new = planned_update(changed, want, mandatory=False)
    assert new is not None and new["spec"]["limited"]["nominalConcurrencyShares"] == 100


def test_suggested_object_without_annotation_is_updated_only_while_generation_is_1() -> None:
    want = obj(bootstrap.SUGGESTED_FLOW_SCHEMAS, "service-accounts")
    fresh = obj(bootstrap.SUGGESTED_FLOW_SCHEMAS, "service-accounts", generation=1, annotation=None)
    fresh["spec"]["matchingPrecedence"] = 42
    new = planned_update(fresh, want, mandatory=False)
    assert new is not None and new["spec"]["matchingPrecedence"] == 9000
    assert new["metadata"]["annotations"][AUTO_UPDATE_ANNOTATION] == "true"
    edited = obj(bootstrap.SUGGESTED_FLOW_SCHEMAS, "service-accounts", generation=2, annotation=None)
    edited["spec"]["matchingPrecedence"] = 42
    new = planned_update(edited, want, mandatory=False)
    assert new is not None and new["spec"]["matchingPrecedence"] == 42
    assert new["metadata"]["annotations"][AUTO_UPDATE_ANNOTATION] == "false"


def test_exempt_level_keeps_its_exempt_settings() -> None:
    want = obj(bootstrap.MANDATORY_PRIORITY_LEVELS, "exempt")
    have = obj(bootstrap.MANDATORY_PRIORITY_LEVELS, "exempt", generation=2)
    have["spec"]["exempt"] = {"nominalConcurrencyShares": 10, "lendablePercent": 50}
    assert planned_update(have, want, mandatory=True) is None
    assert not messages(PL.validate(have))


def test_only_annotated_objects_outside_the_configuration_are_removed() -> None:
    names = {o["metadata"]["name"] for o in bootstrap.SUGGESTED_FLOW_SCHEMAS}
    gone = {"metadata": {"name": "old-default", "annotations": {AUTO_UPDATE_ANNOTATION: "true"}}}
    assert should_remove(gone, names)
    assert not should_remove({"metadata": {"name": "old-default", "annotations": {AUTO_UPDATE_ANNOTATION: "f"}}},
                             names)
    assert not should_remove({"metadata": {"name": "mine"}}, names)
    assert not should_remove(obj(bootstrap.SUGGESTED_FLOW_SCHEMAS, "system-nodes"), names)


def test_bootstrap_objects_are_valid_and_already_defaulted() -> None:
    for o in (*bootstrap.MANDATORY_FLOW_SCHEMAS, *bootstrap.SUGGESTED_FLOW_SCHEMAS):
        d = copy.deepcopy(o)
        FS.default(d)
        assert d == o and not messages(FS.validate(d)), o["metadata"]["name"]
    for o in (*bootstrap.MANDATORY_PRIORITY_LEVELS, *bootstrap.SUGGESTED_PRIORITY_LEVELS):
        d = copy.deepcopy(o)
        PL.default(d)
        assert d == o and not messages(PL.validate(d)), o["metadata"]["name"]


def test_defaults() -> None:
    pl = {"metadata": {"name": "p"}, "spec": {"type": "Limited", "limited": {
        "limitResponse": {"type": "Queue", "queuing": {}}}}}
    PL.default(pl)
    assert pl["spec"]["limited"] == {"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {
        "type": "Queue", "queuing": {"handSize": 8, "queues": 64, "queueLengthLimit": 50}}}
    fs = {"metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "p"}}}
    FS.default(fs)
    assert fs["spec"]["matchingPrecedence"] == 1000


def test_priority_level_validation_wording() -> None:
    def errs(name: str, spec: dict) -> list[str]:
        o = {"metadata": {"name": name}, "spec": spec}
        PL.default(o)
        return messages(PL.validate(o))

    assert errs("p", {"type": "Exempt"}) == [
        'spec.type: Invalid value: "Exempt": type must be \'Exempt\' if and only if name is \'exempt\'']
    assert errs("p", {"type": "Limited"}) == ["spec.limited: Required value: must not be empty when type is Limited"]
    assert errs("p", {"type": "Limited", "limited": {"nominalConcurrencyShares": -1, "lendablePercent": 101,
                                                     "limitResponse": {"type": "Queue", "queuing": {
                                                         "queues": 128, "handSize": 10}}}}) == [
        "spec.limited.nominalConcurrencyShares: Invalid value: -1: must be a non-negative integer",
        "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
        "spec.limited.limitResponse.queuing.handSize: Invalid value: 10: required entropy bits of deckSize 128 and "
        "handSize 10 should not be greater than 60",
    ]
    assert errs("p", {"type": "Limited", "limited": {"limitResponse": {"type": "Reject", "queuing": {}}}}) == [
        "spec.limited.limitResponse.queuing: Forbidden: must be nil if limited.limitResponse.type is not Limited"]
    assert errs("catch-all", {"type": "Limited", "limited": {"nominalConcurrencyShares": 6,
                                                             "limitResponse": {"type": "Reject"}}}) == [
        "spec: Invalid value: {...}: spec of 'catch-all' must equal the fixed value"]


def test_flow_schema_validation_wording() -> None:
    def errs(name: str, spec: dict) -> list[str]:
        o = {"metadata": {"name": name}, "spec": spec}
        FS.default(o)
        return messages(FS.validate(o))

    rule = {"subjects": [{"kind": "User", "user": {"name": "u"}}],
            "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "namespaces": ["*"]}]}
    assert errs("f", {"priorityLevelConfiguration": {"name": "p"}, "rules": [rule]}) == []
    assert errs("f", {"priorityLevelConfiguration": {"name": "p"}, "matchingPrecedence": 1}) == [
        "spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1"]
    assert errs("f", {"priorityLevelConfiguration": {}, "matchingPrecedence": 10001,
                      "distinguisherMethod": {"type": "ByGroup"}}) == [
        "spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000",
        'spec.distinguisherMethod.type: Unsupported value: {...}: supported values: "ByNamespace", "ByUser"',
        "spec.priorityLevelConfiguration.name: Required value: must reference a priority level",
    ]
    bad = {"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "*"}, "user": {"name": "x"}}],
           "resourceRules": [{"verbs": ["*", "get"], "apiGroups": [], "resources": ["pods"]}],
           "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/a/*/b"]}]}
    assert errs("f", {"priorityLevelConfiguration": {"name": "p"}, "rules": [bad]}) == [
        "spec.rules[0].subjects[0].serviceAccount.namespace: Required value: must specify namespace for service "
        "account",
        "spec.rules[0].subjects[0].user: Forbidden: user is forbidden when subject kind is not 'User'",
        "spec.rules[0].resourceRules[0].verbs: Invalid value: [...]: if '*' is present, must not specify other verbs",
        "spec.rules[0].resourceRules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "spec.rules[0].resourceRules[0].namespaces: Required value: resource rules that are not cluster scoped must "
        "supply at least one namespace",
        'spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: "/a/*/b": wildcard can only do suffix '
        "matching",
    ]


def test_printer_rows() -> None:
    from datetime import UTC, datetime

    from kybernetes.apiserver.printers import columns_for, row_cells

    now = datetime(2026, 1, 1, tzinfo=UTC)
    group = "flowcontrol.apiserver.k8s.io"
    assert [c.name for c in columns_for(group, "FlowSchema")] == [
        "Name", "PriorityLevel", "MatchingPrecedence", "DistinguisherMethod", "Age", "MissingPL"]
    assert [c.name for c in columns_for(group, "PriorityLevelConfiguration")] == [
        "Name", "Type", "NominalConcurrencyShares", "Queues", "HandSize", "QueueLengthLimit", "Age"]
    exempt_fs = obj(bootstrap.MANDATORY_FLOW_SCHEMAS, "exempt")
    assert row_cells(group, "FlowSchema", exempt_fs, now) == ["exempt", "exempt", 1, "<none>", "<unknown>", "?"]
    exempt_fs["status"] = {"conditions": [{"type": "Dangling", "status": "False"}]}
    assert row_cells(group, "FlowSchema", exempt_fs, now)[-1] == "False"
    rows = [row_cells(group, "PriorityLevelConfiguration", obj(src, name), now)[:6]
            for src, name in ((bootstrap.MANDATORY_PRIORITY_LEVELS, "exempt"),
                              (bootstrap.MANDATORY_PRIORITY_LEVELS, "catch-all"),
                              (bootstrap.SUGGESTED_PRIORITY_LEVELS, "leader-election"))]
    assert rows == [["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>"],
                    ["catch-all", "Limited", 5, "<none>", "<none>", "<none>"],
                    ["leader-election", "Limited", 10, 16, 4, 50]]
