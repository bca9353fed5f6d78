"""Printers of ``admissionregistration.k8s.io/v1`` MutatingWebhookConfiguration and
ValidatingWebhookConfiguration (Kubernetes' ``printMutatingWebhook`` / ``printValidatingWebhook``:
NAME, WEBHOOKS, AGE)."""

from __future__ import annotations

from kybernetes.apiserver.printers._common import Printer, age, age_col, col, name_col, name_of

WEBHOOK_CONFIGURATION = Printer(
    (
        name_col(),
        col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
        age_col(),
    ),
    lambda o, now: [
        name_of(o),
        len(o.get("webhooks") or []),
        age(o, now),
    ],
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): WEBHOOK_CONFIGURATION,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): WEBHOOK_CONFIGURATION,
}
