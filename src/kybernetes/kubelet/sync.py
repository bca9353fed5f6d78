"""Syncing one pod: make the runtime match the pod spec (computePodActions + SyncPod), or stop it.

`PodSyncer.sync_pod(pod)` is one pass, run by the pod's worker (never two at once for a pod):

1. read the pod's runtime state: its sandboxes and container instances, by the `io.kubernetes.pod.uid`
   label (which is also how a restarted kubelet adopts what is already running);
2. mount its volumes (FailedMount: retry shortly);
3. no ready sandbox: (re)create one — unless restartPolicy is Never and containers already ran —
   after killing whatever still runs in the old one; write the managed /etc/hosts with the pod IP;
4. kill running containers whose liveness (or startup) probe failed ("Container X failed liveness
   probe, will be restarted"; the probe's terminationGracePeriodSeconds if set) or whose spec changed;
5. ephemeral containers that never ran are started, once (`kybernetes.kubelet.ephemeral`);
   init containers and sidecars as `sidecars.init_actions` decides (in order, one plain init container
   at a time, each sidecar once it started; sidecars kept running and restarted with back-off);
6. app containers, once initialized: start those never started; restart exited ones as
   restartPolicy says (Always; OnFailure if the exit code was not 0) subject to the CrashLoopBackOff
   back-off; with Never/OnFailure, once every app container is done, stop the sidecars (a Job's pod
   then Succeeds).

Starting a container: back-off check, image (ImageManager: pull policy, ErrImagePull /
ImagePullBackOff), environment (CreateContainerConfigError), mounts (volumes, /etc/hosts, a fresh
termination-message file), CreateContainer + StartContainer, events Created/Started, the postStart
hook (`lifecycle`; a failure kills the container: FailedPostStartHook, PostStartHookError), and
registering its probes. What blocked a container becomes its waiting reason in the
status (`waiting`), and the pass returns when it wants to run again (`requeue`).

`terminate(pod, grace)` is killPod: every running container is killed in parallel — preStop hook
(`lifecycle`: exec, HTTP GET or sleep; FailedPreStopHook), then, for sidecars, their turn
(`sidecars.TerminationOrdering`: after the app containers, in reverse order), then StopContainer with
what is left of the grace period (at least 2 s) — then the sandbox is stopped. `remove(uid)` deletes the pod's runtime objects.
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

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import format_duration
from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet import security, sidecars
from kybernetes.kubelet.cri import CRIClient, CRIError, NotFoundError, api
from kybernetes.kubelet.dns import DNSSettings, PodDNS, compose_pod_dns, read_host_resolv_conf
from kybernetes.kubelet.ephemeral import start_ephemeral_containers
from kybernetes.kubelet.images import ImageManager, ImagePullError
from kybernetes.kubelet.lifecycle import (
    POST_START_FAILED,
    REASON_LIVENESS,
    REASON_STARTUP,
    container_spec,
    kill_grace,
    run_hook,
)
from kybernetes.kubelet.logrotation import remove_container_logs
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
    def startup_failed(self, pod_uid: str, name: str) -> bool: ...


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
    seccomp_root: Path | None = None
    """Where Localhost seccomp profiles live (the kubelet's ROOT_DIR/seccomp)."""
    pod_cgroup: Callable[[Obj], str] | None = None
    """Makes the pod's cgroup and returns its path, the sandbox's cgroup_parent (kybernetes.kubelet.cm)."""


class RuntimeClassNotFound(Exception):
    """A pod names a RuntimeClass that does not exist (its sandbox cannot be created)."""

    def __init__(self, name: str) -> None:
        # The kubelet's lister's NotFound names the resource in the singular.
        super().__init__(f'runtimeclass.node.k8s.io "{name}" not found')


@dataclass
class _PodState:
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    probed: dict[str, str] = field(default_factory=dict)  # container name -> id registered with probes


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def _recorded_grace(rec: ContainerRecord) -> int | None:
    """The grace period recorded on a container when it was created (the kubelet restores it from
    the container's labels): what applies to a pod known only from the runtime, its spec gone (a
    static pod whose file was removed, a leftover)."""
    try:
        return int(rec.annotations[rtcfg.ANN_GRACE])
    except (KeyError, ValueError):
        return None


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
                self.record(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err.go_error}")
                return rt, 5.0
            except RuntimeClassNotFound as err:
                self.record(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err}")
                return rt, 5.0
        sandbox_config = self.sandbox_config(pod, rt)

        killed = False
        restarts = ", will be restarted" if policy != "Never" else ""
        for c in spec.get("containers") or []:
            latest = rt.latest(c["name"])
            if latest is None or not latest.running:
                continue
            if self.probes.liveness_failed(uid, c["name"]):
                reason = REASON_STARTUP if self.probes.startup_failed(uid, c["name"]) else REASON_LIVENESS
                await self.kill_container(pod, latest, kill_grace(pod, c, reason), rt.pod_ip,
                                          f"Container {c['name']} failed {reason} probe{restarts}")
                killed = True
            elif latest.hash and latest.hash != rtcfg.container_hash(c):
                await self.kill_container(pod, latest, kill_grace(pod, c), rt.pod_ip,
                                          f"Container {c['name']} definition changed{restarts}")
                killed = True
        if killed:
            rt = await self.runtime_state(uid)

        requeue = RESYNC
        requeue = min(requeue, await start_ephemeral_containers(self, pod, rt, sandbox_config, paths))
        inits = sidecars.init_actions(pod, rt, self.probes)
        for kill in inits.kill:
            await self.kill_container(pod, kill.record, kill_grace(pod, container_spec(pod, kill.record.name),
                                                                   kill.reason), rt.pod_ip, kill.message)
        if inits.kill:
            rt = await self.runtime_state(uid)
        for c in inits.start:
            after = await self._start(pod, c, rt, sandbox_config, paths, init=True)
            if not sidecars.is_sidecar(c):
                requeue = min(requeue, after)
                break
            # A sidecar that started lets the next init container (or the app containers) go.
            requeue = min(requeue, 0.2 if after == RESYNC and not c.get("startupProbe") else after)
        self._probe_running(pod, rt, sidecars.sidecars(spec))
        if inits.initialized:
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
        if sidecars.app_containers_done(pod, rt) and rt.running():
            await self.terminate(pod, rt, stop_sandbox=False)  # the Job's work is done: stop the sidecars
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
                     paths: dict[str, Path], *, init: bool,
                     configure: Callable[[api.ContainerConfig], None] | None = None) -> float:
        """Starts (or restarts) one container; returns when the pod wants another sync.
        ``configure`` adjusts the CRI config last (an ephemeral container's namespaces)."""
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
            mounts = list(self.volumes.mounts_for(pod, c, paths))
            mounts.extend(self._managed_mounts(pod, c, mounts))
            config = rtcfg.container_config(pod, c, restart_count=restart_count, env=env, mounts=mounts, init=init,
                                            qos_class=(pod.get("status") or {}).get("qosClass", ""),
                                            image_user=await self._image_user(c),
                                            seccomp_root=self.node.seccomp_root or "")
        except rtcfg.ConfigError as err:
            st.waiting[name] = ("CreateContainerConfigError", str(err))
            self.record(pod, "Warning", "Failed", f"Error: {err}")
            return 5.0
        if configure is not None:
            configure(config)
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
        failure = post_start and await run_hook(self.cri.exec_sync, pod, c, post_start, cid, rt.pod_ip, None,
                                                self._http_fallback(pod))
        if failure:
            # The handler's message stays out of the event (it may hold secrets), as in the kubelet.
            self.record(pod, "Warning", "FailedPostStartHook", "PostStartHook failed")
            log.info("postStart hook of %s failed: %s", name, failure)
            pre_stop = (c.get("lifecycle") or {}).get("preStop")
            record = ContainerRecord(id=cid, name=name, init=init, state=api.CONTAINER_RUNNING, restart_count=0,
                                     hash="", annotations={rtcfg.ANN_PRESTOP: json.dumps(pre_stop)} if pre_stop else {})
            await self.kill_container(pod, record, kill_grace(pod, c), rt.pod_ip, "FailedPostStartHook")
            st.waiting[name] = (POST_START_FAILED, failure)
            return 0.5
        if not init or sidecars.is_sidecar(c):
            self.probes.add(pod, name, cid, rt.pod_ip)
            st.probed[name] = cid
        return RESYNC

    async def _image_user(self, c: Obj) -> security.ImageUser:
        """Who the container's image runs as (the kubelet's getImageUser); a failed lookup is a
        configuration error, as in the kubelet."""
        try:
            return await security.image_user_of(self.cri, str(c.get("image") or ""))
        except CRIError as err:
            raise rtcfg.ConfigError(err.details) from None

    def _http_fallback(self, pod: Obj) -> Callable[[str], None]:
        def fallback(host: str) -> None:
            self.record(pod, "Warning", "LifecycleHTTPFallback",
                        f"request to HTTPS lifecycle hook {host} got HTTP response, retry with HTTP succeeded")
        return fallback

    def _probe_running(self, pod: Obj, rt: PodRuntime, containers: list[Obj]) -> None:
        """Probes the running `containers` not probed yet (e.g. after a kubelet restart)."""
        st = self.state(_uid(pod))
        for c in containers:
            latest = rt.latest(c["name"])
            if latest is not None and latest.running and st.probed.get(c["name"]) != latest.id:
                self.probes.add(pod, c["name"], latest.id, rt.pod_ip)
                st.probed[c["name"]] = latest.id

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

    async def terminate(self, pod: Obj, rt: PodRuntime, grace: int | None = None, *,
                        stop_sandbox: bool = True) -> None:
        """Kills every running container (preStop hooks at once; app containers, then sidecars in
        reverse order: `sidecars.TerminationOrdering`), then stops the sandboxes."""
        uid = rt.uid
        running = rt.running()
        if running:
            ordering = None
            if sidecars.sidecars(pod.get("spec") or {}):
                ordering = sidecars.TerminationOrdering(pod, [r.name for r in running])
            await asyncio.gather(*(self.kill_container(
                pod, r, kill_grace(pod, container_spec(pod, r.name), recorded=_recorded_grace(r))
                if grace is None else grace, rt.pod_ip,
                f"Stopping container {r.name}", override=grace is not None, ordering=ordering) for r in running))
        if not stop_sandbox:
            return
        self.probes.remove_pod(uid)
        self.state(uid).probed.clear()
        for s in rt.sandboxes:
            if s.state == api.SANDBOX_READY:
                with contextlib.suppress(NotFoundError):
                    await self.cri.stop_pod_sandbox(s.id)

    async def kill_container(self, pod: Obj, rec: ContainerRecord, grace: int, pod_ip: str, message: str,
                             *, override: bool = False, ordering: sidecars.TerminationOrdering | None = None) -> None:
        """killContainer: the Killing event, the preStop hook (within the grace period; a failure is a
        FailedPreStopHook event), the container's turn (sidecars), then StopContainer with what is
        left of the grace period (at least 2 s unless a grace period of 0 was forced)."""
        self.record(pod, "Normal", "Killing", message)
        started = time.monotonic()
        hook = rec.annotations.get(rtcfg.ANN_PRESTOP)
        if hook and grace > 0:
            try:
                handler = json.loads(hook)
            except ValueError:
                handler = {}
            spec = container_spec(pod, rec.name) or {"name": rec.name}
            failure = await run_hook(self.cri.exec_sync, pod, spec, handler, rec.id, pod_ip, grace,
                                     self._http_fallback(pod))
            if failure:
                self.record(pod, "Warning", "FailedPreStopHook", failure)
        if ordering is not None and grace > 0:
            await ordering.wait_for_turn(rec.name, grace - (time.monotonic() - started))
        remaining = grace - int(time.monotonic() - started)
        if not override or grace > 0:
            remaining = max(remaining, MIN_GRACE)
        self.probes.remove_container(_uid(pod), rec.name)
        self.state(_uid(pod)).probed.pop(rec.name, None)
        with contextlib.suppress(NotFoundError):
            await self.cri.stop_container(rec.id, max(0, remaining))
        if ordering is not None:
            ordering.terminated(rec.name)

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
                    await remove_container_logs(self.cri, r.id)  # its rotations too (the log manager's Clean)
                    await self.cri.remove_container(r.id)
                self._records.pop(r.id, None)

