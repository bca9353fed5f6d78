"""The kubelet's own metrics (``/metrics``), with Kubernetes' names, help texts, labels and buckets.

Defined once here in the default registry (:mod:`kybernetes.metrics`); measured where the work is done:
the CRI client times every runtime call (``kubelet_runtime_operations_*``, ``operation_type`` is the
kubelet's name for the call), the PLEG relist sets the running pod and container gauges and times
itself, and the kubelet observes a pod's start once, when it first reports it Running.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""client_golang's DefBuckets."""

POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                     1800, 2700, 3600)
RUNTIME_BUCKETS = tuple(0.005 * 2.5 ** i for i in range(14))
"""ExponentialBuckets(.005, 2.5, 14)."""

RUNNING_PODS = Gauge("kubelet_running_pods", "Number of pods that have a running pod sandbox")
RUNNING_CONTAINERS = Gauge("kubelet_running_containers", "Number of containers currently running",
                           ["container_state"])
POD_START_DURATION = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
    buckets=POD_START_BUCKETS)
PLEG_RELIST_DURATION = Histogram("kubelet_pleg_relist_duration_seconds", "Duration in seconds for relisting pods in PLEG.",
                                 buckets=DEF_BUCKETS)
PLEG_RELIST_INTERVAL = Histogram("kubelet_pleg_relist_interval_seconds",
                                 "Interval in seconds between relisting in PLEG.", buckets=DEF_BUCKETS)
PLEG_LAST_SEEN = Gauge("kubelet_pleg_last_seen_seconds", "Timestamp in seconds when PLEG was last seen active.")
RUNTIME_OPERATIONS = Counter("kubelet_runtime_operations", "Cumulative number of runtime operations by operation type.",
                             ["operation_type"])
RUNTIME_OPERATIONS_DURATION = Histogram(
    "kubelet_runtime_operations_duration_seconds", "Duration in seconds of runtime operations. Broken down by operation type.",
    ["operation_type"], buckets=RUNTIME_BUCKETS)
RUNTIME_OPERATIONS_ERRORS = Counter("kubelet_runtime_operations_errors",
                                    "Cumulative number of runtime operation errors by operation type.", ["operation_type"])

IMAGE_GARBAGE_COLLECTED = Counter(
    "kubelet_image_garbage_collected", "Total number of images garbage collected by the kubelet, whether through "
    "disk usage or image age.", ["reason"])  # exposed as kubelet_image_garbage_collected_total; reason age|space

CONTAINER_STATES = {0: "created", 1: "running", 2: "exited", 3: "unknown"}
"""CRI ContainerState -> the kubelet's container_state label (kubecontainer.State)."""

OPERATION_TYPES = {
    "Version": "version", "Status": "status", "UpdateRuntimeConfig": "update_runtime_config",
    "RunPodSandbox": "run_podsandbox", "StopPodSandbox": "stop_podsandbox", "RemovePodSandbox": "remove_podsandbox",
    "PodSandboxStatus": "podsandbox_status", "ListPodSandbox": "list_podsandbox",
    "CreateContainer": "create_container", "StartContainer": "start_container", "StopContainer": "stop_container",
    "RemoveContainer": "remove_container", "ListContainers": "list_containers", "ContainerStatus": "container_status",
    "UpdateContainerResources": "update_container", "ReopenContainerLog": "reopen_container_log",
    "ExecSync": "exec_sync", "Exec": "exec", "Attach": "attach", "PortForward": "port_forward",
    "ContainerStats": "container_stats", "ListContainerStats": "list_container_stats",
    "ListImages": "list_images", "ImageStatus": "image_status", "PullImage": "pull_image",
    "RemoveImage": "remove_image", "ImageFsInfo": "image_fs_info",
}
"""CRI method -> the kubelet's operation_type (its instrumented runtime and image services)."""


def operation_type(method: str) -> str:
    return OPERATION_TYPES.get(method, method.lower())
