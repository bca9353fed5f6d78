"""Validation of a CustomResourceDefinition's ``spec.conversion`` (``validateCustomResourceConversion``).

Kubernetes validates the internal form of the CRD, so the paths it names are the internal ones:
``spec.conversion.webhookClientConfig`` (v1's ``webhook.clientConfig``) and
``spec.conversion.conversionReviewVersions`` (v1's ``webhook.conversionReviewVersions``).

* ``strategy`` is required, ``None`` or ``Webhook``; not ``Webhook`` when
  ``spec.preserveUnknownFields`` is true;
* ``Webhook`` needs a client config with exactly one of ``url`` (https, as admission webhooks'
  URLs) and ``service`` (name, namespace, port, path), a ``caBundle`` that holds PEM certificates,
  and ``conversionReviewVersions`` (unique DNS-1035 labels, one of ``v1``/``v1beta1`` among them);
* ``None`` takes neither.

On update, as in Kubernetes, an unknown review version or an unusable caBundle that the stored
object already had is not refused again, so that such objects stay updatable.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list
from kybernetes.api.validation.govalues import go_bytes
from kybernetes.apiserver.registry.admissionregistration import (
    REVIEW_VERSIONS,
    validate_review_versions,
    validate_service,
    validate_url,
)

STRATEGIES = ("None", "Webhook")
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n(.*?)-----END CERTIFICATE-----", re.S)


def validate_conversion(crd: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """``spec.conversion`` of ``crd`` (``old``: the stored CRD on update)."""
    spec = as_dict(crd.get("spec"))
    conv = spec.get("conversion")
    if not isinstance(conv, dict):
        return []
    p = Path("spec", "conversion")
    strategy = conv.get("strategy") or ""
    errs: list[FieldError] = []
    if strategy != "None" and strategy and spec.get("preserveUnknownFields") is True:
        errs.append(v.invalid(p.child("strategy"), strategy, "must be None if spec.preserveUnknownFields is true"))
    if not strategy:
        errs.append(v.required(p.child("strategy")))
    elif strategy not in STRATEGIES:
        errs.append(v.not_supported(p.child("strategy"), strategy, STRATEGIES))
    webhook = as_dict(conv.get("webhook"))
    client_config, versions = webhook.get("clientConfig"), as_list(webhook.get("conversionReviewVersions"))
    if strategy != "Webhook":
        if client_config is not None:
            errs.append(v.forbidden(p.child("webhookClientConfig"), "should not be set when strategy is not set to "
                                                                    "Webhook"))
        if versions:
            errs.append(v.forbidden(p.child("conversionReviewVersions"), "should not be set when strategy is not "
                                                                         "set to Webhook"))
        return errs
    old_webhook = as_dict(as_dict(as_dict(as_dict(old).get("spec")).get("conversion")).get("webhook"))
    if client_config is None:
        errs.append(v.required(p.child("webhookClientConfig"), "required when strategy is set to Webhook"))
    else:
        old_bundle = as_dict(old_webhook.get("clientConfig")).get("caBundle")
        allow_bad_bundle = old is not None and bool(old_bundle) and bool(_ca_bundle_errors(old_bundle, p))
        errs += _client_config(as_dict(client_config), p.child("webhookClientConfig"), allow_bad_bundle)
    old_versions = as_list(old_webhook.get("conversionReviewVersions"))
    require_known = old is None or not old_versions or bool(set(old_versions) & set(REVIEW_VERSIONS))
    return errs + validate_review_versions(versions, p.child("conversionReviewVersions"), require_known=require_known,
                                          required_detail="")


def _client_config(cc: dict[str, Any], p: Path, allow_bad_bundle: bool) -> list[FieldError]:
    url, service = cc.get("url"), cc.get("service")
    if (url is None) == (service is None):
        errs = [v.required(p, "exactly one of url or service is required")]
    elif url is not None:
        errs = validate_url(url, p.child("url"))
    else:
        errs = validate_service(as_dict(service), p.child("service"))
    bundle = cc.get("caBundle")
    if bundle and not allow_bad_bundle:
        errs += _ca_bundle_errors(bundle, p.child("caBundle"))
    return errs


def _ca_bundle_errors(bundle: Any, p: Path) -> list[FieldError]:
    """``webhook.ValidateCABundle``: the bundle (base64 in JSON) must hold PEM certificates."""
    try:
        data = base64.b64decode(str(bundle), validate=True)
    except (binascii.Error, ValueError):
        return []  # not base64: decoding the request already refused it
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        return [v.invalid(p, go_bytes(data), "data does not contain any valid RSA or ECDSA certificates")]
    for block in blocks:
        try:
            x509.load_der_x509_certificate(base64.b64decode(b"".join(block.split())))
        except (ValueError, binascii.Error):
            return [v.invalid(p, go_bytes(data), "x509: malformed certificate")]
    return []


__all__ = ["REVIEW_VERSIONS", "STRATEGIES", "validate_conversion"]
