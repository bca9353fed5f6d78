"""The housekeeping settings are refused as the kubelet's ValidateKubeletConfiguration refuses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kybernetes.kubelet.config import KubeletConfig
from kybernetes.kubelet.housekeeping import validate, validation_errors


def config(**fields: object) -> KubeletConfig:
    c = KubeletConfig(kubeconfig=Path("/dev/null"), node_name="n", data_dir=Path("/tmp/n"))
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def test_defaults_are_valid() -> None:
    assert validation_errors(config()) == []


def test_wording_of_each_rule() -> None:
    assert validation_errors(config(image_gc_high_threshold_percent=101, image_gc_low_threshold_percent=80)) == [
        "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and "
        "100, inclusive"]
    assert validation_errors(config(image_gc_high_threshold_percent=0, image_gc_low_threshold_percent=0)) == [
        "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 0 must be less than "
        "imageGCHighThresholdPercent (--image-gc-high-threshold) 0"]
    assert validation_errors(config(image_maximum_gc_age=60.0)) == [
        "invalid configuration: imageMaximumGCAge 1m0s must be greater than imageMinimumGCAge 2m0s"]
    assert validation_errors(config(shutdown_grace_period=10.0, shutdown_grace_period_critical_pods=20.0)) == [
        "invalid configuration: shutdownGracePeriodCriticalPods 20s must be <= shutdownGracePeriod 10s"]
    assert validation_errors(config(shutdown_grace_period=0.5)) == [
        "invalid configuration: shutdownGracePeriod 500ms must be either zero or otherwise >= 1 sec"]
    assert validation_errors(config(container_log_monitor_interval=1.0)) == [
        "invalid configuration: containerLogMonitorInterval must be a positive time duration greater than or "
        "equal to 3s"]
    assert validation_errors(config(container_log_max_files=1)) == ["invalid MaxFiles 1, must be > 1"]


def test_several_errors_are_aggregated() -> None:
    with pytest.raises(ValueError) as info:
        validate(config(shutdown_grace_period=-1.0, container_log_monitor_interval=0.0))
    assert str(info.value).startswith("failed to validate kubelet configuration, error: [invalid configuration: ")
