"""Printers for ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
(``admissionregistration.k8s.io``), as Kubernetes' ``printValidatingAdmissionPolicy`` and
``printValidatingAdmissionPolicyBinding``: the number of validations and the param kind
(``<unset>`` without one); the policy name and the param reference (``namespace/name``, ``*/name``
without a namespace, the selector for a selector).
"""

from __future__ import annotations

from datetime import datetime

from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dmap,
    name_col,
    name_of,
)

_UNSET = "<unset>"


def _policy_cells(p: JSON, now: datetime) -> Cells:
    spec = dmap(p, "spec")
    kind = spec.get("paramKind")
    param = f"{kind.get('apiVersion')}/{kind.get('kind')}" if isinstance(kind, dict) else _UNSET
    validations = spec.get("validations")
    return [name_of(p), len(validations) if isinstance(validations, list) else 0, param, age(p, now)]


def _binding_cells(b: JSON, now: datetime) -> Cells:
    spec = dmap(b, "spec")
    ref = spec.get("paramRef")
    param = _UNSET
    if isinstance(ref, dict):
        if ref.get("name"):
            param = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif isinstance(ref.get("selector"), dict):
            try:
                param = str(from_label_selector_object(ref["selector"]))
            except Exception:
                param = _UNSET
    return [name_of(b), str(spec.get("policyName") or ""), param, age(b, now)]


VALIDATING_ADMISSION_POLICY = Printer(
    (
        name_col(),
        col("Validations", "integer",
            "Validations indicates the number of validation rules defined in this configuration"),
        col("ParamKind", description="ParamKind specifies the kind of resources used to parameterize this policy"),
        age_col(),
    ),
    _policy_cells,
)

VALIDATING_ADMISSION_POLICY_BINDING = Printer(
    (
        name_col(),
        col("PolicyName", description="PolicyName indicates the policy definition which the policy binding binded to"),
        col("ParamRef", description="ParamRef indicates the param resource which sets the configration param"),
        age_col(),
    ),
    _binding_cells,
)

BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): VALIDATING_ADMISSION_POLICY,
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): VALIDATING_ADMISSION_POLICY_BINDING,
}
