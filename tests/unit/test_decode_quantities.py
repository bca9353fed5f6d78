"""Quantities as kube-apiserver decodes them: canonical on the way in, ResourceLists to thousandths."""

from __future__ import annotations

from kybernetes.api import decode, schema
from kybernetes.api.quantity import ERR_FORMAT_WRONG


def test_quantities_are_stored_in_their_canonical_form() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "x", "resources": {
            "requests": {"cpu": "0.5", "memory": "1024Mi", "ephemeral-storage": 2},
            "limits": {"cpu": "1n"}}}],
        "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1536Mi", "medium": "Memory"}}],
        "overhead": {"cpu": "0.25"}}}
    assert decode.check(pod, schema.for_kind("", "v1", "Pod")).type_errors == []
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "2"},
                   "limits": {"cpu": "1m"}}  # a ResourceList rounds up to thousandths, as defaulting does
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "1536Mi"
    assert pod["spec"]["overhead"] == {"cpu": "250m"}


def test_a_malformed_quantity_is_gos_decoding_error() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"requests": {"cpu": "lots"}}}]}}
    assert decode.check(pod, schema.for_kind("", "v1", "Pod")).type_errors == [ERR_FORMAT_WRONG]
