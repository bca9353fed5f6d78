"""``spec.conversion`` of a CustomResourceDefinition, validated with Kubernetes' paths and wording."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.registry.crds import crd_strategy
from kybernetes.pki import PKI


def crd(conversion: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object"}}
    out: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.conv.example.com"},
        "spec": {"group": "conv.example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema}], **spec}}
    if conversion is not None:
        out["spec"]["conversion"] = conversion
    return out


def webhook(**fields: Any) -> dict[str, Any]:
    return {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                                               "clientConfig": {"url": "https://conv.example/convert"}, **fields}}


def messages(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    errs = crd_strategy.validate(obj) if old is None else crd_strategy.validate_update(obj, old)
    return [str(e) for e in errs]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    return base64.b64encode(PKI.load_or_create(Path(tmp_path_factory.mktemp("ca")) / "ca").ca_pem).decode()


def test_valid_stanzas(bundle: str) -> None:
    assert messages(crd({"strategy": "None"})) == []
    assert messages(crd(webhook())) == []
    svc = {"service": {"name": "conv", "namespace": "ns", "port": 8443, "path": "/convert"}, "caBundle": bundle}
    assert messages(crd(webhook(clientConfig=svc, conversionReviewVersions=["v1beta1", "v2"]))) == []


@pytest.mark.parametrize(("conversion", "spec", "expected"), [
    ({"strategy": "Webhook"}, {}, [
        "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
        "spec.conversion.conversionReviewVersions: Required value"]),
    ({"strategy": "Sideways"}, {}, [
        'spec.conversion.strategy: Unsupported value: "Sideways": supported values: "None", "Webhook"']),
    ({"strategy": ""}, {}, ["spec.conversion.strategy: Required value"]),
    (webhook(conversionReviewVersions=["v3", "v3", "V4"]), {}, [
        'spec.conversion.conversionReviewVersions[1]: Invalid value: "v3": duplicate version',
        'spec.conversion.conversionReviewVersions[2]: Invalid value: "V4": a DNS-1035 label must consist of lower '
        "case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        'spec.conversion.conversionReviewVersions: Invalid value: []string{"v3", "v3", "V4"}: must include at least '
        "one of v1, v1beta1"]),
    (webhook(clientConfig={}), {}, [
        "spec.conversion.webhookClientConfig: Required value: exactly one of url or service is required"]),
    (webhook(clientConfig={"url": "http://conv.example/c?x=1"}), {}, [
        'spec.conversion.webhookClientConfig.url: Invalid value: "http": \'https\' is the only allowed URL scheme; '
        "desired format: https://host[/path]",
        'spec.conversion.webhookClientConfig.url: Invalid value: "x=1": query parameters are not permitted in the '
        "URL"]),
    (webhook(clientConfig={"service": {"namespace": "ns", "port": 0}}), {}, [
        "spec.conversion.webhookClientConfig.service.name: Required value",
        "spec.conversion.webhookClientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 "
        "and 65535, inclusive"]),
    (webhook(clientConfig={"url": "https://c.example", "caBundle": base64.b64encode(b"no").decode()}), {}, [
        "spec.conversion.webhookClientConfig.caBundle: Invalid value: []byte{0x6e, 0x6f}: data does not contain "
        "any valid RSA or ECDSA certificates"]),
    ({"strategy": "None", "webhook": {"clientConfig": {"url": "https://c.example"},
                                      "conversionReviewVersions": ["v1"]}}, {}, [
        "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
        "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook"]),
    (webhook(), {"preserveUnknownFields": True}, [
        'spec.conversion.strategy: Invalid value: "Webhook": must be None if spec.preserveUnknownFields is true']),
])
def test_invalid_stanzas(conversion: dict[str, Any], spec: dict[str, Any], expected: list[str]) -> None:
    got = [m for m in messages(crd(conversion, **spec)) if m.startswith("spec.conversion")]
    assert got == expected


def test_update_keeps_what_the_stored_object_already_had() -> None:
    bad_bundle = base64.b64encode(b"not a certificate").decode()
    old = crd(webhook(conversionReviewVersions=["v9"],
                      clientConfig={"url": "https://c.example", "caBundle": bad_bundle}))
    new = copy.deepcopy(old)
    new["spec"]["versions"][0]["served"] = True
    assert [m for m in messages(new, old) if m.startswith("spec.conversion")] == []
    # From a stored object with a known version, an unknown-only list is refused again.
    fixed = crd(webhook())
    regress = crd(webhook(conversionReviewVersions=["v9"]))
    assert [m for m in messages(regress, fixed) if m.startswith("spec.conversion")] == [
        'spec.conversion.conversionReviewVersions: Invalid value: []string{"v9"}: must include at least one of v1, '
        "v1beta1"]
