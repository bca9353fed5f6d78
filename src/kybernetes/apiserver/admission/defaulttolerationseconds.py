"""DefaultTolerationSeconds (Kubernetes' ``plugin/pkg/admission/defaulttolerationseconds``, on by
default; mutating, pod CREATE and UPDATE).

A pod that does not tolerate the ``node.kubernetes.io/not-ready`` or ``.../unreachable``
``NoExecute`` taints (a toleration with that key or no key, and that effect or none) gets a
toleration of each for 300 seconds: it is evicted five minutes after its node goes away. On
updates too, so that a PUT of the pod as its client first wrote it keeps them.
"""

from __future__ import annotations

from typing import Any

from kybernetes.apiserver.admission.chain import CREATE, UPDATE, Attributes, Handler, PluginInit

NAME = "DefaultTolerationSeconds"

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def add_default_tolerations(spec: dict[str, Any]) -> None:
    """Tolerate not-ready and unreachable for 300 s unless the pod already tolerates them."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for key in (NOT_READY, UNREACHABLE):
        tolerated = any(
            isinstance(t, dict) and t.get("key", "") in ("", key) and t.get("effect", "") in ("", "NoExecute")
            for t in tolerations
        )
        if not tolerated:
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


class DefaultTolerationSeconds(Handler):
    operations = frozenset({CREATE, UPDATE})
    resources = frozenset({("", "pods")})

    async def admit(self, attrs: Attributes) -> None:
        spec = (attrs.object or {}).get("spec")
        if attrs.subresource or not isinstance(spec, dict):
            return
        add_default_tolerations(spec)


def new(init: PluginInit) -> DefaultTolerationSeconds:
    return DefaultTolerationSeconds()
