"""The ``apps/v1`` group: one module per resource (deployments, replicasets, statefulsets,
daemonsets, controllerrevisions) and ``common.py``; this package exports the group's
:data:`STRATEGIES` and :data:`SUBRESOURCES` (``scale``).

Every workload here wraps a pod template and a selector that must pick that template's pods, so
the shared pieces are plain functions (``common.py``, ``api/validation/fields.py``):

* :func:`validate_selector_and_template` is ``ValidatePodTemplateSpecForReplicaSet`` and its
  siblings: selector required and not empty, template labels matched by it, the template a valid
  PodTemplateSpec whose pods restart ``Always`` and carry no ``activeDeadlineSeconds``.
* :func:`validate_int_or_percent` / :func:`int_or_percent_value` are ``ValidatePositiveIntOrPercent``
  and ``getIntOrPercentValue``; the policy group's PodDisruptionBudget reuses them.
* :func:`validate_nonneg` is ``ValidateNonnegativeField`` (and tolerates a missing field).

Defaults follow ``pkg/apis/apps/v1/defaults.go`` exactly, so a ``kubectl create deployment``
against kybernetes returns the same object a real cluster returns. A few things a real cluster
does outside defaulting are done here too, because clients see them:

* A new object's ``status`` is the zero value its Go type serialises to (``{"replicas": 0}`` for
  a ReplicaSet, ``{}`` for a Deployment), since that is what the create response contains.
* A Deployment's generation also moves when only its annotations change through the main resource
  (they are copied to its ReplicaSets; the controller writes its revision annotation through
  ``/status``, which never moves it); a DaemonSet keeps the ``deprecated.daemonset.template.generation`` annotation that
  the v1 API uses to carry the internal ``templateGeneration``.
* A StatefulSet's volume claim templates get ``apiVersion``/``kind`` (the v1 conversion sets them),
  ``volumeMode: Filesystem`` and ``status.phase: Pending`` (PVC defaults).

Selector immutability is checked in ``validate_update`` for every kind that has one, as Kubernetes
does for requests to ``apps/v1`` (the only version served here).
"""

from __future__ import annotations

from collections.abc import Callable

from kybernetes.apiserver.registry.apps.common import spec_of, validate_selector_and_template
from kybernetes.apiserver.registry.apps.controllerrevisions import ControllerRevisionStrategy
from kybernetes.apiserver.registry.apps.daemonsets import DaemonSetStrategy
from kybernetes.apiserver.registry.apps.deployments import DeploymentStrategy
from kybernetes.apiserver.registry.apps.replicasets import ReplicaSetStrategy
from kybernetes.apiserver.registry.apps.statefulsets import StatefulSetStrategy
from kybernetes.apiserver.registry.rest import REPLICAS_PATHS, ScaleREST, SubresourceREST
from kybernetes.apiserver.registry.strategy import Strategy

STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("apps", "Deployment"): DeploymentStrategy(),
    ("apps", "ReplicaSet"): ReplicaSetStrategy(),
    ("apps", "StatefulSet"): StatefulSetStrategy(),
    ("apps", "DaemonSet"): DaemonSetStrategy(),
    ("apps", "ControllerRevision"): ControllerRevisionStrategy(),
}

SUBRESOURCES: dict[tuple[str, str], Callable[[], dict[str, SubresourceREST]]] = {
    ("apps", plural): lambda: {"scale": ScaleREST(REPLICAS_PATHS)}
    for plural in ("deployments", "replicasets", "statefulsets")
}
"""(group, plural) -> the kind-specific subresources of its REST object."""

__all__ = ["STRATEGIES", "SUBRESOURCES", "spec_of", "validate_selector_and_template"]
