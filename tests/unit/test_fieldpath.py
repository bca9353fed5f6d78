"""kybernetes.api.fieldpath: the downward API's field paths and resource values."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.fieldpath import container_resource_value, field_value, format_map, go_quote

POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                 "labels": {"b": "2", "a": "x\"y"}, "annotations": {"note": "héllo\n"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
    "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
               "hostIP": "192.168.1.2", "hostIPs": [{"ip": "192.168.1.2"}]},
}


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "web"), ("metadata.namespace", "prod"), ("metadata.uid", "u-1"),
    ("spec.nodeName", "n1"), ("spec.serviceAccountName", "sa"),
    ("status.podIP", "10.0.0.5"), ("status.podIPs", "10.0.0.5,fd00::5"),
    ("status.hostIP", "192.168.1.2"), ("status.hostIPs", "192.168.1.2"),
    ("metadata.labels", 'a="x\\"y"\nb="2"'),
    ("metadata.annotations", 'note="héllo\\n"'),
    ("metadata.labels['b']", "2"), ('metadata.labels["a"]', 'x"y'), ("metadata.labels['missing']", ""),
    ("metadata.annotations['note']", "héllo\n"),
])
def test_field_value(path: str, want: str) -> None:
    assert field_value(POD, path) == want


def test_ips_the_caller_knows_win_over_the_status() -> None:
    assert field_value(POD, "status.podIP", pod_ips=["10.9.9.9"]) == "10.9.9.9"
    assert field_value(POD, "status.podIPs", pod_ips=["10.9.9.9"]) == "10.9.9.9"
    assert field_value(POD, "status.hostIP", host_ips=[]) == ""
    assert field_value({"status": {"podIP": "10.1.1.1"}}, "status.podIPs") == "10.1.1.1"


@pytest.mark.parametrize("path", ["metadata.generation", "spec.containers", "metadata.labels[b]", ""])
def test_unsupported_paths_raise(path: str) -> None:
    with pytest.raises(ValueError, match="unsupported fieldPath"):
        field_value(POD, path)


CONTAINER = {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                           "limits": {"cpu": "1500m", "memory": "1Gi", "ephemeral-storage": "2G"}}}
ALLOCATABLE = {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "hugepages-2Mi": "0"}


@pytest.mark.parametrize(("resource", "divisor", "want"), [
    ("requests.cpu", None, "1"),  # rounded up to a whole core
    ("requests.cpu", "1m", "250"),
    ("requests.cpu", "0", "1"),  # a zero divisor means 1
    ("limits.cpu", "1", "2"),
    ("requests.memory", None, str(64 * 1024 * 1024)),
    ("requests.memory", "1Mi", "64"),
    ("limits.memory", "1M", "1074"),  # 1Gi in MB, rounded up
    ("limits.ephemeral-storage", "1G", "2"),
    ("requests.ephemeral-storage", None, "0"),  # no request: 0
    ("limits.hugepages-2Mi", None, "0"),
])
def test_container_resource_value(resource: str, divisor: str | None, want: str) -> None:
    ref = {"resource": resource} if divisor is None else {"resource": resource, "divisor": divisor}
    assert container_resource_value(CONTAINER, ref, ALLOCATABLE) == want


def test_an_unset_limit_is_the_node_allocatable() -> None:
    assert container_resource_value({}, {"resource": "limits.cpu", "divisor": "1m"}, ALLOCATABLE) == "4000"
    assert container_resource_value({}, {"resource": "limits.memory", "divisor": "1Gi"}, ALLOCATABLE) == "8"
    with pytest.raises(ValueError, match="unsupported resource"):
        container_resource_value({}, {"resource": "cpu"}, ALLOCATABLE)


@pytest.mark.parametrize(("text", "quoted"), [
    ("plain", '"plain"'), ('a"b\\c', '"a\\"b\\\\c"'), ("tab\there", '"tab\\there"'), ("\x01", '"\\x01"'),
    ("é", '"é"'), ("\u200b", '"\\u200b"'),
])
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted
    assert format_map({"k": text}) == f"k={quoted}"
