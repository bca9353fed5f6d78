"""Custom resources: what apiextensions-apiserver does with a CRD's ``openAPIV3Schema``.

A custom object goes through three steps on every write, each driven by the schema of the CRD
version it is written in:

1. :func:`prune_custom_object` drops fields the schema does not declare (unless a node says
   ``x-kubernetes-preserve-unknown-fields``). The dropped paths are returned: the API server turns
   them into ``unknown field "spec.foo"`` errors under ``fieldValidation=Strict`` and into
   warnings under ``Warn``.
2. :func:`default_custom_object` fills ``default`` values where a field is absent (or null but
   not nullable), top down, so defaults inside defaulted objects apply too.
3. :func:`validate_custom_object` checks the result against the OpenAPI v3 value validations and
   reports errors in the words kube-apiserver uses (``spec.replicas in body should be less than
   or equal to 10``), as :class:`~kybernetes.api.validation.FieldError` so the generic store
   makes one 422 of them.

The CRD itself is validated by :func:`validate_crd` (names, versions, storage version, printer
columns, scale paths) including the "structural schema" rules: every node says its type, arrays
say their items, logical junctors (allOf/anyOf/oneOf/not) only add value validations. A
structural schema is what makes pruning and defaulting well defined, which is why Kubernetes
refuses CRDs without one. :func:`default_crd` fills the defaults the API server applies.

Schemas are plain dicts exactly as written in the CRD (no ``$ref``; OpenAPI 3.0 ``nullable`` and
boolean ``exclusiveMaximum``). Everything here is pure and never raises on malformed input: a
node that is not a dict is treated as "no schema".

The package, one module per step: :mod:`.pruning`, :mod:`.defaulting`, :mod:`.validation` for
custom objects, :mod:`.crd` and :mod:`.schema_rules` for the CRD itself, over the JSON value
helpers of :mod:`.values`. This module is the public surface callers use
(``from kybernetes.api import structural``).
"""

from __future__ import annotations

from kybernetes.api.structural.crd import default_crd, storage_version, validate_crd, validate_names
from kybernetes.api.structural.defaulting import default_custom_object
from kybernetes.api.structural.pruning import prune_custom_object
from kybernetes.api.structural.schema_rules import structural_errors
from kybernetes.api.structural.validation import validate_custom_object
from kybernetes.api.structural.values import json_type

__all__ = [
    "default_crd",
    "default_custom_object",
    "json_type",
    "prune_custom_object",
    "storage_version",
    "structural_errors",
    "validate_crd",
    "validate_custom_object",
    "validate_names",
]
