"""The kubelet's stats machinery: cgroup files, the Summary API's JSON, the resource metrics, the
kubelet's authorization attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.kubelet import cgroups
from kybernetes.kubelet.auth import User, certificate_user, is_privileged, request_attributes
from kybernetes.kubelet.resourcemetrics import cadvisor_registry, resource_registry
from kybernetes.kubelet.stats import ContainerSample, RateCache, Snapshot, summary_json

MEMORY_STAT_V1 = """cache 1000
rss 2000
total_cache 52428800
total_rss 104857600
total_inactive_file 20971520
total_active_file 31457280
total_pgfault 900
total_pgmajfault 7
"""


def test_flat_keyed_and_malformed() -> None:
    assert cgroups.parse_flat_keyed("usage_usec 12\nuser_usec 5\n\n") == {"usage_usec": 12, "user_usec": 5}
    with pytest.raises(ValueError):
        cgroups.parse_flat_keyed("usage_usec twelve\n")


def test_v1_working_set_is_usage_less_inactive_file() -> None:
    u = cgroups.usage_v1("209715200\n", MEMORY_STAT_V1, "123456789\n")
    assert u.cpu_ns == 123456789
    assert u.memory_usage == 209715200
    assert u.working_set == 209715200 - 20971520
    assert (u.rss, u.page_faults, u.major_page_faults) == (104857600, 900, 7)


def test_working_set_never_negative() -> None:
    assert cgroups.working_set(100, 500) == 0


def test_v2_root_from_meminfo() -> None:
    meminfo = "MemTotal:       16000 kB\nMemFree:         4000 kB\nInactive(file):  1000 kB\nAnonPages: 3000 kB\n"
    u = cgroups.usage_v2_root(meminfo, "pgfault 11\npgmajfault 2\n", cpu_ns=5)
    assert u.memory_usage == 12000 * 1024
    assert u.working_set == 11000 * 1024
    assert (u.rss, u.page_faults, u.major_page_faults, u.cpu_ns) == (3000 * 1024, 11, 2, 5)


def test_proc_stat_busy_time() -> None:
    import os

    hz = os.sysconf("SC_CLK_TCK")
    text = "cpu  100 20 30 5000 40 1 2 3 0 0\ncpu0 50 10 15 2500 20 0 1 1 0 0\n"
    assert cgroups.parse_proc_stat_cpu_ns(text) == (100 + 20 + 30 + 1 + 2 + 3) * 1_000_000_000 // hz
    with pytest.raises(ValueError):
        cgroups.parse_proc_stat_cpu_ns("intr 5\n")


def test_node_usage_reads_a_v1_tree(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpuacct").mkdir()
    (tmp_path / "memory" / "memory.usage_in_bytes").write_text("300\n")
    (tmp_path / "memory" / "memory.stat").write_text("total_inactive_file 100\ntotal_rss 50\n")
    (tmp_path / "cpuacct" / "cpuacct.usage").write_text("42\n")
    u = cgroups.node_usage(tmp_path, tmp_path)
    assert (u.cpu_ns, u.memory_usage, u.working_set, u.rss) == (42, 300, 200, 50)


def test_node_usage_reads_a_v2_tree(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 7\nuser_usec 3\n")
    (tmp_path / "meminfo").write_text("MemTotal: 10 kB\nMemFree: 4 kB\nInactive(file): 1 kB\n")
    (tmp_path / "vmstat").write_text("pgfault 1\n")
    u = cgroups.node_usage(tmp_path, tmp_path)
    assert (u.cpu_ns, u.memory_usage, u.working_set) == (7000, 6 * 1024, 5 * 1024)


def test_rate_cache() -> None:
    rates = RateCache()
    assert rates.rate("c", 10.0, 1_000_000_000) is None  # first sample: no rate
    assert rates.rate("c", 12.0, 2_000_000_000) == 500_000_000  # half a core
    assert rates.rate("c", 12.0, 3_000_000_000) is None  # no time passed
    assert rates.rate("c", 13.0, 1) is None  # a counter that went back (a new container)
    rates.keep(set())
    assert rates.rate("c", 20.0, 5) is None


def _container(name: str, pod: str, cpu_ns: int, ws: int, nano: int | None = 100) -> ContainerSample:
    return ContainerSample(id=f"id-{pod}-{name}", name=name, pod=pod, namespace="default", pod_uid=f"uid-{pod}",
                           image="docker.io/library/busybox:1", start=1_700_000_000.0, time=1_700_000_100.0,
                           cpu_ns=cpu_ns, nano_cores=nano, working_set=ws, usage=ws + 10, rss=ws // 2,
                           page_faults=1, major_page_faults=0)


def _snapshot() -> Snapshot:
    node = cgroups.Usage(cpu_ns=9_000_000_000, memory_usage=3000, working_set=2000, rss=1000, page_faults=5,
                         major_page_faults=1)
    return Snapshot(node_name="n1", node_start=1_600_000_000.0, time=1_700_000_100.0, node=node,
                    node_nano_cores=None, memory_capacity=10_000,
                    containers=[_container("b", "web", 2_000_000_000, 300),
                                _container("a", "web", 1_000_000_000, 200, nano=None),
                                _container("main", "db", 500_000_000, 50)])


def test_summary_json() -> None:
    doc = summary_json(_snapshot(), {"uid-web": 1_699_999_000.0})
    node = doc["node"]
    assert node["nodeName"] == "n1" and node["startTime"] == "2020-09-13T12:26:40Z"
    assert node["cpu"] == {"time": "2023-11-14T22:15:00Z", "usageCoreNanoSeconds": 9_000_000_000}
    assert node["memory"]["availableBytes"] == 8000 and node["memory"]["workingSetBytes"] == 2000
    assert [p["podRef"]["name"] for p in doc["pods"]] == ["db", "web"]
    web = doc["pods"][1]
    assert web["podRef"] == {"name": "web", "namespace": "default", "uid": "uid-web"}
    assert web["startTime"] == "2023-11-14T21:56:40Z"  # the pod's status.startTime
    assert [c["name"] for c in web["containers"]] == ["a", "b"]
    assert web["cpu"]["usageCoreNanoSeconds"] == 3_000_000_000
    assert "usageNanoCores" not in web["cpu"]  # one container has no rate yet: the pod has none
    assert web["memory"]["workingSetBytes"] == 500 and web["memory"]["usageBytes"] == 520
    assert web["containers"][1]["cpu"]["usageNanoCores"] == 100
    assert doc["pods"][0]["cpu"]["usageNanoCores"] == 100
    assert doc["pods"][0]["startTime"] == "2023-11-14T22:13:20Z"  # no status: its first container's start


def _families(registry: object) -> dict[str, list[object]]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_resource_metrics() -> None:
    fam = _families(resource_registry(_snapshot()))
    node_cpu = fam["node_cpu_usage_seconds"][0]
    assert node_cpu.name == "node_cpu_usage_seconds_total" and node_cpu.value == 9.0  # type: ignore[attr-defined]
    assert node_cpu.timestamp == 1_700_000_100.0  # type: ignore[attr-defined]
    cpu = {(s.labels["container"], s.labels["pod"], s.labels["namespace"]): s.value  # type: ignore[attr-defined]
           for s in fam["container_cpu_usage_seconds"]}
    assert cpu[("b", "web", "default")] == 2.0
    pods = {s.labels["pod"]: s.value for s in fam["pod_memory_working_set_bytes"]}  # type: ignore[attr-defined]
    assert pods == {"db": 50, "web": 500}
    assert fam["scrape_error"][0].value == 0  # type: ignore[attr-defined]
    failed = _families(resource_registry(None))
    assert set(failed) == {"scrape_error", "resource_scrape_error"}
    assert failed["scrape_error"][0].value == 1  # type: ignore[attr-defined]


def test_cadvisor_metrics() -> None:
    fam = _families(cadvisor_registry(_snapshot()))
    cpu = fam["container_cpu_usage_seconds"]
    assert sorted(cpu[0].labels) == ["container", "cpu", "id", "image", "name", "namespace", "pod"]  # type: ignore[attr-defined]
    assert cpu[0].labels["id"] == "/" and cpu[0].value == 9.0  # type: ignore[attr-defined]
    main = next(s for s in cpu if s.labels["pod"] == "db")  # type: ignore[attr-defined]
    assert main.labels == {"container": "main", "cpu": "total", "id": "/k8s.io/id-db-main",  # type: ignore[attr-defined]
                           "image": "docker.io/library/busybox:1", "name": "id-db-main", "namespace": "default",
                           "pod": "db"}


@pytest.mark.parametrize(("method", "path", "verb", "subresource"), [
    ("GET", "/stats/summary", "get", "stats"),
    ("GET", "/stats", "get", "stats"),
    ("GET", "/metrics", "get", "metrics"),
    ("GET", "/metrics/cadvisor", "get", "metrics"),
    ("GET", "/metricsfoo", "get", "proxy"),
    ("GET", "/logs/syslog", "get", "log"),
    ("POST", "/exec/ns/pod/c", "create", "proxy"),
    ("GET", "/pods", "get", "proxy"),
    ("DELETE", "/x", "delete", "proxy"),
])
def test_request_attributes(method: str, path: str, verb: str, subresource: str) -> None:
    attrs = request_attributes(method, path, "n1")
    assert attrs.resource_attributes() == {"verb": verb, "group": "", "version": "v1", "resource": "nodes",
                                           "subresource": subresource, "name": "n1"}


def test_forbidden_words_and_certificate_users() -> None:
    user = certificate_user({"subject": ((("commonName", "alice"),), (("organizationName", "devs"),))})
    assert user == User("alice", ("devs", "system:authenticated"))  # the authenticated-group adder's
    assert request_attributes("GET", "/stats/summary", "n1").forbidden(user) == (
        "Forbidden (user=alice, verb=get, resource=nodes, subresource=stats)")
    assert not is_privileged(user)
    assert is_privileged(User("kube-apiserver-kubelet-client"))
    assert is_privileged(User("bob", ("system:masters",)))
