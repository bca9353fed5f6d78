"""Kubernetes 1.32's bootstrap RBAC policy, as data: what kube-apiserver creates and reconciles.

* :mod:`.clusterroles`: the user-facing and component ClusterRoles and their bindings;
* :mod:`.controllerroles`: one ``system:controller:<name>`` ClusterRole and binding per controller;
* :mod:`.namespaceroles`: the Roles and RoleBindings of kube-system and kube-public;
* :mod:`.extras`: what kybernetes' components need beyond Kubernetes' roles, with the reasons;
* :mod:`.reconcile`: the ``rbac/bootstrap-roles`` post-start hook that keeps them in the store.

Every object is RBAC v1 JSON with the ``kubernetes.io/bootstrapping: rbac-defaults`` label and the
``rbac.authorization.kubernetes.io/autoupdate: "true"`` annotation. ``system:node``'s ClusterRole takes
its rules from the Node authorizer's (``authz/node_rules.py``).
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz.bootstrappolicy.clusterroles import cluster_role_bindings, cluster_roles
from kybernetes.apiserver.authz.bootstrappolicy.controllerroles import (
    CONTROLLER_NAMES,
    controller_role_bindings,
    controller_roles,
)
from kybernetes.apiserver.authz.bootstrappolicy.extras import extra_cluster_role_bindings, extra_cluster_roles
from kybernetes.apiserver.authz.bootstrappolicy.namespaceroles import namespace_role_bindings, namespace_roles

__all__ = ["CONTROLLER_NAMES", "all_cluster_role_bindings", "all_cluster_roles", "cluster_role_bindings",
           "cluster_roles", "controller_role_bindings", "controller_roles", "namespace_role_bindings",
           "namespace_roles"]


def all_cluster_roles() -> list[Obj]:
    """Every bootstrap ClusterRole: Kubernetes', the controllers' and kybernetes' extras."""
    return cluster_roles() + controller_roles() + extra_cluster_roles()


def all_cluster_role_bindings() -> list[Obj]:
    """Every bootstrap ClusterRoleBinding: Kubernetes', the controllers' and kybernetes' extras."""
    return cluster_role_bindings() + controller_role_bindings() + extra_cluster_role_bindings()
