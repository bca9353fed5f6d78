"""Syncing one pod: make the runtime match the pod spec (computePodActions + SyncPod), or stop it.

`PodSyncer.sync_pod(pod)` is one pass, run by the pod's worker (never two at once for a pod):

1. read the pod's runtime state: its sandboxes and container instances, by the `io.kubernetes.pod.uid`
   label (which is also how a restarted kubelet adopts what is already running);
2. mount its volumes (FailedMount: retry shortly);
3. no ready sandbox: (re)create one — unless restartPolicy is Never and containers already ran —
   after killing whatever still runs in the old one; write the managed /etc/hosts with the pod IP;
4. kill running containers whose liveness probe failed ("Container X failed liveness probe, will be
   restarted") or whose spec changed;
5. init containers, in order, one at a time: start the first that has not succeeded; a failed one
   is restarted (with back-off) unless restartPolicy is Never (then the pod fails);
6. app containers: start those never started; restart exited ones as restartPolicy says (Always;
   OnFailure if the exit code was not 0) subject to the CrashLoopBackOff back-off.

Starting a container: back-off check, image (ImageManager: pull policy, ErrImagePull /
ImagePullBackOff), environment (CreateContainerConfigError), mounts (volumes, /etc/hosts, a fresh
termination-message file), CreateContainer + StartContainer, events Created/Started, the postStart
exec hook, and registering its probes. What blocked a container becomes its waiting reason in the
status (`waiting`), and the pass returns when it wants to run again (`requeue`).

`terminate(pod, grace)` is killPod: every running container is killed in parallel — preStop hook
(exec in the container or HTTP GET), then StopContainer with what is left of the grace period
(at least 2 s) — then the sandbox is stopped. `remove(uid)` deletes the pod's runtime objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import format_duration
from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.cri import CRIClient, CRIError, NotFoundError, api
from kybernetes.kubelet.dns import DNSSettings, PodDNS, compose_pod_dns, read_host_resolv_conf
from kybernetes.kubelet.images import ImageManager, ImagePullError
from kybernetes.kubelet.podworkers import Backoff
from kybernetes.kubelet.status import ContainerRecord, PodRuntime, termination_message, will_restart

log = logging.getLogger(__name__)

Recorder = Callable[[Obj, str, str, str], None]
Getter = Callable[[str, str], Awaitable[Obj | None]]
MIN_GRACE = 2
RESYNC = 10.0
MAX_DEAD_PER_CONTAINER = 1  # dead instances kept besides the newest (for lastState and logs --previous)


class Volumes(Protocol):
    async def setup(self, pod: Obj) -> dict[str, Path]: ...
    def mounts_for(self, pod: Obj, container: Obj, paths: dict[str, Path]) -> list[dict[str, Any]]: ...


class Probes(Protocol):
    def add(self, pod: Obj, container_name: str, container_id: str, pod_ip: str) -> None: ...
    def remove_container(self, pod_uid: str, name: str) -> None: ...
    def remove_pod(self, pod_uid: str) -> None: ...
    def is_ready(self, pod_uid: str, name: str) -> bool: ...
    def is_started(self, pod_uid: str, name: str) -> bool: ...
    def liveness_failed(self, pod_uid: str, name: str) -> bool: ...


@dataclass
class NodeContext:
    """What the syncer needs to know about the node and the API."""

    node_name: str
    hostname: str
    host_ip: str
    log_root: Path  # DATA/pods-logs: NS_NAME_UID/CONTAINER/N.log
    pods_dir: Path  # DATA/pods/UID: etc-hosts, termination-message files
    get_configmap: Getter
    get_secret: Getter
    services: Callable[[], Iterable[Obj]] = lambda: ()
    allocatable: Callable[[], dict[str, str]] = dict
    dns: DNSSettings = field(default_factory=DNSSettings)
    """--cluster-dns, --cluster-domain, --resolv-conf: what pods' resolv.conf is made of."""
    record_node: Callable[[str, str, str], None] | None = None
    """(type, reason, message): an event on this node (the DNS configurer's MissingClusterDNS)."""
    get_runtime_class: Callable[[str], Awaitable[Obj | None]] | None = None
    """RuntimeClass by name (None if there is none); without it, as a kubelet without a RuntimeClass
    manager, every pod runs on the runtime's default handler."""
    pod_cgroup: Callable[[Obj], str] | None = None
    """Makes the pod's cgroup and returns its path, the sandbox's cgroup_parent (kybernetes.kubelet.cm)."""


class RuntimeClassNotFound(Exception):
    """A pod names a RuntimeClass that does not exist (its sandbox cannot be created)."""

    def __init__(self, name: str) -> None:
        super().__init__(f'runtimeclasses.node.k8s.io "{name}" not found')


@dataclass
class _PodState:
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    probed: dict[str, str] = field(default_factory=dict)  # container name -> id registered with probes


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def _grace(pod: Obj) -> int:
    m = pod.get("metadata") or {}
    if m.get("deletionGracePeriodSeconds") is not None:
        return int(m["deletionGracePeriodSeconds"])
    return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))


class PodSyncer:
    def __init__(self, cri: CRIClient, images: ImageManager, volumes: Volumes, probes: Probes,
                 record: Recorder, node: NodeContext) -> None:
        self.cri = cri
        self.images = images
        self.volumes = volumes
        self.probes = probes
        self.record = record
        self.node = node
        self.backoff = Backoff(10.0, 300.0)
        self._state: dict[str, _PodState] = {}
        self._records: dict[str, ContainerRecord] = {}  # container id -> record (exited ones never change)
        self._pod_ips: dict[str, str] = {}  # sandbox id -> IP

    def state(self, uid: str) -> _PodState:
        return self._state.setdefault(uid, _PodState())

    def waiting(self, uid: str) -> dict[str, tuple[str, str]]:
        return self.state(uid).waiting

    def forget(self, uid: str) -> None:
        self._state.pop(uid, None)
        self.backoff.forget_prefix(uid + "/")

    # ---- reading the runtime ----

    async def runtime_state(self, uid: str) -> PodRuntime:
        rt = PodRuntime(uid)
        sandboxes = await self.cri.list_pod_sandbox(
            api.PodSandboxFilter(label_selector={rtcfg.LABEL_POD_UID: uid}))
        rt.sandboxes = sorted(sandboxes, key=lambda s: s.created_at, reverse=True)
        if rt.sandboxes and rt.sandboxes[0].state == api.SANDBOX_READY:
            newest = rt.sandboxes[0]
            rt.sandbox_id = newest.id
            if newest.id not in self._pod_ips:
                with contextlib.suppress(NotFoundError):
                    status = (await self.cri.pod_sandbox_status(newest.id)).status
                    self._pod_ips[newest.id] = status.network.ip
            rt.pod_ip = self._pod_ips.get(newest.id, "")
        listed = await self.cri.list_containers(api.ContainerFilter(label_selector={rtcfg.LABEL_POD_UID: uid}))
        for c in listed:
            rec = self._records.get(c.id)
            if rec is None or rec.state != c.state:
                try:
                    rec = await self._record(c)
                except NotFoundError:
                    continue
                self._records[c.id] = rec
            rt.containers.setdefault(rec.name, []).append(rec)
        for records in rt.containers.values():
            records.sort(key=lambda r: (r.restart_count, r.created_at), reverse=True)
        return rt

    async def _record(self, c: api.Container) -> ContainerRecord:
        s = (await self.cri.container_status(c.id)).status
        ann = dict(s.annotations or c.annotations)
        rec = ContainerRecord(
            id=c.id, name=c.metadata.name, init=c.labels.get(rtcfg.LABEL_CONTAINER_TYPE) == "init",
            state=s.state, restart_count=int(ann.get(rtcfg.ANN_RESTART_COUNT, c.metadata.attempt) or 0),
            hash=ann.get(rtcfg.ANN_HASH, ""), created_at=s.created_at, started_at=s.started_at,
            finished_at=s.finished_at, exit_code=s.exit_code, reason=s.reason, image=s.image.image,
            image_ref=s.image_ref, annotations=ann)
        if s.state == api.CONTAINER_EXITED:
            rec.message = termination_message(s, ann.get(rtcfg.ANN_TERMINATION_MESSAGE_POLICY, "File")) or s.message
        return rec

    # ---- the sync pass ----

    async def sync_pod(self, pod: Obj) -> tuple[PodRuntime, float]:
        """One pass (module doc); returns the runtime state after it and when to come back."""
        uid = _uid(pod)
        st = self.state(uid)
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        rt = await self.runtime_state(uid)
        try:
            paths = await self.volumes.setup(pod)
        except Exception as err:  # VolumeError, or a lookup the API refused
            self.record(pod, "Warning", "FailedMount", str(err))
            return rt, 2.0

        if not rt.sandbox_id:
            ran = any(not r.init for r in rt.all())
            if rt.sandboxes and policy == "Never" and ran:
                await self.terminate(pod, rt, 0)  # Never: the pod is over once its sandbox died
                return await self.runtime_state(uid), RESYNC
            if rt.running():
                await self.terminate(pod, rt, 0)
            try:
                rt = await self._create_sandbox(pod, len(rt.sandboxes))
            except CRIError as err:
                self.record(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err.details}")
                return rt, 5.0
            except RuntimeClassNotFound as err:
                self.record(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err}")
                return rt, 5.0
        sandbox_config = self.sandbox_config(pod, rt)

        killed = False
        for c in spec.get("containers") or []:
            latest = rt.latest(c["name"])
            if latest is None or not latest.running:
                continue
            if self.probes.liveness_failed(uid, c["name"]):
                await self.kill_container(pod, latest, _grace(pod), rt.pod_ip,
                                          f"Container {c['name']} failed liveness probe, will be restarted")
                killed = True
            elif latest.hash and latest.hash != rtcfg.container_hash(c):
                await self.kill_container(pod, latest, _grace(pod), rt.pod_ip,
                                          f"Container {c['name']} definition changed, will be restarted")
                killed = True
        if killed:
            rt = await self.runtime_state(uid)

        requeue = RESYNC
        init_done = True
        for c in spec.get("initContainers") or []:
            latest = rt.latest(c["name"])
            if latest is not None and latest.exited and latest.exit_code == 0:
                continue
            init_done = False
            if latest is None or (latest.exited and policy != "Never"):
                requeue = min(requeue, await self._start(pod, c, rt, sandbox_config, paths, init=True))
            break
        if init_done:
            for c in spec.get("containers") or []:
                latest = rt.latest(c["name"])
                if latest is None or (latest.exited and will_restart(policy, latest)):
                    requeue = min(requeue, await self._start(pod, c, rt, sandbox_config, paths, init=False))
                elif latest.running and st.probed.get(c["name"]) != latest.id:
                    self.probes.add(pod, c["name"], latest.id, rt.pod_ip)
                    st.probed[c["name"]] = latest.id
                elif latest.exited and not will_restart(policy, latest):
                    st.waiting.pop(c["name"], None)
        rt = await self.runtime_state(uid)
        await self._collect_dead(rt)
        return rt, requeue

    def sandbox_config(self, pod: Obj, rt: PodRuntime) -> api.PodSandboxConfig:
        attempt = rt.sandboxes[0].metadata.attempt if rt.sandboxes else 0
        # containerd 1.6 places containers by the cgroup_parent of this (the request's) sandbox config.
        return rtcfg.sandbox_config(pod, log_root=self.node.log_root, attempt=attempt,
                                    node_hostname=self.node.hostname, dns=self.pod_dns(pod),
                                    cgroup_parent=self.node.pod_cgroup(pod) if self.node.pod_cgroup else "")

    def pod_dns(self, pod: Obj, *, record: bool = False) -> PodDNS:
        """The pod's resolver (kybernetes.kubelet.dns); `record`: its warnings become events."""
        result = compose_pod_dns(pod, self.node.dns, read_host_resolv_conf(self.node.dns.resolv_conf))
        for event in result.events if record else ():
            if not event.on_node:
                self.record(pod, "Warning", event.reason, event.message)
            elif self.node.record_node is not None:
                self.node.record_node("Warning", event.reason, event.message)
        return result

    async def _create_sandbox(self, pod: Obj, attempt: int) -> PodRuntime:
        # Making the pod's cgroup is a few ms of mkdir and writes: not on the event loop.
        cgroup_parent = await asyncio.to_thread(self.node.pod_cgroup, pod) if self.node.pod_cgroup else ""
        config = rtcfg.sandbox_config(pod, log_root=self.node.log_root, attempt=attempt,
                                      node_hostname=self.node.hostname, dns=self.pod_dns(pod, record=True),
                                      cgroup_parent=cgroup_parent)
        handler = await self._runtime_handler(pod)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)
        sandbox_id = await self.cri.run_pod_sandbox(config, handler)
        status = (await self.cri.pod_sandbox_status(sandbox_id)).status
        ip = self.node.host_ip if (pod.get("spec") or {}).get("hostNetwork") else status.network.ip
        self._pod_ips[sandbox_id] = ip
        if not (pod.get("spec") or {}).get("hostNetwork"):
            rtcfg.write_etc_hosts(self.pod_dir(pod) / "etc-hosts", pod, ip, self.node.hostname)
        return await self.runtime_state(_uid(pod))

    async def _runtime_handler(self, pod: Obj) -> str:
        """The CRI handler of the pod's RuntimeClass ("" for the runtime's default), as the kubelet's
        RuntimeClass manager resolves it; the runtime refuses a handler it is not configured for."""
        name = (pod.get("spec") or {}).get("runtimeClassName")
        if not name or self.node.get_runtime_class is None:
            return ""
        rc = await self.node.get_runtime_class(str(name))
        if rc is None:
            raise RuntimeClassNotFound(str(name))
        return str(rc.get("handler") or "")

    def pod_dir(self, pod: Obj) -> Path:
        return self.node.pods_dir / _uid(pod)

    async def _start(self, pod: Obj, c: Obj, rt: PodRuntime, sandbox_config: api.PodSandboxConfig,
                     paths: dict[str, Path], *, init: bool) -> float:
        """Starts (or restarts) one container; returns when the pod wants another sync."""
        uid = _uid(pod)
        name = c["name"]
        st = self.state(uid)
        latest = rt.latest(name)
        m = pod.get("metadata") or {}
        if latest is not None and latest.exited:
            key = f"{uid}/{name}"
            finished = latest.finished_at / 1e9 if latest.finished_at else time.time()
            left = self.backoff.in_backoff_since(key, finished)
            if left > 0:
                delay = int(self.backoff.delay(key))
                st.waiting[name] = ("CrashLoopBackOff", f"back-off {format_duration(delay * 1_000_000_000)} restarting failed container={name} "
                                                        f"pod={m.get('name')}_{m.get('namespace')}({uid})")
                self.record(pod, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod "
                                                       f"{m.get('name')}_{m.get('namespace')}({uid})")
                return left + 0.05
            self.backoff.next(key, finished)
        restart_count = latest.restart_count + 1 if latest is not None else 0
        try:
            await self.images.ensure(pod, c, sandbox_config)
        except ImagePullError as err:
            st.waiting[name] = (err.reason, err.message)
            # Come back soon after a failed pull, so the status moves on to ImagePullBackOff.
            return 1.0 if err.reason == "ErrImagePull" else max(err.retry_after, 1.0)
        try:
            env = await rtcfg.resolve_env(
                pod, c, get_configmap=self.node.get_configmap, get_secret=self.node.get_secret,
                services=self.node.services(), pod_ip=rt.pod_ip, host_ip=self.node.host_ip,
                node_allocatable=self.node.allocatable())
        except rtcfg.ConfigError as err:
            st.waiting[name] = ("CreateContainerConfigError", str(err))
            self.record(pod, "Warning", "Failed", f"Error: {err}")
            return 5.0
        mounts = list(self.volumes.mounts_for(pod, c, paths))
        mounts.extend(self._managed_mounts(pod, c, mounts))
        config = rtcfg.container_config(pod, c, restart_count=restart_count, env=env, mounts=mounts, init=init,
                                        qos_class=(pod.get("status") or {}).get("qosClass", ""))
        try:
            cid = await self.cri.create_container(rt.sandbox_id, config, sandbox_config)
        except CRIError as err:
            st.waiting[name] = ("CreateContainerError", err.details)
            self.record(pod, "Warning", "Failed", f"Error: {err.details}")
            return 5.0
        self.record(pod, "Normal", "Created", f"Created container {name}")
        try:
            await self.cri.start_container(cid)
        except CRIError as err:
            st.waiting[name] = ("RunContainerError", err.details)
            self.record(pod, "Warning", "Failed", f"Error: {err.details}")
            return 1.0
        self.record(pod, "Normal", "Started", f"Started container {name}")
        st.waiting.pop(name, None)
        post_start = ((c.get("lifecycle") or {}).get("postStart") or {})
        if post_start and not await self._run_hook(post_start, cid, rt.pod_ip, _grace(pod)):
            self.record(pod, "Warning", "FailedPostStartHook", f"PostStartHook failed for container {name}")
            with contextlib.suppress(CRIError):
                await self.cri.stop_container(cid, 0)
            return 0.5
        if not init:
            self.probes.add(pod, name, cid, rt.pod_ip)
            st.probed[name] = cid
        return RESYNC

    def _managed_mounts(self, pod: Obj, c: Obj, volume_mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken = {x["container_path"] for x in volume_mounts}
        out: list[dict[str, Any]] = []
        hosts = self.pod_dir(pod) / "etc-hosts"
        if not (pod.get("spec") or {}).get("hostNetwork") and hosts.exists() and "/etc/hosts" not in taken:
            out.append({"container_path": "/etc/hosts", "host_path": str(hosts), "readonly": False,
                        "propagation": "None"})
        path = c.get("terminationMessagePath") or "/dev/termination-log"
        if path not in taken:
            # A fresh file per instance, so a restarted container does not inherit its predecessor's message.
            directory = self.pod_dir(pod) / "containers" / c["name"]
            directory.mkdir(parents=True, exist_ok=True)
            f = directory / secrets.token_hex(4)
            f.touch(mode=0o666)
            f.chmod(0o666)  # any container user may write it
            out.append({"container_path": path, "host_path": str(f), "readonly": False, "propagation": "None"})
        return out

    # ---- stopping ----

    async def terminate(self, pod: Obj, rt: PodRuntime, grace: int | None = None) -> None:
        """Kills every running container (in parallel, with preStop hooks), then stops the sandboxes."""
        uid = rt.uid
        running = rt.running()
        if running:
            g = _grace(pod) if grace is None else grace
            await asyncio.gather(*(self.kill_container(pod, r, g, rt.pod_ip, f"Stopping container {r.name}",
                                                       override=grace is not None) for r in running))
        self.probes.remove_pod(uid)
        self.state(uid).probed.clear()
        for s in rt.sandboxes:
            if s.state == api.SANDBOX_READY:
                with contextlib.suppress(NotFoundError):
                    await self.cri.stop_pod_sandbox(s.id)

    async def kill_container(self, pod: Obj, rec: ContainerRecord, grace: int, pod_ip: str, message: str,
                             *, override: bool = False) -> None:
        self.record(pod, "Normal", "Killing", message)
        started = time.monotonic()
        hook = rec.annotations.get(rtcfg.ANN_PRESTOP)
        if hook and grace > 0:
            try:
                handler = json.loads(hook)
            except ValueError:
                handler = {}
            if not await self._run_hook(handler, rec.id, pod_ip, grace):
                self.record(pod, "Warning", "FailedPreStopHook", f"PreStopHook failed for container {rec.name}")
        remaining = grace - int(time.monotonic() - started)
        if not override or grace > 0:
            remaining = max(remaining, MIN_GRACE)
        self.probes.remove_container(_uid(pod), rec.name)
        with contextlib.suppress(NotFoundError):
            await self.cri.stop_container(rec.id, max(0, remaining))

    async def _run_hook(self, handler: Obj, container_id: str, pod_ip: str, timeout: int) -> bool:
        """Runs an exec or httpGet lifecycle handler; True if it succeeded."""
        try:
            if "exec" in handler:
                code, _, _ = await self.cri.exec_sync(container_id, handler["exec"].get("command") or [],
                                                      max(timeout, 1))
                return code == 0
            if "httpGet" in handler:
                h = handler["httpGet"]
                host = h.get("host") or pod_ip or "127.0.0.1"
                url = f"{(h.get('scheme') or 'HTTP').lower()}://{host}:{h.get('port')}{h.get('path') or '/'}"
                headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
                async with aiohttp.ClientSession() as session, session.get(
                        url, headers=headers, timeout=aiohttp.ClientTimeout(total=max(timeout, 1)), ssl=False) as r:
                    return r.status < 400
            if "sleep" in handler:
                await asyncio.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
                return True
        except (CRIError, aiohttp.ClientError, TimeoutError, OSError) as err:
            log.info("lifecycle hook in %s failed: %s", container_id[:12], err)
            return False
        return True

    async def remove(self, uid: str) -> None:
        """Removes every container and sandbox of `uid` from the runtime."""
        for c in await self.cri.list_containers(api.ContainerFilter(label_selector={rtcfg.LABEL_POD_UID: uid})):
            with contextlib.suppress(NotFoundError):
                await self.cri.remove_container(c.id)
            self._records.pop(c.id, None)
        for s in await self.cri.list_pod_sandbox(api.PodSandboxFilter(label_selector={rtcfg.LABEL_POD_UID: uid})):
            with contextlib.suppress(NotFoundError):
                await self.cri.stop_pod_sandbox(s.id)
            with contextlib.suppress(NotFoundError):
                await self.cri.remove_pod_sandbox(s.id)
            self._pod_ips.pop(s.id, None)

    async def _collect_dead(self, rt: PodRuntime) -> None:
        """Removes dead instances beyond the newest and one before it (the kubelet's container GC)."""
        for records in rt.containers.values():
            dead = [r for r in records[1:] if r.exited]
            for r in dead[MAX_DEAD_PER_CONTAINER:]:
                with contextlib.suppress(NotFoundError):
                    await self.cri.remove_container(r.id)
                self._records.pop(r.id, None)

