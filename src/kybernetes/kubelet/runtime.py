"""From API pods to CRI configs: what the kubelet asks containerd to run, and how it finds it again.

This module is pure translation (no I/O but reading the host's resolv.conf and writing a pod's
managed files); `sync` decides *when* to create things, this decides *what* they look like.

Sandbox (`sandbox_config`): metadata (name, namespace, uid, attempt), the hostname (spec.hostname
or the pod name; the node's for hostNetwork pods), the log directory `LOGS/NS_NAME_UID` where the
runtime writes `CONTAINER/RESTART.log`, DNS (the resolver `kybernetes.kubelet.dns` composes
from dnsPolicy, the cluster DNS flags and dnsConfig), host port mappings, namespaces (host
network/PID/IPC) and sysctls.

Container (`container_config`): image, command/args with `$(VAR)` expanded against the resolved
environment (`$$` escapes), env (`resolve_env`, see there), working dir, mounts (volumes from the
VolumeManager, the managed /etc/hosts, the termination-message file), resources as
LinuxContainerResources, the security context, tty/stdin, the log path.

Labels and annotations are the kubelet's memory across restarts, as in Kubernetes: labels name the
pod (name, namespace, uid) and container; annotations keep the restart count, the spec hash (a
changed spec means a restart), the termination message path, the grace period and the preStop
handler. A restarted kubelet lists the runtime, groups by `io.kubernetes.pod.uid` and carries on
from there without restarting anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from kybernetes.api import gobytes
from kybernetes.api.fieldpath import container_resource_value, field_value
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import cpu_millis, to_bytes
from kybernetes.kubelet import security
from kybernetes.kubelet.cri import api
from kybernetes.kubelet.dns import PodDNS

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_CONTAINER_TYPE = "io.kubernetes.container.type"  # "init" or "app": init containers are kept apart
ANN_RESTART_COUNT = "io.kubernetes.container.restartCount"
ANN_HASH = "io.kubernetes.container.hash"
ANN_TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
ANN_TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
ANN_GRACE = "io.kubernetes.pod.terminationGracePeriod"
ANN_PRESTOP = "io.kubernetes.container.preStopHandler"
ANN_CONFIG_SOURCE = "kubernetes.io/config.source"

CPU_PERIOD = 100_000  # CFS period in microseconds, as the kubelet uses
MIN_SHARES = 2
MAX_SHARES = 262_144
MAX_HOSTNAME = 63
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError): a missing ConfigMap key..."""


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(pod: Obj) -> Obj:
    return pod.get("spec") or {}


def pod_full_name(pod: Obj) -> str:
    m = meta(pod)
    return f"{m.get('name', '')}_{m.get('namespace', '')}"


def pod_log_dir(log_root: Path, pod: Obj) -> Path:
    m = meta(pod)
    return Path(log_root) / f"{m.get('namespace', '')}_{m.get('name', '')}_{m.get('uid', '')}"


def container_log_path(container_name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory, as the CRI wants it."""
    return f"{container_name}/{restart_count}.log"


def pod_hostname(pod: Obj, node_hostname: str) -> str:
    if spec(pod).get("hostNetwork"):
        return node_hostname
    name = spec(pod).get("hostname") or meta(pod).get("name", "")
    return str(name)[:MAX_HOSTNAME].rstrip("-.")


# ---- sandbox ----


def sandbox_config(pod: Obj, *, log_root: Path, attempt: int, node_hostname: str,
                   dns: PodDNS | None = None, cgroup_parent: str = "") -> api.PodSandboxConfig:
    """The CRI sandbox of `pod`; `dns` (kybernetes.kubelet.dns) becomes the sandbox's resolv.conf,
    None leaves it to the runtime (the host's file); `cgroup_parent` is the pod's cgroup
    (kybernetes.kubelet.cm), where the runtime puts the sandbox and its containers."""
    m = meta(pod)
    s = spec(pod)
    ports = []
    for c in s.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.append(api.PortMapping(
                    protocol=p.get("protocol") or "TCP",
                    container_port=int(p["containerPort"]), host_port=int(p["hostPort"]),
                    host_ip=p.get("hostIP") or ""))
    psc = s.get("securityContext") or {}
    sec = security.sandbox_security_context(pod, namespace_options(pod))
    sysctls = {x["name"]: str(x.get("value", "")) for x in psc.get("sysctls") or []}
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=m.get("name", ""), namespace=m.get("namespace", ""),
                                        uid=m.get("uid", ""), attempt=attempt),
        # None for the host's network, as the kubelet: the sandbox then shares the host's UTS
        # namespace, where runc refuses to set a hostname.
        hostname="" if s.get("hostNetwork") else pod_hostname(pod, node_hostname),
        log_directory=str(pod_log_dir(log_root, pod)),
        dns_config=None if dns is None else api.DNSConfig(servers=dns.servers, searches=dns.searches,
                                                          options=dns.options),
        port_mappings=ports,
        labels=pod_labels(pod),
        annotations={k: str(v) for k, v in (m.get("annotations") or {}).items()},
        linux=api.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent, security_context=sec, sysctls=sysctls),
    )


def pod_labels(pod: Obj) -> dict[str, str]:
    m = meta(pod)
    labels = {k: str(v) for k, v in (m.get("labels") or {}).items()}
    labels.update({LABEL_POD_NAME: m.get("name", ""), LABEL_POD_NAMESPACE: m.get("namespace", ""),
                   LABEL_POD_UID: m.get("uid", "")})
    return labels


def namespace_options(pod: Obj) -> api.NamespaceOption:
    s = spec(pod)
    return api.NamespaceOption(
        network=api.NODE if s.get("hostNetwork") else api.POD,
        pid=api.NODE if s.get("hostPID") else api.POD if s.get("shareProcessNamespace") else api.CONTAINER,
        ipc=api.NODE if s.get("hostIPC") else api.POD,
    )


# ---- environment ----

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][-._A-Za-z0-9]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, unknown ones kept, `$$` -> `$`."""
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(repl, text)


Getter = Callable[[str, str], Awaitable[Obj | None]]  # (namespace, name) -> object or None


def service_env(services: Iterable[Obj], namespace: str, enable_links: bool) -> dict[str, str]:
    """Docker-links-style variables: the master service always, the namespace's when enabled."""
    env: dict[str, str] = {}
    chosen: dict[str, Obj] = {}
    for svc in services:
        m = meta(svc)
        ip = (svc.get("spec") or {}).get("clusterIP") or ""
        if not ip or ip == "None":
            continue
        if m.get("namespace") == "default" and m.get("name") == "kubernetes":
            chosen.setdefault("kubernetes", svc)
        elif enable_links and m.get("namespace") == namespace:
            chosen[m.get("name", "")] = svc
    for name, svc in sorted(chosen.items()):
        env.update(_links_for(name, svc))
    return env


def _links_for(name: str, svc: Obj) -> dict[str, str]:
    prefix = name.upper().replace("-", "_")
    s = svc.get("spec") or {}
    ip = s["clusterIP"]
    ports = s.get("ports") or []
    env = {f"{prefix}_SERVICE_HOST": ip}
    if not ports:
        return env
    env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
    for p in ports:
        if p.get("name"):
            env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p.get("port"))
    first = ports[0]
    proto = (first.get("protocol") or "TCP").lower()
    env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first.get('port')}"
    for p in ports:
        proto_l = (p.get("protocol") or "TCP").lower()
        base = f"{prefix}_PORT_{p.get('port')}_{proto_l.upper()}"
        env[base] = f"{proto_l}://{ip}:{p.get('port')}"
        env[base + "_PROTO"] = proto_l
        env[base + "_PORT"] = str(p.get("port"))
        env[base + "_ADDR"] = ip
    return env


async def resolve_env(pod: Obj, container: Obj, *, get_configmap: Getter, get_secret: Getter,
                      services: Iterable[Obj] = (), pod_ip: str = "", host_ip: str = "",
                      node_allocatable: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The container's environment, in Kubernetes' order of precedence (later wins): service
    links, envFrom (each source with its prefix), then env entries in order, each expanded
    against what is defined so far. A missing non-optional ConfigMap/Secret (or key) raises
    ConfigError."""
    namespace = meta(pod).get("namespace", "")
    env: dict[str, str] = service_env(services, namespace, spec(pod).get("enableServiceLinks", True) is not False)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, getter in (("configMapRef", get_configmap), ("secretRef", get_secret)):
            ref = source.get(kind)
            if ref is None:
                continue
            obj = await getter(namespace, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{"configmap" if kind == "configMapRef" else "secret"} "{ref.get("name")}" not found')
            for key, value in _data_of(obj, secret=kind == "secretRef").items():
                env[prefix + key] = value
    for var in container.get("env") or []:
        name = var.get("name", "")
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        found = await _value_from(pod, container, source, namespace, get_configmap, get_secret,
                                  pod_ip, host_ip, node_allocatable or {})
        if found is not None:
            env[name] = found
    return list(env.items())


async def _value_from(pod: Obj, container: Obj, source: Obj, namespace: str, get_configmap: Getter,
                      get_secret: Getter, pod_ip: str, host_ip: str, allocatable: dict[str, str]) -> str | None:
    try:
        if "fieldRef" in source:
            return field_value(pod, source["fieldRef"].get("fieldPath", ""),
                               pod_ips=[pod_ip] if pod_ip else [], host_ips=[host_ip] if host_ip else [])
        if "resourceFieldRef" in source:
            resource_ref: Obj = dict(source["resourceFieldRef"])
            target = container
            if resource_ref.get("containerName"):
                target = next((c for c in _all_containers(pod) if c.get("name") == resource_ref["containerName"]),
                              container)
            return container_resource_value(target, resource_ref, allocatable)
    except ValueError as e:
        raise ConfigError(str(e))
    for kind, getter, label in (("configMapKeyRef", get_configmap, "configmap"),
                                ("secretKeyRef", get_secret, "secret")):
        ref = source.get(kind)
        if ref is None:
            continue
        obj = await getter(namespace, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return None
            raise ConfigError(f'{label} "{ref.get("name")}" not found')
        data = _data_of(obj, secret=label == "secret")
        if ref.get("key") not in data:
            if ref.get("optional"):
                return None
            raise ConfigError(f"couldn't find key {ref.get('key')} in {label} {namespace}/{ref.get('name')}")
        return data[ref["key"]]
    return None


def _data_of(obj: Obj, *, secret: bool) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's data decoded (stringData is folded in by the server)."""
    if secret:
        return {k: gobytes.decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    out = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    for k, v in (obj.get("binaryData") or {}).items():
        out.setdefault(k, gobytes.decode(v).decode(errors="replace"))
    return out


def _all_containers(pod: Obj) -> list[Obj]:
    return [*(spec(pod).get("initContainers") or []), *(spec(pod).get("containers") or [])]


# ---- resources and security ----


def linux_resources(container: Obj, qos_class: str = "") -> api.LinuxContainerResources:
    """cpu.shares from the CPU request (2 when unset), a CFS quota from the CPU limit, the memory
    limit, and the OOM score the QoS class implies (Guaranteed last to die, BestEffort first)."""
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    out = api.LinuxContainerResources()
    cpu_request = requests.get("cpu", limits.get("cpu"))
    millis = cpu_millis(cpu_request) if cpu_request is not None else 0
    out.cpu_shares = min(MAX_SHARES, max(MIN_SHARES, millis * 1024 // 1000)) if millis else MIN_SHARES
    if limits.get("cpu") is not None:
        out.cpu_period = CPU_PERIOD
        out.cpu_quota = max(1000, cpu_millis(limits["cpu"]) * CPU_PERIOD // 1000)
    if limits.get("memory") is not None:
        out.memory_limit_in_bytes = to_bytes(limits["memory"])
    if qos_class == "Guaranteed":
        out.oom_score_adj = -997
    elif qos_class == "BestEffort":
        out.oom_score_adj = 1000
    else:
        out.oom_score_adj = 999 if "memory" not in requests else 500
    return out


def security_context(pod: Obj, container: Obj, *, user: security.ImageUser | None = None,
                     seccomp_root: Path | str = "") -> api.LinuxContainerSecurityContext:
    """The container's CRI security context (`kybernetes.kubelet.security`); raises ConfigError
    for one that cannot be configured (a Localhost seccomp profile without a name)."""
    try:
        return security.container_security_context(pod, container, namespace_options(pod), user=user,
                                                   seccomp_root=seccomp_root)
    except security.SecurityContextError as err:
        raise ConfigError(str(err)) from None


def container_hash(container: Obj) -> str:
    """A stable digest of the container's spec: a different hash means the spec changed (image)."""
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


# ---- managed files ----


def write_etc_hosts(path: Path, pod: Obj, pod_ip: str, node_hostname: str) -> Path:
    """The kubelet-managed /etc/hosts: localhost, the pod's own name at its IP, hostAliases."""
    s = spec(pod)
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    if pod_ip:
        hostname = pod_hostname(pod, node_hostname)
        if s.get("subdomain"):
            ns = meta(pod).get("namespace", "")
            lines.append(f"{pod_ip}\t{hostname}.{s['subdomain']}.{ns}.svc.cluster.local\t{hostname}")
        else:
            lines.append(f"{pod_ip}\t{hostname}")
    aliases = s.get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.")
        for alias in aliases:
            lines.append(f"{alias.get('ip')}\t" + "\t".join(alias.get("hostnames") or []))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def container_config(pod: Obj, container: Obj, *, restart_count: int, env: list[tuple[str, str]],
                     mounts: list[dict[str, Any]], init: bool = False, qos_class: str = "",
                     image_ref: str = "", image_user: security.ImageUser | None = None,
                     seccomp_root: Path | str = "") -> api.ContainerConfig:
    """The CRI ContainerConfig of one container instance (`mounts`: CRI mount dicts, including the
    volumes, /etc/hosts and the termination-log file the caller prepared; `image_user`: who the
    image runs as, checked against runAsNonRoot; `seccomp_root`: where Localhost seccomp profiles
    live). Raises ConfigError (CreateContainerConfigError) for a security context it cannot honour."""
    if image_user is not None:
        try:
            security.verify_run_as_non_root(pod, container, image_user)
        except security.SecurityContextError as err:
            raise ConfigError(str(err)) from None
    env_map = dict(env)
    command = [expand(str(x), env_map) for x in container.get("command") or []]
    args = [expand(str(x), env_map) for x in container.get("args") or []]
    name = container.get("name", "")
    m = meta(pod)
    grace = spec(pod).get("terminationGracePeriodSeconds", 30)
    annotations = {
        ANN_RESTART_COUNT: str(restart_count),
        ANN_HASH: container_hash(container),
        ANN_TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath") or "/dev/termination-log",
        ANN_TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
        ANN_GRACE: str(grace),
    }
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        annotations[ANN_PRESTOP] = json.dumps(pre_stop, sort_keys=True)
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=restart_count),
        image=api.ImageSpec(image=image_ref or container.get("image", ""),
                            user_specified_image=container.get("image", "")),
        command=command,
        args=args,
        working_dir=container.get("workingDir") or "",
        envs=[api.KeyValue(key=k, value=v) for k, v in env],
        mounts=[api.Mount(container_path=x["container_path"], host_path=str(x["host_path"]),
                          readonly=bool(x.get("readonly")), propagation=_propagation(x.get("propagation")))
                for x in mounts],
        labels={LABEL_POD_NAME: m.get("name", ""), LABEL_POD_NAMESPACE: m.get("namespace", ""),
                LABEL_POD_UID: m.get("uid", ""), LABEL_CONTAINER_NAME: name,
                LABEL_CONTAINER_TYPE: "init" if init else "app"},
        annotations=annotations,
        log_path=container_log_path(name, restart_count),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=api.LinuxContainerConfig(resources=linux_resources(container, qos_class),
                                       security_context=security_context(
                                           pod, container, user=image_user, seccomp_root=seccomp_root)),
    )


def _propagation(value: Any) -> Any:
    if isinstance(value, int):
        return value
    return {"HostToContainer": api.PROPAGATION_HOST_TO_CONTAINER,
            "Bidirectional": api.PROPAGATION_BIDIRECTIONAL}.get(str(value or ""), api.PROPAGATION_PRIVATE)
