"""The kubelet's housekeeping: its settings (image GC, container log rotation, graceful node
shutdown) validated as the kubelet's ValidateKubeletConfiguration does, in its words, and the
background tasks that keep images and logs in bounds (`start_housekeeping`).

`validation_errors(config)` returns every message (empty: valid); `validate(config)` raises
ValueError with them aggregated as the kubelet reports a configuration it refuses to start with.
The flags (`kubelet/cmd.py`) and a KubeletConfiguration file both end in one `KubeletConfig`, which
is what is checked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kybernetes import componentlogs
from kybernetes.api.timeutil import format_duration
from kybernetes.images.oci import BUSYBOX_IMAGE, PAUSE_IMAGE, images_dir
from kybernetes.images.system import system_image_name
from kybernetes.kubelet.config import KubeletConfig
from kybernetes.kubelet.imagegc import ImageGCManager, ImageGCPolicy
from kybernetes.kubelet.images import imported_builtins
from kybernetes.kubelet.logrotation import ContainerLogManager, LogRotationPolicy

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


def start_housekeeping(kubelet: Any) -> list[asyncio.Task[None]]:
    """The tasks of a started :class:`~kybernetes.kubelet.kubelet.Kubelet`: image garbage collection
    (none when imageGCHighThresholdPercent is 100, as in the kubelet; the node's built-in images are
    protected by name and by the IDs it imported), container log rotation, and the rotation of its
    own containerd's log (DATA/logs)."""
    cfg: KubeletConfig = kubelet.config
    builtin_dir = images_dir(kubelet.data_dir)
    builtin_names = {PAUSE_IMAGE, BUSYBOX_IMAGE, system_image_name()}

    def protected() -> set[str]:
        return builtin_names | {image_id for _, image_id in imported_builtins(builtin_dir)}

    tasks = []
    if cfg.image_gc_high_threshold_percent < 100:
        policy = ImageGCPolicy(cfg.image_gc_high_threshold_percent, cfg.image_gc_low_threshold_percent,
                               cfg.image_minimum_gc_age, cfg.image_maximum_gc_age)
        image_gc = ImageGCManager(kubelet.cri, policy, record_node=kubelet._record_node, protected=protected)
        tasks.append(asyncio.create_task(image_gc.run(
            cfg.image_gc_period, lambda message: kubelet._record_node("Warning", "ImageGCFailed", message)),
            name="kubelet:image-gc"))
    logs = ContainerLogManager(kubelet.cri, LogRotationPolicy(cfg.container_log_max_size, cfg.container_log_max_files),
                               monitor_interval=cfg.container_log_monitor_interval)
    tasks.append(asyncio.create_task(logs.run(), name="kubelet:container-logs"))
    if kubelet.containerd is not None and not kubelet.containerd.external:
        tasks.append(asyncio.create_task(componentlogs.run([kubelet.containerd.log_path.parent]),
                                         name="kubelet:component-logs"))
    return tasks


__all__ = ["start_housekeeping", "validate", "validation_errors"]
