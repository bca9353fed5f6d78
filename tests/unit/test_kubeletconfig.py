"""KubeletConfiguration files and flags -> KubeletConfig; eviction threshold parsing; node allocatable."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kybernetes.kubelet import cmd
from kybernetes.kubelet.cm import node_allocatable, pod_resources
from kybernetes.kubelet.config import DEFAULT_EVICTION_HARD, KubeletConfig, load_kubelet_configuration
from kybernetes.kubelet.eviction import Threshold, hard_eviction_reservation, parse_thresholds
from kybernetes.kubelet.kubeletconfig import apply_file_settings, apply_flag_settings, parse_key_values

FILE = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
cgroupsPerQOS: false
cgroupRoot: /custom
kubeReserved: {cpu: 200m, memory: 256Mi}
systemReserved: {memory: 128Mi}
evictionHard: {memory.available: 200Mi}
evictionSoft: {memory.available: 1Gi}
evictionSoftGracePeriod: {memory.available: 1m30s}
evictionPressureTransitionPeriod: 30s
evictionMaxPodGracePeriod: 20
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
imageMinimumGCAge: 5m
containerLogMaxSize: 5Mi
containerLogMaxFiles: 3
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 10s
podPidsLimit: 1024
"""


def config() -> KubeletConfig:
    return KubeletConfig(kubeconfig=Path("/kc"), node_name="n", data_dir=Path("/d"))


def test_defaults_are_the_kubelets() -> None:
    c = config()
    assert c.eviction_hard == DEFAULT_EVICTION_HARD
    assert (c.cgroups_per_qos, c.cgroup_root, c.enforce_node_allocatable) == (True, "/", ["pods"])
    assert (c.image_gc_high_threshold_percent, c.image_gc_low_threshold_percent, c.image_minimum_gc_age) == (85, 80, 120)
    assert (c.container_log_max_size, c.container_log_max_files) == ("10Mi", 5)
    assert (c.shutdown_grace_period, c.eviction_pressure_transition_period, c.pod_pids_limit) == (0, 300, -1)


def test_file_sets_every_field(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    c = config()
    apply_file_settings(c, load_kubelet_configuration(path))
    assert (c.max_pods, c.cgroups_per_qos, c.cgroup_root) == (50, False, "/custom")
    assert c.kube_reserved == {"cpu": "200m", "memory": "256Mi"} and c.system_reserved == {"memory": "128Mi"}
    assert c.eviction_hard == {"memory.available": "200Mi"}  # replaces the defaults whole, as the kubelet
    assert c.eviction_soft_grace_period == {"memory.available": "1m30s"}
    assert (c.eviction_pressure_transition_period, c.eviction_max_pod_grace_period) == (30, 20)
    assert (c.image_gc_high_threshold_percent, c.image_gc_low_threshold_percent, c.image_minimum_gc_age) == (90, 70, 300)
    assert (c.container_log_max_size, c.container_log_max_files) == ("5Mi", 3)
    assert (c.shutdown_grace_period, c.shutdown_grace_period_critical_pods, c.pod_pids_limit) == (30, 10, 1024)


def test_flags_override_the_file() -> None:
    c = config()
    apply_file_settings(c, {"maxPods": 50, "kubeReserved": {"memory": "1Gi"}})
    apply_flag_settings(c, {"max_pods": None, "kube_reserved": parse_key_values("cpu=100m")})
    assert c.max_pods == 50 and c.kube_reserved == {"cpu": "100m"}


def test_bad_field_names_itself() -> None:
    with pytest.raises(ValueError, match=r"KubeletConfiguration\.maxPods: not an integer"):
        apply_file_settings(config(), {"maxPods": "many"})


def test_key_value_flags() -> None:
    assert parse_key_values("memory.available<1Gi, nodefs.available<5%") == {
        "memory.available": "1Gi", "nodefs.available": "5%"}
    assert parse_key_values("cpu=100m,memory=1Gi") == {"cpu": "100m", "memory": "1Gi"}
    with pytest.raises(ValueError, match="malformed pair, expect string=string"):
        parse_key_values("cpu")


def test_thresholds_parse_as_the_kubelet() -> None:
    hard = parse_thresholds({"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "0%"})
    assert hard == [Threshold("memory.available", quantity=100 * 2**20),
                    Threshold("nodefs.available", percentage=pytest.approx(0.1))]  # type: ignore[arg-type]
    soft = parse_thresholds({}, {"memory.available": "1Gi"}, {"memory.available": "1m30s"})
    assert soft == [Threshold("memory.available", quantity=2**30, grace_period=90)]
    for hard_map, soft_map, grace, message in (
            ({"memory.free": "1Gi"}, {}, {}, "unsupported eviction signal memory.free"),
            ({"memory.available": "0"}, {}, {}, "eviction threshold memory.available must be positive: 0"),
            ({"nodefs.available": "150%"}, {}, {}, "eviction percentage threshold nodefs.available must be <= 100%: 150%"),
            ({}, {"memory.available": "1Gi"}, {},
             "grace period must be specified for the soft eviction threshold memory.available")):
        with pytest.raises(ValueError, match=message):
            parse_thresholds(hard_map, soft_map, grace)


def test_allocatable_less_reservations_and_hard_eviction() -> None:
    capacity = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "100Gi", "pods": "110"}
    thresholds = parse_thresholds({"memory.available": "100Mi", "nodefs.available": "10%"})
    eviction = hard_eviction_reservation(thresholds, {"memory": 4 * 2**30, "ephemeral-storage": 100 * 2**30})
    out = node_allocatable(capacity, {"cpu": "100m", "memory": "500Mi"}, {"memory": "400Mi"}, eviction)
    assert out["cpu"] == "1900m" and out["pods"] == "110"
    assert out["memory"] == "3096Mi"
    assert out["ephemeral-storage"] == str(100 * 2**30 - int(100 * 2**30 * 0.10000000149011612))
    assert node_allocatable({"memory": "1Gi"}, {"memory": "2Gi"}) == {"memory": "0"}


def pod_with(*containers: dict[str, dict[str, str]], qos: str) -> dict[str, object]:
    return {"metadata": {"uid": "u"}, "status": {"qosClass": qos},
            "spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)]}}


def test_pod_resources_as_resource_config_for_pod() -> None:
    both = pod_with({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
                    {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m", "memory": "32Mi"}}, qos="Burstable")
    r = pod_resources(both, pids_limit=100)
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit, r.pids_limit) == (153, 30000, 96 * 2**20, 100)
    # One container without limits: no pod-level quota or memory limit.
    partial = pod_with({"requests": {"cpu": "1"}, "limits": {"memory": "64Mi"}}, {"requests": {"memory": "1Mi"}},
                       qos="Burstable")
    r = pod_resources(partial)
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit, r.pids_limit) == (1024, None, None, None)
    r = pod_resources(pod_with({}, qos="BestEffort"))
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (2, None, None)


def test_bad_threshold_flag_fails_startup(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = CliRunner().invoke(cmd.command, ["--kubeconfig", str(kubeconfig), "--node-name", "n", "--data-dir",
                                              str(tmp_path), "--eviction-hard", "memory.free<1Gi"])
    assert result.exit_code == 1
    assert "failed to run Kubelet: unsupported eviction signal memory.free" in result.output
