"""Which admission plugins exist, in what order they run, which are on by default, and the flags.

kube-apiserver's ``pkg/kubeapiserver/options/plugins.go`` and the ``--enable-admission-plugins``
/ ``--disable-admission-plugins`` handling of ``k8s.io/apiserver/pkg/server/options/admission.go``.

:data:`ORDERED_PLUGINS` is Kubernetes 1.32's ``AllOrderedPlugins``, every name in its place; a
name with a module is implemented here (registered), one with ``None`` is not yet. Adding a plugin
is a module in this package, with ``NAME`` and ``new(init) -> plugin``, and its module path on
its line below. :data:`DEFAULT_ON` is Kubernetes' default-on set, :data:`KYBERNETES_DEFAULT_ON`
that plus NodeRestriction; the enabled plugins are the registered ones that are default-on or enabled by flag, minus those disabled by flag, in this
order. Naming a plugin that is not registered is an error with kube-apiserver's wording.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from kybernetes.apiserver.admission.chain import Chain, PluginInit

_PKG = "kybernetes.apiserver.admission."

ORDERED_PLUGINS: tuple[tuple[str, str | None], ...] = (
    ("AlwaysAdmit", _PKG + "admit"),
    ("NamespaceAutoProvision", None),
    ("NamespaceLifecycle", _PKG + "namespacelifecycle"),
    ("NamespaceExists", None),
    ("LimitPodHardAntiAffinityTopology", None),
    ("LimitRanger", _PKG + "limitranger"),
    ("ServiceAccount", _PKG + "serviceaccount"),
    ("NodeRestriction", _PKG + "noderestriction"),
    ("TaintNodesByCondition", None),
    ("AlwaysPullImages", None),
    ("ImagePolicyWebhook", None),
    ("PodSecurity", _PKG + "podsecurity.admission"),
    ("PodNodeSelector", None),
    ("Priority", _PKG + "priority"),
    ("DefaultTolerationSeconds", _PKG + "defaulttolerationseconds"),
    ("PodTolerationRestriction", None),
    ("EventRateLimit", None),
    ("ExtendedResourceToleration", None),
    ("DefaultStorageClass", _PKG + "defaultstorageclass"),
    ("StorageObjectInUseProtection", _PKG + "storageobjectinuseprotection"),
    ("OwnerReferencesPermissionEnforcement", None),
    ("PersistentVolumeClaimResize", _PKG + "pvcresize"),
    ("RuntimeClass", _PKG + "runtimeclass"),
    ("CertificateApproval", None),
    ("CertificateSigning", None),
    ("ClusterTrustBundleAttest", None),
    ("CertificateSubjectRestriction", _PKG + "certsubjectrestriction"),
    ("DefaultIngressClass", _PKG + "defaultingressclass"),
    ("DenyServiceExternalIPs", None),
    # Webhooks, ResourceQuota and AlwaysDeny go at the end (Kubernetes' rule).
    ("MutatingAdmissionPolicy", None),
    ("MutatingAdmissionWebhook", _PKG + "webhook.mutating"),
    ("ValidatingAdmissionPolicy", _PKG + "validatingadmissionpolicy"),
    ("ValidatingAdmissionWebhook", _PKG + "webhook.validating"),
    ("ResourceQuota", _PKG + "resourcequota"),
    ("AlwaysDeny", _PKG + "deny"),
)

DEFAULT_ON = frozenset({
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "DefaultStorageClass", "PersistentVolumeClaimResize",
    "DefaultTolerationSeconds", "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook", "ResourceQuota",
    "StorageObjectInUseProtection", "Priority", "TaintNodesByCondition", "RuntimeClass", "CertificateApproval",
    "CertificateSigning", "ClusterTrustBundleAttest", "CertificateSubjectRestriction", "DefaultIngressClass",
    "PodSecurity", "MutatingAdmissionPolicy", "ValidatingAdmissionPolicy",
})
"""Kubernetes' default-on plugins (the complement of ``DefaultOffAdmissionPlugins``)."""

KYBERNETES_DEFAULT_ON = DEFAULT_ON | {"NodeRestriction"}
"""What kybernetes runs unless told otherwise: Kubernetes' default set plus NodeRestriction, which
kube-apiserver leaves off by default but every real cluster's configuration (kubeadm's, k3s')
turns on, and which the Node authorizer relies on."""

REGISTERED: tuple[str, ...] = tuple(name for name, module in ORDERED_PLUGINS if module is not None)


def split_flag(values: Iterable[str]) -> list[str]:
    """A string-slice flag given once or more (``A,B`` and ``--flag C``): the names, in order."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def validate_flags(enable: Sequence[str], disable: Sequence[str]) -> list[str]:
    """kube-apiserver's ``AdmissionOptions.Validate``: every problem with the two flags."""
    registered = set(REGISTERED)
    problems = [f'enable-admission-plugins plugin "{n}" is unknown' for n in enable if n not in registered]
    problems += [f'disable-admission-plugins plugin "{n}" is unknown' for n in disable if n not in registered]
    both = sorted(set(enable) & set(disable))
    if both:
        problems.append(f"[{' '.join(both)}] in enable-admission-plugins and disable-admission-plugins overlapped")
    return problems


def flag_error(problems: Sequence[str]) -> str:
    """The problems as one message, as Go's ``utilerrors.NewAggregate`` prints them."""
    return problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"


def enabled_plugin_names(enable: Sequence[str] = (), disable: Sequence[str] = ()) -> list[str]:
    """The plugins to run, in order (``enabledPluginNames``); the flags must have been validated."""
    off = set(disable) - set(enable)
    on = (KYBERNETES_DEFAULT_ON | set(enable)) - off
    return [name for name in REGISTERED if name in on]


def new_chain(names: Iterable[str], init: PluginInit) -> Chain:
    """Build the named plugins, in the given order, into a :class:`Chain`."""
    modules = dict(ORDERED_PLUGINS)
    plugins = []
    for name in names:
        module = modules.get(name)
        if module is None:
            raise ValueError(f'admission plugin "{name}" is not registered')
        plugins.append((name, importlib.import_module(module).new(init)))
    return Chain(plugins)
