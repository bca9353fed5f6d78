"""The bootstrap policy against Kubernetes' golden files (tests/unit/testdata/bootstrappolicy).

Every object of a golden file must be in the policy, field for field (rules in Kubernetes' order),
except the differences listed below with their reasons; and the policy has nothing the golden
files lack, except likewise listed additions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kybernetes.apiserver.authz import bootstrappolicy
from kybernetes.apiserver.authz.bootstrappolicy.builders import AUTOUPDATE_ANNOTATION, BOOTSTRAP_LABEL
from kybernetes.apiserver.authz.bootstrappolicy.extras import extra_cluster_role_bindings, extra_cluster_roles

GOLDEN = Path(__file__).parent / "testdata" / "bootstrappolicy"

# Golden objects kybernetes deliberately does not create, and why.
LEFT_OUT: dict[str, dict[str, str]] = {
    "cluster-roles.yaml": {
    },
    "controller-roles.yaml": {
        # The golden file is newer than 1.32. In 1.32 these controllers were behind feature gates
        # that are off by default (their roles then lived in controller-roles-featuregates.yaml), and
        # kybernetes has none of these features (DRA, SELinux mount, MultiCIDR services, VACs).
        "system:controller:device-taint-eviction-controller": "DRA device taints: after 1.32",
        "system:controller:resource-claim-controller": "DRA: beta and off by default in 1.32",
        "system:controller:selinux-warning-controller": "SELinuxChangePolicy: alpha in 1.32",
        "system:controller:service-cidrs-controller": "MultiCIDRServiceAllocator: off by default in 1.32",
        "system:controller:volumeattributesclass-protection-controller": "VolumeAttributesClass: off in 1.32",
    },
    "cluster-role-bindings.yaml": {
        # This golden copy is OpenShift's fork of Kubernetes; the binding is one of OpenShift's carries.
        "system:openshift:public-info-viewer": "OpenShift's, not Kubernetes'",
    },
}


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}" if meta.get("namespace") else meta["name"]


def _normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """What the comparison looks at: no creationTimestamp, ``rules: null`` as no rules."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion",)}
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "creationTimestamp"}
    if "rules" in out and not out["rules"]:
        out["rules"] = []
    return out


def _golden(name: str) -> dict[str, dict[str, Any]]:
    items = yaml.safe_load((GOLDEN / name).read_text())["items"]
    return {_key(o): _normalized(o) for o in items if _key(o) not in LEFT_OUT.get(name, {})}


def _ours(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {_key(o): _normalized(o) for o in objs}
    assert len(out) == len(objs), "two objects of one kind share a name"
    return out


CASES = {
    "cluster-roles.yaml": bootstrappolicy.cluster_roles,
    "controller-roles.yaml": bootstrappolicy.controller_roles,
    "cluster-role-bindings.yaml": bootstrappolicy.cluster_role_bindings,
    "namespace-roles.yaml": bootstrappolicy.namespace_roles,
    "namespace-role-bindings.yaml": bootstrappolicy.namespace_role_bindings,
}


@pytest.mark.parametrize("golden_file", sorted(CASES))
def test_policy_matches_kubernetes_golden_file(golden_file: str) -> None:
    golden, ours = _golden(golden_file), _ours(CASES[golden_file]())
    assert sorted(ours) == sorted(golden)
    for name, obj in golden.items():
        assert ours[name] == obj, name


def test_left_out_objects_are_in_the_golden_files() -> None:
    """Each listed difference names a real golden object (a typo would hide a missing role)."""
    for golden_file, names in LEFT_OUT.items():
        items = yaml.safe_load((GOLDEN / golden_file).read_text())["items"]
        assert set(names) <= {_key(o) for o in items}, golden_file


def test_controller_bindings_bind_each_role_to_its_service_account() -> None:
    """controller-role-bindings.yaml's rule: ``system:controller:X`` to ServiceAccount kube-system/X."""
    roles = {r["metadata"]["name"] for r in bootstrappolicy.controller_roles()}
    bindings = bootstrappolicy.controller_role_bindings()
    assert {b["metadata"]["name"] for b in bindings} == roles
    for b in bindings:
        sa = b["metadata"]["name"].removeprefix("system:controller:")
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": b["metadata"]["name"]}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}]


def test_every_object_is_labelled_and_auto_updated() -> None:
    objs = (bootstrappolicy.all_cluster_roles() + bootstrappolicy.all_cluster_role_bindings()
            + bootstrappolicy.namespace_roles() + bootstrappolicy.namespace_role_bindings())
    for o in objs:
        assert o["metadata"]["labels"][BOOTSTRAP_LABEL] == "rbac-defaults"
        assert o["metadata"]["annotations"] == {AUTOUPDATE_ANNOTATION: "true"}


GROUP_BOOTSTRAPPERS = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:bootstrappers"}
GROUP_NODES = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}


def test_kybernetes_extras_go_to_the_subjects_of_the_kubernetes_role_they_extend() -> None:
    """Every permission beyond Kubernetes' is in a ``system:kybernetes:<role>`` ClusterRole bound
    to exactly the subjects Kubernetes binds ``<role>`` to."""
    kubernetes = {b["roleRef"]["name"]: b.get("subjects") for b in bootstrappolicy.cluster_role_bindings()
                  + bootstrappolicy.controller_role_bindings()}
    roles = {r["metadata"]["name"] for r in extra_cluster_roles() if r["metadata"]["name"].startswith("system:kybernetes:")}
    extending = [b for b in extra_cluster_role_bindings() if b["metadata"]["name"].startswith("system:kybernetes:")]
    for binding in extending:
        extended = binding["roleRef"]["name"].removeprefix("system:kybernetes:")
        assert binding["roleRef"]["name"] in roles
        assert binding["subjects"] == kubernetes[extended]
    assert len(roles) == len(extending)


def test_kubeadm_node_bindings_bind_kubernetes_roles_only() -> None:
    """The node bindings kubeadm makes (bootstrap tokens, certificate rotation) grant Kubernetes' own
    roles, nothing of kybernetes'."""
    names = {r["metadata"]["name"] for r in bootstrappolicy.all_cluster_roles()}
    kubeadm = {b["metadata"]["name"]: (b["roleRef"]["name"], b["subjects"]) for b in extra_cluster_role_bindings()
               if b["metadata"]["name"].startswith("kybernetes:")}
    assert kubeadm == {
        "kybernetes:kubelet-bootstrap": ("system:node-bootstrapper", [GROUP_BOOTSTRAPPERS]),
        "kybernetes:node-autoapprove-bootstrap": (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient", [GROUP_BOOTSTRAPPERS]),
        "kybernetes:node-autoapprove-certificate-rotation": (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [GROUP_NODES]),
    }
    assert all(role in names for role, _ in kubeadm.values())
