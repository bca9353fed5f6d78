"""Printer of ``node.k8s.io/v1`` RuntimeClass, as Kubernetes' ``printRuntimeClass``."""

from __future__ import annotations

from kybernetes.apiserver.printers._common import Printer, age, age_col, col, name_col, name_of

RUNTIME_CLASS = Printer(
    (name_col(), col("Handler", description="The CRI handler that runs pods of this class."), age_col()),
    lambda rc, now: [name_of(rc), str(rc.get("handler") or ""), age(rc, now)],
)

BY_GROUP_KIND = {("node.k8s.io", "RuntimeClass"): RUNTIME_CLASS}
