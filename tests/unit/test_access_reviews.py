"""authorization.k8s.io access reviews (apiserver/authz/reviews.py): validation in Kubernetes' words,
the attributes a review asks about, and the status a decision becomes."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.apiserver.authz import reviews
from kybernetes.apiserver.authz.authorizer import (
    AlwaysDeny,
    Attributes,
    Chain,
    Decision,
    PrivilegedGroups,
    RulesInfo,
)
from kybernetes.apiserver.registry.request import User

PODS = {"verb": "list", "resource": "pods", "namespace": "default"}
HEALTHZ = {"path": "/healthz", "verb": "get"}


def _messages(errs: list[v.FieldError]) -> list[str]:
    return [str(e) for e in errs]


def test_subject_access_review_needs_one_kind_of_attributes_and_a_subject() -> None:
    both = {"spec": {"resourceAttributes": PODS, "nonResourceAttributes": HEALTHZ}}
    assert _messages(reviews.validate_subject_access_review(both)) == [
        'spec.nonResourceAttributes: Invalid value: authorization.NonResourceAttributes{Path:"/healthz", '
        'Verb:"get"}: cannot be specified in combination with resourceAttributes',
        'spec.user: Invalid value: "": at least one of user or group must be specified',
    ]
    assert _messages(reviews.validate_subject_access_review({"spec": {"user": "jane"}})) == [
        'spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or '
        'resourceAttributes must be specified']
    assert reviews.validate_subject_access_review({"spec": {"groups": ["devs"], "resourceAttributes": PODS}}) == []


def test_metadata_must_be_empty_and_the_error_shows_it_as_go_does() -> None:
    obj = {"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"user": "jane", "resourceAttributes": PODS}}
    [err] = reviews.validate_subject_access_review(obj)
    assert err.field == "metadata"
    assert err.message().startswith('Invalid value: v1.ObjectMeta{Name:"x", GenerateName:"", Namespace:""')
    assert 'Labels:map[string]string{"a":"b"}' in err.message()
    assert err.message().endswith("ManagedFields:[]v1.ManagedFieldsEntry(nil)}: must be empty")
    # What a client sends when it says nothing about metadata.
    assert reviews.validate_self_subject_access_review(
        {"metadata": {"creationTimestamp": None}, "spec": {"resourceAttributes": PODS}}) == []


def test_local_review_rules() -> None:
    ok = {"metadata": {"namespace": "default"}, "spec": {"user": "jane", "resourceAttributes": PODS}}
    assert reviews.validate_local_subject_access_review(ok) == []
    other = {"metadata": {"namespace": "dev"}, "spec": {"user": "jane", "resourceAttributes": PODS}}
    assert _messages(reviews.validate_local_subject_access_review(other)) == [
        'spec.resourceAttributes.namespace: Invalid value: "default": must match metadata.namespace']
    non_resource = {"metadata": {"namespace": "dev", "name": "n"}, "spec": {"user": "j", "nonResourceAttributes": HEALTHZ}}
    msgs = _messages(reviews.validate_local_subject_access_review(non_resource))
    assert msgs[0].startswith('metadata: Invalid value: v1.ObjectMeta{Name:"n", GenerateName:"", Namespace:"dev"')
    assert msgs[0].endswith(": must be empty except for namespace")
    assert msgs[1] == ('spec.nonResourceAttributes: Invalid value: authorization.NonResourceAttributes{'
                       'Path:"/healthz", Verb:"get"}: disallowed on this kind of request')


def test_selectors_are_checked_for_shape() -> None:
    spec = {"resourceAttributes": dict(PODS, fieldSelector={}, labelSelector={
        "rawSelector": "a=b", "requirements": [{"key": "a", "operator": "In", "values": ["b"]}]})}
    assert _messages(reviews.validate_self_subject_access_review({"spec": spec})) == [
        "spec.resourceAttributes.fieldSelector.requirements: Required value: when "
        "spec.resourceAttributes.fieldSelector is specified, requirements or rawSelector is required",
        'spec.resourceAttributes.labelSelector.rawSelector: Invalid value: "a=b": may not specified at the '
        "same time as requirements",
    ]


def test_invalid_review_is_a_422_in_kubernetes_words() -> None:
    with pytest.raises(errors.Invalid) as err:
        v.raise_if_errors("SubjectAccessReview", "", reviews.validate_subject_access_review(
            {"spec": {"resourceAttributes": PODS}}), reviews.GROUP)
    assert str(err.value) == ('SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
                              "at least one of user or group must be specified")


def test_attributes_of_a_review() -> None:
    jane = User("jane", ("devs",))
    assert reviews.attributes_of(jane, {"resourceAttributes": dict(PODS, subresource="log", name="web")}) == \
        Attributes(jane, "list", True, "", "*", "default", "pods", "log", "web")
    assert reviews.attributes_of(jane, {"nonResourceAttributes": HEALTHZ}) == \
        Attributes(jane, "get", False, path="/healthz")
    assert reviews.user_of({"user": "bob", "groups": ["g"], "uid": "7", "extra": {"k": ["v"]}}) == \
        User("bob", ("g",), "7", {"k": ["v"]})


class _Denier:
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.DENY, "denied by policy"


@pytest.mark.parametrize(("chain", "user", "status"), [
    (None, User("jane"), {"allowed": True}),
    (Chain([PrivilegedGroups(), AlwaysDeny()]), User("jane"), {"allowed": False, "reason": "Everything is forbidden."}),
    (Chain([PrivilegedGroups(), AlwaysDeny()]), User("root", ("system:masters",)), {"allowed": True}),
    (Chain([_Denier()]), User("jane"), {"allowed": False, "denied": True, "reason": "denied by policy"}),
])
def test_decision_becomes_the_status_kubernetes_writes(chain: Chain | None, user: User, status: dict[str, Any]) -> None:
    assert reviews.decide(chain, Attributes(user, "get", resource="pods")) == status


def test_rules_status_keeps_both_lists_and_incomplete() -> None:
    assert reviews.rules_status(RulesInfo()) == {"resourceRules": [], "nonResourceRules": [], "incomplete": False}
    info = RulesInfo([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": []}],
                     [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}], True, "x not found")
    assert reviews.rules_status(info) == {
        "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}],
        "incomplete": True, "evaluationError": "x not found"}


def test_rules_come_from_the_modes_not_the_privileged_groups() -> None:
    root = User("root", ("system:masters",))
    assert reviews.rules_for(Chain([PrivilegedGroups(), AlwaysDeny()]), root, "default") == RulesInfo()
    assert reviews.rules_for(None, root, "default").resource_rules == [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
