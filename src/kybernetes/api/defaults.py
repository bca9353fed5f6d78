"""Object defaults that more than the API server applies: the PodSpec's.

The API server defaults every PodSpec it stores (Pods, templates of the workload kinds); the
kubelet defaults the static pods it reads from files the same way, so both import them from here,
below both.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.validation.fields import as_dict, as_list

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_MODE = 0o644  # 420: what Kubernetes puts in configMap/secret/downwardAPI/projected volumes

VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)
PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLER_TYPES = ("exec", "httpGet", "tcpSocket", "grpc")


def default_pod_spec(spec: dict[str, Any], *, pod: bool = False) -> None:
    """PodSpec defaults (``SetDefaults_PodSpec`` and the defaults of everything nested in it).

    With ``pod=True`` also the defaults Kubernetes applies to Pods only (``SetDefaults_Pod``):
    ``enableServiceLinks`` and requests copied from limits. Templates never get those.
    """
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    spec.setdefault("schedulerName", "default-scheduler")
    _sync_service_account(spec)
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in as_list(spec.get(field)):
            if isinstance(ctr, dict):
                _default_container(ctr, pod=pod)
    for vol in as_list(spec.get("volumes")):
        if isinstance(vol, dict):
            _default_volume(vol)
    if pod:
        spec.setdefault("enableServiceLinks", True)
        if spec.get("hostNetwork"):
            # Kubernetes makes the host port explicit for host-network pods.
            for field in ("initContainers", "containers"):
                for ctr in as_list(spec.get(field)):
                    for port in as_list(as_dict(ctr).get("ports")):
                        if isinstance(port, dict) and not port.get("hostPort") and port.get("containerPort"):
                            port["hostPort"] = port["containerPort"]


def default_pod_template(template: dict[str, Any]) -> None:
    """Defaults for a PodTemplateSpec inside a workload (the template's spec; metadata stays as is)."""
    spec = template.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)


def _sync_service_account(spec: dict[str, Any]) -> None:
    """The deprecated ``serviceAccount`` mirrors ``serviceAccountName`` (v1 conversion does this)."""
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]


def _image_tag(image: str) -> str:
    """The tag of an image reference ('' if none); a digest counts as a tag for the pull policy."""
    if "@" in image:
        return "@digest"
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _default_container(ctr: dict[str, Any], *, pod: bool) -> None:
    image = ctr.get("image")
    if not ctr.get("imagePullPolicy") and isinstance(image, str):
        tag = _image_tag(image)
        ctr["imagePullPolicy"] = "Always" if tag in ("", "latest") else "IfNotPresent"
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    if ctr.get("resources") is None:
        ctr["resources"] = {}
    for port in as_list(ctr.get("ports")):
        if isinstance(port, dict) and not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in as_list(ctr.get("env")):
        if isinstance(env, dict):
            _default_env_source(as_dict(env.get("valueFrom")))
    for probe in PROBE_FIELDS:
        if isinstance(ctr.get(probe), dict):
            _default_probe(ctr[probe])
    lifecycle = as_dict(ctr.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        _default_handler(as_dict(lifecycle.get(hook)))
    if pod:
        _copy_limits_to_requests(as_dict(ctr.get("resources")))


def _copy_limits_to_requests(resources: dict[str, Any]) -> None:
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, qty in limits.items():
        requests.setdefault(name, qty)


def _default_env_source(source: dict[str, Any]) -> None:
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, dict):
        field_ref.setdefault("apiVersion", "v1")
    resource_ref = source.get("resourceFieldRef")
    if isinstance(resource_ref, dict):
        # A zero Quantity is not omitted by the Go encoder, so real servers show divisor "0".
        resource_ref.setdefault("divisor", "0")


def _default_probe(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_handler(probe)


def _default_handler(handler: dict[str, Any]) -> None:
    http = handler.get("httpGet")
    if isinstance(http, dict):
        if not http.get("path"):
            http["path"] = "/"
        http.setdefault("scheme", "HTTP")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _default_volume(vol: dict[str, Any]) -> None:
    if not any(src in vol for src in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        source = vol.get(src)
        if isinstance(source, dict):
            source.setdefault("defaultMode", DEFAULT_MODE)
    for item in as_list(as_dict(vol.get("downwardAPI")).get("items")):
        _default_env_source(as_dict(item))
    for proj in as_list(as_dict(vol.get("projected")).get("sources")):
        proj = as_dict(proj)
        for item in as_list(as_dict(proj.get("downwardAPI")).get("items")):
            _default_env_source(as_dict(item))
        token = proj.get("serviceAccountToken")
        if isinstance(token, dict):
            token.setdefault("expirationSeconds", 3600)
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict):
        host_path.setdefault("type", "")
    iscsi = vol.get("iscsi")
    if isinstance(iscsi, dict):
        iscsi.setdefault("iscsiInterface", "default")


# --- validation --------------------------------------------------------------------------
