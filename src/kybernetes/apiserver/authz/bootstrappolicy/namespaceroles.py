"""The bootstrap Roles and RoleBindings of kube-system and kube-public (``namespace_policy.go``).

Leader election of the scheduler and the controller manager, the reader of the
``extension-apiserver-authentication`` ConfigMap, and the bootstrap-token controllers.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz.bootstrappolicy.builders import (
    LEGACY,
    READ,
    events_rule,
    role,
    role_binding,
    rule,
    service_accounts,
    users,
)

SYSTEM = "kube-system"
PUBLIC = "kube-public"


def _leader_locking(component: str) -> Obj:
    verbs = ("watch", "get", "list", "create", "update")
    return role(f"system::leader-locking-{component}", SYSTEM,
                rule(*verbs).groups("coordination.k8s.io").resources("leases"),
                rule(*verbs).groups("coordination.k8s.io").resources("leasecandidates"))


def namespace_roles() -> list[Obj]:
    return [
        role("extension-apiserver-authentication-reader", SYSTEM,
             rule(*READ).groups(LEGACY).resources("configmaps").names("extension-apiserver-authentication")),
        _leader_locking("kube-controller-manager"),
        _leader_locking("kube-scheduler"),
        role("system:controller:bootstrap-signer", SYSTEM, rule(*READ).groups(LEGACY).resources("secrets")),
        role("system:controller:cloud-provider", SYSTEM,
             rule("create", "get", "list", "watch").groups(LEGACY).resources("configmaps")),
        role("system:controller:token-cleaner", SYSTEM,
             rule("delete", "get", "list", "watch").groups(LEGACY).resources("secrets"), events_rule()),
        role("system:controller:bootstrap-signer", PUBLIC,
             rule(*READ).groups(LEGACY).resources("configmaps"),
             rule("update").groups(LEGACY).resources("configmaps").names("cluster-info"), events_rule()),
    ]


def namespace_role_bindings() -> list[Obj]:
    kcm, scheduler = "system:kube-controller-manager", "system:kube-scheduler"
    return [
        role_binding("system::leader-locking-kube-controller-manager", SYSTEM,
                     users(kcm) + service_accounts(SYSTEM, "kube-controller-manager", "leader-election-controller")),
        role_binding("system::leader-locking-kube-scheduler", SYSTEM,
                     users(scheduler) + service_accounts(SYSTEM, "kube-scheduler")),
        role_binding("extension-apiserver-authentication-reader", SYSTEM, users(kcm, scheduler),
                     name="system::extension-apiserver-authentication-reader"),
        role_binding("system:controller:bootstrap-signer", SYSTEM, service_accounts(SYSTEM, "bootstrap-signer")),
        role_binding("system:controller:cloud-provider", SYSTEM, service_accounts(SYSTEM, "cloud-provider")),
        role_binding("system:controller:token-cleaner", SYSTEM, service_accounts(SYSTEM, "token-cleaner")),
        role_binding("system:controller:bootstrap-signer", PUBLIC, service_accounts(SYSTEM, "bootstrap-signer")),
    ]
