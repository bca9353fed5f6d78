"""A KubeletConfiguration file (``--config``, kubelet.config.k8s.io/v1beta1) applied to a `KubeletConfig`.

Contract:

- :func:`apply_file_settings` sets every field of :data:`FILE_FIELDS` that the file names, converted
  to the `KubeletConfig`'s units (Go durations such as ``"2m"`` to seconds, ``map[string]string``
  fields as dicts of strings); fields the file does not name keep their defaults (the kubelet's).
  A value of the wrong type raises ``ValueError`` naming the field, as the kubelet's decoder does.
- :func:`apply_flag_settings` then sets what was given on the command line: a flag wins over the
  file (the kubelet's precedence), a flag not given leaves the file's value alone.
- The DNS settings (clusterDNS, clusterDomain, resolvConf) have their own helper,
  :func:`kybernetes.kubelet.config.apply_dns_settings`; this module covers the rest of what
  issue 17's node features read (resources, eviction, image GC, log rotation, graceful shutdown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kybernetes.api.timeutil import parse_duration
from kybernetes.kubelet.config import KubeletConfig


def _duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r}")
    return parse_duration(str(value)) if isinstance(value, str) else float(value) / 1e9


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"not a map of strings: {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"not a list of strings: {value!r}")
    return [str(v) for v in value]


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not a boolean: {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


def _taints(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError(f"not a list of taints: {value!r}")
    return [{str(k): str(v) for k, v in t.items()} for t in value]


FILE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # KubeletConfiguration field -> (KubeletConfig attribute, converter)
    "port": ("port", _int),
    "address": ("address", _str),
    "staticPodPath": ("pod_manifest_path", lambda v: Path(_str(v))),
    "fileCheckFrequency": ("file_check_frequency", _duration),
    "maxPods": ("max_pods", _int),
    "nodeStatusUpdateFrequency": ("status_interval", _duration),
    "registerWithTaints": ("taints", _taints),
    "tlsCertFile": ("tls_cert_file", lambda v: Path(_str(v))),
    "tlsPrivateKeyFile": ("tls_private_key_file", lambda v: Path(_str(v))),
    "cgroupsPerQOS": ("cgroups_per_qos", _bool),
    "cgroupRoot": ("cgroup_root", _str),
    "kubeReserved": ("kube_reserved", _string_map),
    "systemReserved": ("system_reserved", _string_map),
    "enforceNodeAllocatable": ("enforce_node_allocatable", _string_list),
    "evictionHard": ("eviction_hard", _string_map),
    "evictionSoft": ("eviction_soft", _string_map),
    "evictionSoftGracePeriod": ("eviction_soft_grace_period", _string_map),
    "evictionPressureTransitionPeriod": ("eviction_pressure_transition_period", _duration),
    "evictionMaxPodGracePeriod": ("eviction_max_pod_grace_period", _int),
    "evictionMinimumReclaim": ("eviction_minimum_reclaim", _string_map),
    "podPidsLimit": ("pod_pids_limit", _int),
    "imageGCHighThresholdPercent": ("image_gc_high_threshold_percent", _int),
    "imageGCLowThresholdPercent": ("image_gc_low_threshold_percent", _int),
    "imageMinimumGCAge": ("image_minimum_gc_age", _duration),
    "imageMaximumGCAge": ("image_maximum_gc_age", _duration),
    "containerLogMaxSize": ("container_log_max_size", _str),
    "containerLogMaxFiles": ("container_log_max_files", _int),
    "containerLogMonitorInterval": ("container_log_monitor_interval", _duration),
    "shutdownGracePeriod": ("shutdown_grace_period", _duration),
    "shutdownGracePeriodCriticalPods": ("shutdown_grace_period_critical_pods", _duration),
}
"""What a KubeletConfiguration file may set here (besides the DNS fields), with its conversion."""


def apply_file_settings(config: KubeletConfig, file_settings: Mapping[str, Any]) -> None:
    """Sets the fields the file names (see the module contract); ValueError on a bad value."""
    for key, (attribute, convert) in FILE_FIELDS.items():
        if key not in file_settings or file_settings[key] is None:
            continue
        try:
            setattr(config, attribute, convert(file_settings[key]))
        except ValueError as err:
            raise ValueError(f"KubeletConfiguration.{key}: {err}") from None


def parse_key_values(text: str) -> dict[str, str]:
    """A ``mapStringString`` flag: ``k1=v1,k2=v2`` (the eviction flags also take ``<``: the
    kubelet's ``LangleSeparatedMapStringString``); ValueError on an item without a separator."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        sep = "<" if "<" in item else "="
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ValueError(f"malformed pair, expect string{sep}string")
        out[key.strip()] = value.strip()
    return out


def apply_flag_settings(config: KubeletConfig, flags: Mapping[str, Any]) -> None:
    """Sets the attributes given on the command line (None: not given, the file's value stays)."""
    for attribute, value in flags.items():
        if value is None:
            continue
        if not hasattr(config, attribute):
            raise AttributeError(f"KubeletConfig has no {attribute}")
        setattr(config, attribute, value)


__all__ = ["FILE_FIELDS", "apply_file_settings", "apply_flag_settings", "parse_key_values"]
