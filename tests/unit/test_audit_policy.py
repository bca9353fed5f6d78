"""The audit policy: Kubernetes' loading errors and its rule matching (``policy/checker.go``), as a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from kybernetes.apiserver.audit.policy import (
    GroupResources,
    Policy,
    PolicyError,
    PolicyRule,
    load_policy,
    load_policy_file,
)
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

JANE = User("jane", ("devs", "system:authenticated"))
NODE = User("system:node:n1", ("system:nodes", "system:authenticated"))


def res(verb: str, resource: str, namespace: str = "", name: str = "", group: str = "", sub: str = "") -> RequestInfo:
    return RequestInfo(True, "/x", verb, group, "v1", namespace, resource, sub, name)


def nonres(path: str, verb: str = "get") -> RequestInfo:
    return RequestInfo(False, path, verb)


R = PolicyRule
GR = GroupResources

MATCH_TABLE = [
    # (rule, user, request, matches)
    (R("Metadata"), JANE, res("get", "pods", "ns"), True),
    (R("Metadata"), JANE, nonres("/healthz"), True),
    (R("Metadata", users=frozenset({"jane"})), JANE, res("get", "pods"), True),
    (R("Metadata", users=frozenset({"bob"})), JANE, res("get", "pods"), False),
    (R("Metadata", user_groups=frozenset({"system:nodes"})), NODE, res("get", "pods"), True),
    (R("Metadata", user_groups=frozenset({"system:nodes"})), JANE, res("get", "pods"), False),
    (R("Metadata", verbs=frozenset({"list", "watch"})), JANE, res("watch", "pods"), True),
    (R("Metadata", verbs=frozenset({"list", "watch"})), JANE, res("get", "pods"), False),
    # resources: group must be equal; an empty resources list is the whole group
    (R("Metadata", resources=(GR(""),)), JANE, res("get", "pods"), True),
    (R("Metadata", resources=(GR(""),)), JANE, res("get", "deployments", group="apps"), False),
    (R("Metadata", resources=(GR("apps", ("deployments",)),)), JANE, res("get", "deployments", group="apps"), True),
    (R("Metadata", resources=(GR("", ("pods",)),)), JANE, res("get", "pods", sub="log"), False),
    (R("Metadata", resources=(GR("", ("pods/log",)),)), JANE, res("get", "pods", sub="log"), True),
    (R("Metadata", resources=(GR("", ("pods/log",)),)), JANE, res("get", "pods"), False),
    (R("Metadata", resources=(GR("", ("*/status",)),)), JANE, res("update", "pods", sub="status"), True),
    (R("Metadata", resources=(GR("", ("*/status",)),)), JANE, res("update", "nodes", sub="status"), True),
    (R("Metadata", resources=(GR("", ("*/status",)),)), JANE, res("update", "pods"), False),
    (R("Metadata", resources=(GR("", ("pods/*",)),)), JANE, res("create", "pods", sub="exec"), True),
    (R("Metadata", resources=(GR("", ("pods/*",)),)), JANE, res("get", "pods"), True),  # checker.go: resource/* is
    # the resource and every subresource
    (R("Metadata", resources=(GR("", ("*",)),)), JANE, res("get", "pods", sub="log"), True),
    (R("Metadata", resources=(GR("", ("configmaps",), frozenset({"a"})),)), JANE, res("get", "configmaps", name="a"),
     True),
    (R("Metadata", resources=(GR("", ("configmaps",), frozenset({"a"})),)), JANE, res("get", "configmaps", name="b"),
     False),
    (R("Metadata", resources=(GR("", ("configmaps",), frozenset({"a"})),)), JANE, res("list", "configmaps"), False),
    # namespaces: a cluster-scoped resource is the namespace ""
    (R("Metadata", namespaces=frozenset({"kube-system"})), JANE, res("get", "pods", "kube-system"), True),
    (R("Metadata", namespaces=frozenset({"kube-system"})), JANE, res("get", "pods", "default"), False),
    (R("Metadata", namespaces=frozenset({""})), JANE, res("get", "nodes"), True),
    (R("Metadata", namespaces=frozenset({"kube-system"})), JANE, nonres("/healthz"), False),
    (R("Metadata", resources=(GR(""),)), JANE, nonres("/api"), False),
    # non-resource URLs: exact, "*", a trailing "*"
    (R("Metadata", non_resource_urls=("/healthz",)), JANE, nonres("/healthz"), True),
    (R("Metadata", non_resource_urls=("/healthz",)), JANE, nonres("/healthz/etcd"), False),
    (R("Metadata", non_resource_urls=("/healthz*",)), JANE, nonres("/healthz/etcd"), True),
    (R("Metadata", non_resource_urls=("/api*",)), JANE, nonres("/apis/apps"), True),
    (R("Metadata", non_resource_urls=("*",)), JANE, nonres("/version"), True),
    (R("Metadata", non_resource_urls=("*",)), JANE, res("get", "pods"), False),
]


@pytest.mark.parametrize(("rule", "user", "info", "expected"), MATCH_TABLE)
def test_rule_matching(rule: PolicyRule, user: User, info: RequestInfo, expected: bool) -> None:
    assert rule.matches(user, info) is expected


def test_first_matching_rule_wins_and_stages_are_joined() -> None:
    policy = Policy((R("None", users=frozenset({"jane"})),
                     R("RequestResponse", resources=(GR("", ("configmaps",)),), omit_stages=frozenset({"Panic"}),
                       omit_managed_fields=False),
                     R("Metadata")), frozenset({"RequestReceived"}), omit_managed_fields=True)
    assert policy.evaluate(JANE, res("get", "configmaps")).level == "None"
    cm = policy.evaluate(NODE, res("get", "configmaps"))
    assert (cm.level, cm.omit_stages, cm.omit_managed_fields) == ("RequestResponse",
                                                                 frozenset({"RequestReceived", "Panic"}), False)
    other = policy.evaluate(NODE, res("get", "pods"))
    assert (other.level, other.omit_stages, other.omit_managed_fields) == ("Metadata", frozenset({"RequestReceived"}),
                                                                          True)
    only = Policy((R("Metadata", users=frozenset({"x"})),), frozenset({"Panic"}))
    assert only.evaluate(JANE, res("get", "pods")).level == "None"  # no rule matched


def test_loads_the_documentation_example() -> None:
    policy = load_policy(b"""
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["pods"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs: ["/api*", "/version"]
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
    namespaces: ["kube-system"]
    omitManagedFields: true
  - level: Metadata
    omitStages:
      - "RequestReceived"
""")
    assert len(policy.rules) == 7
    assert policy.rules[2].resources[0].resource_names == frozenset({"controller-leader"})
    assert policy.rules[5].omit_managed_fields is True
    assert policy.evaluate(JANE, res("get", "pods", sub="log")).level == "Metadata"
    assert policy.evaluate(JANE, nonres("/apis")).level == "None"


BAD = [
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\n", "loaded illegal policy with 0 rules"),
    (b"", "unknown group version field audit.k8s.io/__internal, Kind=Policy in policy"),
    (b"kind: Policy\nrules: [{level: Metadata}]\n",
     "unknown group version field audit.k8s.io/__internal, Kind=Policy in policy"),
    (b"apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: Metadata}]\n",
     'failed decoding: no kind "Policy" is registered for version "audit.k8s.io/v1beta1"'),
    (b"- a\n- b\n", "failed decoding: couldn't get version/kind; json parse error: json: cannot unmarshal array "
                    'into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
                    'Kind string "json:\\"kind,omitempty\\"" }'),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{}]\n", "rules[0].level: Required value"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Full}]\n",
     'rules[0].level: Unsupported value: "Full": supported values: "None", "Metadata", "Request", "RequestResponse"'),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: [healthz]}]\n",
     "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' "
     "character"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, nonResourceURLs: ['/a*b']}]\n",
     "rules[0].nonResourceURLs[0]: Invalid value: \"/a*b\": non-resource URL wildcards '*' must be the final "
     "character of the rule"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, omitStages: [Done]}]\n",
     'rules[0].omitStages[0]: Invalid value: "Done": allowed stages are '
     "RequestReceived,ResponseStarted,ResponseComplete,Panic"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\n"
     b"rules: [{level: Metadata, resources: [{group: rbac.authorization.k8s.io/v1}]}]\n",
     'rules[0].resources.group: Invalid value: "rbac.authorization.k8s.io/v1": a lowercase RFC 1123 subdomain'),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, resources: [{resourceNames: [a]}]}]\n",
     'rules[0].resources.resourceNames: Invalid value: []string{"a"}: using resourceNames requires at least one '
     "resource"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\n"
     b"rules: [{level: Metadata, namespaces: [a], nonResourceURLs: [/x]}]\n",
     'rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and '
     "non-resource URLs"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{}, {level: x}]\n",
     '[rules[0].level: Required value, rules[1].level: Unsupported value: "x": supported values: '),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: 5}]\n",
     "failed decoding: json: cannot unmarshal number into Go struct field PolicyRule.rules.level of type v1.Level"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata, users: alice}]\n",
     "failed decoding: json: cannot unmarshal string into Go struct field PolicyRule.rules.users of type []string"),
    (b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  users: [a\n",
     "failed decoding: yaml: line "),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_policies_are_refused_in_kubernetes_words(text: bytes, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(text)
    assert str(e.value).startswith(message), str(e.value)


def test_unknown_fields_are_ignored_as_kubernetes_falls_back_to_lenient_decoding() -> None:
    policy = load_policy(b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrule: x\nrules: [{level: Metadata, foo: 1}]\n")
    assert policy.rules[0].level == "Metadata"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as e:
        load_policy_file(missing)
    assert str(e.value) == (f'loading audit policy file: failed to read file path "{missing}": '
                            f"open {missing}: no such file or directory")
    bad = tmp_path / "p.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{}]\n")
    with pytest.raises(PolicyError) as e:
        load_policy_file(bad)
    assert str(e.value) == f"loading audit policy file: rules[0].level: Required value: from file {bad}"
