"""KubeSchedulerConfiguration loading and profile resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from kybernetes.scheduler import config as cfg

YAML = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podInitialBackoffSeconds: 2
leaderElection: {leaderElect: true, resourceName: my-sched, leaseDuration: 20s}
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    filter:
      disabled: [{name: NodePorts}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
"""


def test_defaults() -> None:
    p = cfg.build_profile({})
    assert [n for n, _ in p.points["filter"]] == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit",
        "VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "PodTopologySpread", "InterPodAffinity"]
    assert [n for n, _ in p.points["pre_bind"]] == ["VolumeBinding"]
    assert [n for n, _ in p.points["reserve"]] == ["VolumeBinding"]
    assert dict(p.points["score"]) == {
        "TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1, "PodTopologySpread": 2,
        "InterPodAffinity": 2, "NodeResourcesBalancedAllocation": 1, "ImageLocality": 1}
    assert [n for n, _ in p.points["post_filter"]] == ["DefaultPreemption"]
    assert [n for n, _ in p.points["bind"]] == ["DefaultBinder"]


def test_load_yaml(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(YAML)
    c = cfg.load(f)
    assert c.percentage_of_nodes_to_score == 30
    assert c.pod_initial_backoff == 2
    assert c.leader_elect and c.lease_name == "my-sched" and c.lease_duration == 20
    bp = c.profile("bin-packer")
    assert bp is not None
    assert dict(bp.points["score"])["NodeResourcesFit"] == 5
    assert "NodeResourcesBalancedAllocation" not in dict(bp.points["score"])
    assert "NodePorts" not in dict(bp.points["filter"])
    assert "NodePorts" in dict(bp.points["pre_filter"])
    assert bp.plugin_args["NodeResourcesFit"]["scoringStrategy"]["type"] == "MostAllocated"


def test_multipoint_disable_all_and_errors() -> None:
    p = cfg.build_profile({"plugins": {"multiPoint": {"disabled": [{"name": "*"}],
                                                      "enabled": [{"name": "NodeName"}, {"name": "DefaultBinder"}]}}})
    assert dict(p.points["filter"]) == {"NodeName": 1}
    assert p.points["score"] == []
    with pytest.raises(ValueError):
        cfg.build_profile({"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}})
    with pytest.raises(ValueError):
        cfg.from_dict({"kind": "Other"})
