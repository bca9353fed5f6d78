"""The housekeeping settings (image GC, container log rotation, graceful node shutdown) validated as
the kubelet's ValidateKubeletConfiguration does, in its words.

`validation_errors(config)` returns every message (empty: valid); `validate(config)` raises
ValueError with them aggregated as the kubelet reports a configuration it refuses to start with.
The flags (`kubelet/cmd.py`) and a KubeletConfiguration file both end in one `KubeletConfig`, which
is what is checked.
"""

from __future__ import annotations

from kybernetes.api.timeutil import format_duration
from kybernetes.kubelet.config import KubeletConfig
from kybernetes.kubelet.logrotation import LogRotationPolicy

MIN_LOG_MONITOR_INTERVAL = 3.0


def _go(seconds: float) -> str:
    """A duration as Go prints a time.Duration (%v): 2m0s, 500ms, 0s."""
    return format_duration(round(seconds * 1e9))


def validation_errors(config: KubeletConfig) -> list[str]:
    errors = []
    high, low = config.image_gc_high_threshold_percent, config.image_gc_low_threshold_percent
    if not 0 <= high <= 100:
        errors.append(f"imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must be between 0 and 100, "
                      "inclusive")
    if not 0 <= low <= 100:
        errors.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be between 0 and 100, "
                      "inclusive")
    if low >= high:
        errors.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than "
                      f"imageGCHighThresholdPercent (--image-gc-high-threshold) {high}")
    max_age, min_age = config.image_maximum_gc_age, config.image_minimum_gc_age
    if max_age < 0:
        errors.append(f"imageMaximumGCAge {_go(max_age)} must not be negative")
    if max_age > 0 and max_age <= min_age:
        errors.append(f"imageMaximumGCAge {_go(max_age)} must be greater than imageMinimumGCAge {_go(min_age)}")
    grace, critical = config.shutdown_grace_period, config.shutdown_grace_period_critical_pods
    if critical > grace:
        errors.append(f"shutdownGracePeriodCriticalPods {_go(critical)} must be <= shutdownGracePeriod {_go(grace)}")
    if grace < 0 or 0 < grace < 1:
        errors.append(f"shutdownGracePeriod {_go(grace)} must be either zero or otherwise >= 1 sec")
    if critical < 0 or 0 < critical < 1:
        errors.append(f"shutdownGracePeriodCriticalPods {_go(critical)} must be either zero or otherwise >= 1 sec")
    if config.container_log_monitor_interval < MIN_LOG_MONITOR_INTERVAL:
        errors.append("containerLogMonitorInterval must be a positive time duration greater than or equal to 3s")
    errors = [f"invalid configuration: {e}" for e in errors]
    try:  # what the container log manager refuses at start
        LogRotationPolicy(config.container_log_max_size, config.container_log_max_files)
    except ValueError as err:
        errors.append(str(err))
    return errors


def validate(config: KubeletConfig) -> None:
    errors = validation_errors(config)
    if errors:
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise ValueError(f"failed to validate kubelet configuration, error: {joined}")


__all__ = ["validate", "validation_errors"]
