"""The kubelet: the node agent that runs the pods bound to its node.

Assembly and data flow::

    containerd (own, in DATA/containerd; or --container-runtime-endpoint)
       ^ CRI                                   ^ CNI config DATA/cni/net.d (node podCIDR or default)
    PodSyncer (sync) --- ImageManager (images), VolumeManager (volumes), ProbeManager (probes)
       ^ one pass per pod, serialised
    PodWorkers (podworkers) <-- pod informer (spec.nodeName=NODE), static pods, Relister (PLEG,
       |                        1 s), probe results, timers
       v
    StatusManager (status) -> PATCH pods/NAME/status;  EventRecorder -> Events
    NodeStatusManager (nodestatus) -> the Node object and its Lease
    KubeletServer (server, :10250) <- logs/exec/attach/port-forward, resolved through this class

A pod worker's pass (`_sync`) picks one of four paths by what it knows about the pod:

- gone from every source (deleted with grace 0, or a static pod whose file was removed, or a
  runtime leftover at start-up): kill what runs (preStop and grace as recorded), remove the
  runtime objects and volumes; the worker ends;
- marked for deletion (deletionTimestamp): kill gracefully, write the final status, remove the
  runtime objects and volumes, then DELETE with gracePeriodSeconds=0 and the uid as precondition,
  which is what finally removes it from the API (and unblocks `kubectl delete`);
- already Succeeded/Failed: stop the sandbox, nothing else;
- otherwise `PodSyncer.sync_pod`, then the status; a pod that just became terminal has its sandbox
  stopped.

Restart safety: nothing is remembered outside the runtime. At start-up the kubelet lists the
runtime and wakes a worker for every pod UID it finds; a pod that still exists syncs as usual and
finds its containers running (same IDs, restart counts from their annotations, readiness carried
over from the API status until the probes report), so nothing restarts. `stop()` leaves containers
running unless `drain_on_exit`; a node shutdown (`stop(node_shutdown=True)`: SIGTERM with
shutdownGracePeriod set) kills the pods first (:mod:`kybernetes.kubelet.shutdown`).

The kubelet's settings are :class:`~kybernetes.kubelet.config.KubeletConfig`; its serving certificate
comes from :mod:`kybernetes.kubelet.serving_cert`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.client import Client, EventRecorder, SharedInformerFactory
from kybernetes.kubelet import active_deadline, sidecars
from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.cni import write_cni_config
from kybernetes.kubelet.config import KubeletConfig
from kybernetes.kubelet.containerd import Containerd
from kybernetes.kubelet.cri import CRIClient, CRIError, api
from kybernetes.kubelet.dns import DNSSettings
from kybernetes.kubelet.images import ImageManager, imported_builtins
from kybernetes.kubelet.logrotation import remove_orphaned_pod_log_dirs
from kybernetes.kubelet.metrics import POD_START_DURATION
from kybernetes.kubelet.podworkers import PodWorkers, Relister
from kybernetes.kubelet.serving_cert import ensure_serving_cert
from kybernetes.kubelet.shimreaper import ShimReaper, runtime_ids
from kybernetes.kubelet.status import StatusManager, generate_status
from kybernetes.kubelet.sync import NodeContext, PodSyncer

log = logging.getLogger(__name__)

RESOLV_CONF_CHECK_INTERVAL = 30.0
"""Seconds between checks of the host's resolv.conf against pods' DNS limits (the kubelet's)."""

TERMINAL = ("Succeeded", "Failed")


class Kubelet:
    """The node agent: assembles the managers of the module docstring and runs the pod workers."""

    def __init__(self, config: KubeletConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.node_name = config.node_name
        self.log_root = self.data_dir / "pods-logs"
        self.pods_dir = self.data_dir / "pods"
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._node_shutdown: asyncio.Future[None] | None = None
        self._node_shutdown_rejections: set[asyncio.Future[Any]] = set()  # pods not admitted meanwhile
        self._tasks: list[asyncio.Task[Any]] = []
        self._api_pods: dict[str, Obj] = {}  # uid -> pod (not mirror pods)
        self._mirrors: dict[str, Obj] = {}  # ns/name -> mirror pod
        self._static: dict[str, Obj] = {}  # uid -> static pod
        self._first_seen: dict[str, float] = {}  # uid -> monotonic time the kubelet first saw the pod
        self._last_seen: dict[str, Obj] = {}  # uid -> last pod object (to kill it properly once gone)
        self.host_ip = config.node_ip or _default_node_ip()
        self.hostname = socket.gethostname()
        self.containerd: Containerd | None = None
        self.cri: CRIClient | None = None
        self._shim_reaper: ShimReaper | None = None
        self.server: Any = None
        self.node_status: Any = None
        self.relister: Relister | None = None
        self.pod_cidr = ""

    # ---- pod sources ----

    def pod_for(self, uid: str) -> Obj | None:
        return self._api_pods.get(uid) or self._static.get(uid)

    def pods(self) -> list[Obj]:
        return [*self._api_pods.values(), *self._static.values()]

    def _find(self, namespace: str, name: str) -> Obj:
        for pod in self.pods():
            m = pod.get("metadata") or {}
            if m.get("namespace") == namespace and m.get("name") == name:
                return pod
        raise KeyError(f"{namespace}/{name}")

    def _on_pod(self, pod: Obj) -> None:
        from kybernetes.kubelet.staticpods import is_mirror

        m = pod.get("metadata") or {}
        uid = m.get("uid", "")
        if is_mirror(pod):
            self._mirrors[f"{m.get('namespace')}/{m.get('name')}"] = pod
            return
        if uid not in self._api_pods and self._node_shutdown is not None:
            from kybernetes.kubelet.shutdown import reject_pod

            reject_pod(self, pod)  # not admitted: the node is shutting down
            return
        if uid not in self._api_pods:
            self._carry_readiness(pod)
            self._first_seen.setdefault(uid, time.monotonic())
        self._api_pods[uid] = pod
        self._last_seen[uid] = pod
        self.workers.update(uid)

    def _on_pod_delete(self, pod: Obj) -> None:
        from kybernetes.kubelet.staticpods import is_mirror

        m = pod.get("metadata") or {}
        if is_mirror(pod):
            self._mirrors.pop(f"{m.get('namespace')}/{m.get('name')}", None)
            return
        uid = m.get("uid", "")
        self._api_pods.pop(uid, None)
        self._first_seen.pop(uid, None)
        self.workers.update(uid)

    def _carry_readiness(self, pod: Obj) -> None:
        """After a kubelet restart, running containers the API says were ready stay ready until
        their readiness probe reports (instead of flapping to not-ready)."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        probes = {c.get("name"): c.get("readinessProbe") or {} for c in sidecars.long_running(pod.get("spec") or {})}
        status = pod.get("status") or {}
        for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            if cs.get("name") not in probes:
                continue  # a plain init container is never ready again
            if cs.get("ready") and cs.get("containerID"):
                # Only until a failing probe would have had time to say so: a success ends it earlier.
                p = probes.get(cs["name"]) or {}
                window = (int(p.get("periodSeconds", 10)) * int(p.get("failureThreshold", 3))
                          + int(p.get("timeoutSeconds", 1)) + 1)
                self.carried_ready[(uid, cs["name"])] = (cs["containerID"].split("://", 1)[-1],
                                                         time.monotonic() + window)

    # ---- helpers the syncer and status use ----

    def record(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        target = pod
        from kybernetes.kubelet.staticpods import is_static

        if is_static(pod):
            m = pod.get("metadata") or {}
            target = self._mirrors.get(f"{m.get('namespace')}/{m.get('name')}") or pod
        self.recorder.event(target, type_, reason, message)

    def _record_node(self, type_: str, reason: str, message: str) -> None:
        # The kubelet's node reference: kind Node, name and UID both the node's name.
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "uid": self.node_name}}
        self.recorder.event(node, type_, reason, message)

    async def _get(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get("v1", plural, name, namespace)
        except errors.NotFound:
            return None

    async def _runtime_class(self, name: str) -> Obj | None:
        try:
            return await self.client.get("node.k8s.io/v1", "runtimeclasses", name)
        except errors.NotFound:
            return None

    def _is_ready(self, pod: Obj, rt: Any) -> Callable[[str], bool]:
        uid = (pod.get("metadata") or {}).get("uid", "")
        probed = {c["name"] for c in sidecars.long_running(pod.get("spec") or {}) if c.get("readinessProbe")}

        started = self._is_started(pod)

        def ready(name: str) -> bool:
            if not started(name):
                return False
            if name not in probed:
                return True
            latest = rt.latest(name)
            carried = self.carried_ready.get((uid, name))
            if latest is not None and carried is not None and carried[0] == latest.id and \
                    time.monotonic() < carried[1]:
                return True
            return bool(self.probes.is_ready(uid, name))
        return ready

    def _is_started(self, pod: Obj) -> Callable[[str], bool]:
        uid = (pod.get("metadata") or {}).get("uid", "")
        probed = {c["name"] for c in sidecars.long_running(pod.get("spec") or {}) if c.get("startupProbe")}
        return lambda name: name not in probed or bool(self.probes.is_started(uid, name))

    def _on_probe(self, uid: str, name: str, kind: str, result: bool) -> None:
        kind = str(kind).lower()
        if kind.startswith("readiness"):
            self.carried_ready.pop((uid, name), None)
        if not result:
            pod = self.pod_for(uid)
            if pod is not None:
                detail = ""
                with contextlib.suppress(Exception):
                    detail = self.probes.last_failure(uid, name, kind)
                # The prober's message already reads "Liveness probe failed: OUTPUT" (or "... errored: ...").
                self.record(pod, "Warning", "Unhealthy", detail or f"{kind.capitalize()} probe failed: ")
        self.workers.update(uid)

    # ---- the pod worker's pass ----

    async def _sync(self, uid: str) -> float | None:
        pod = self.pod_for(uid)
        if pod is None:
            await self._finish_gone(uid)
            return None
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            await self._finish_deleted(pod)
            return None
        if self.resources.eviction_pending(uid):
            await self.resources.evict(pod)
            return None
        if (pod.get("status") or {}).get("phase") in TERMINAL or (
                (self.status.last(uid) or {}).get("phase") in TERMINAL):
            rt = await self.syncer.runtime_state(uid)
            if rt.running() or rt.sandbox_id:
                await self.syncer.terminate(pod, rt)
            return None
        if active_deadline.exceeded(pod):
            evicted = (active_deadline.REASON, active_deadline.MESSAGE)
            self.record(pod, "Normal", *evicted)
            await self._write_status(pod, rt := await self.syncer.runtime_state(uid), evicted=evicted)
            await self.syncer.terminate(pod, rt)
            await self._write_status(pod, await self.syncer.runtime_state(uid), evicted=evicted)
            return None
        rt, requeue = await self.syncer.sync_pod(pod)
        status = await self._write_status(pod, rt)
        if status.get("phase") in TERMINAL:
            await self.syncer.terminate(pod, rt)
            return None
        left = active_deadline.remaining({"spec": pod.get("spec"), "status": status})
        return requeue if left is None else min(requeue, max(left, 0.05))

    async def _write_status(self, pod: Obj, rt: Any, *, terminating: bool = False,
                            evicted: tuple[str, str] | None = None, override: Obj | None = None) -> Obj:
        uid = (pod.get("metadata") or {}).get("uid", "")
        target, api_uid = pod, uid
        from kybernetes.kubelet.staticpods import is_static

        if is_static(pod):
            m = pod.get("metadata") or {}
            mirror = self._mirrors.get(f"{m.get('namespace')}/{m.get('name')}")
            if mirror is None:
                return {}
            target = {**pod, "status": mirror.get("status") or {}}
            api_uid = (mirror.get("metadata") or {}).get("uid", "")
        status = generate_status(target, rt, waiting=self.syncer.waiting(uid), is_ready=self._is_ready(pod, rt),
                                 is_started=self._is_started(pod), host_ip=self.host_ip, terminating=terminating,
                                 evicted=evicted)
        if override:  # fields a kill for the node's sake sets (kybernetes.kubelet.shutdown); conditions added
            status = {**status, **override,
                      "conditions": [*(status.get("conditions") or []), *(override.get("conditions") or [])]}
        status = self.resources.status_override(uid, status)
        written = await self.status.update(target, status, api_uid=api_uid)
        self._observe_start(uid, (target.get("status") or {}).get("phase"), status.get("phase"))
        if written is not None and not is_static(pod) and uid in self._api_pods:
            self._api_pods[uid] = written  # the informer will say the same soon; do not act on stale status
        return status

    def _observe_start(self, uid: str, old_phase: str | None, new_phase: str | None) -> None:
        """kubelet_pod_start_duration_seconds: first seen to first reported Running, once per pod."""
        first_seen = self._first_seen.get(uid)
        if first_seen is not None and new_phase == "Running" and old_phase in (None, "", "Pending"):
            POD_START_DURATION.observe(time.monotonic() - first_seen)
        if new_phase not in (None, "", "Pending"):
            self._first_seen.pop(uid, None)

    async def _finish_deleted(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        rt = await self.syncer.runtime_state(uid)
        await self.syncer.terminate(pod, rt)
        rt = await self.syncer.runtime_state(uid)
        # Clean up before the final status write: the API server may remove a deleting pod on
        # that write already (kybernetes' store deletes finalizer-less deleting objects on update).
        await self._cleanup(uid)
        await self._write_status(pod, rt, terminating=True)
        m = pod.get("metadata") or {}
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.delete("v1", "pods", m.get("name", ""), m.get("namespace", ""),
                                     grace_period_seconds=0, preconditions={"uid": uid})

    async def _finish_gone(self, uid: str) -> None:
        rt = await self.syncer.runtime_state(uid)
        if rt.sandboxes or rt.containers:
            last = self._last_seen.get(uid)
            if last is None:
                grace = 30
                for rec in rt.running():
                    grace = int(rec.annotations.get(rtcfg.ANN_GRACE, grace))
                last = {"metadata": {"uid": uid, "name": "", "namespace": ""}, "spec": {}}
            else:
                grace = int((last.get("metadata") or {}).get("deletionGracePeriodSeconds")
                            or (last.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            await self.syncer.terminate(last, rt, grace)
        await self._cleanup(uid)

    async def _cleanup(self, uid: str) -> None:
        await self.syncer.remove(uid)
        pod_dir = self.pods_dir / uid
        for managed in (pod_dir / "etc-hosts", pod_dir / "containers"):
            if managed.is_dir():
                import shutil
                shutil.rmtree(managed, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    managed.unlink()
        try:
            await self.volumes.teardown(uid)
        except Exception as err:
            log.warning("tearing down volumes of %s: %s", uid, err)
        self.probes.remove_pod(uid)
        self.syncer.forget(uid)
        self.status.forget(uid)
        self._last_seen.pop(uid, None)
        await self.resources.forget(uid)

    # ---- static pods ----

    async def _static_loop(self) -> None:
        from kybernetes.kubelet.staticpods import CONFIG_MIRROR, StaticPodSource

        assert self.config.pod_manifest_path is not None
        source = StaticPodSource(self.config.pod_manifest_path, self.node_name)
        while True:
            try:
                found = {p["metadata"]["uid"]: p for p in source.scan()}
                for uid in set(self._static) - set(found):
                    gone = self._static.pop(uid)
                    m = gone["metadata"]
                    mirror = self._mirrors.get(f"{m['namespace']}/{m['name']}")
                    if mirror is not None:
                        with contextlib.suppress(errors.NotFound, errors.Conflict):
                            await self.client.delete("v1", "pods", m["name"], m["namespace"], grace_period_seconds=0,
                                                     preconditions={"uid": mirror["metadata"]["uid"]})
                    self.workers.update(uid)
                for uid, pod in found.items():
                    if uid not in self._static:
                        self._static[uid] = pod
                        self._last_seen[uid] = pod
                        self.workers.update(uid)
                    m = pod["metadata"]
                    mirror = self._mirrors.get(f"{m['namespace']}/{m['name']}")
                    mm = (mirror or {}).get("metadata") or {}
                    if mirror is not None and ((mm.get("annotations") or {}).get(CONFIG_MIRROR) != uid
                                               or mm.get("deletionTimestamp")):
                        with contextlib.suppress(errors.NotFound, errors.Conflict):
                            await self.client.delete("v1", "pods", m["name"], m["namespace"], grace_period_seconds=0,
                                                     preconditions={"uid": mm.get("uid")})
                        mirror = None
                    if mirror is None and self.node_status is not None:
                        node_uid = ((self.node_status.node or {}).get("metadata") or {}).get("uid", "")
                        with contextlib.suppress(errors.AlreadyExists, errors.Conflict):
                            created = await self.client.create("v1", "pods", source.mirror_of(pod, node_uid),
                                                               m["namespace"])
                            self._mirrors[f"{m['namespace']}/{m['name']}"] = created
                            self.status.forget(uid)
                            self.workers.update(uid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("static pods")
            await asyncio.sleep(self.config.file_check_frequency)

    # ---- resolver for the KubeletServer ----

    async def container_id(self, namespace: str, pod: str, container: str) -> str:
        uid = self._find(namespace, pod)["metadata"]["uid"]
        rt = await self.syncer.runtime_state(uid)
        latest = rt.latest(container)
        if latest is None:
            raise KeyError(f"container {container} of {namespace}/{pod}")
        return latest.id

    async def sandbox_id(self, namespace: str, pod: str) -> str:
        uid = self._find(namespace, pod)["metadata"]["uid"]
        rt = await self.syncer.runtime_state(uid)
        if not rt.sandbox_id:
            raise KeyError(f"no running sandbox for {namespace}/{pod}")
        return rt.sandbox_id

    def log_path(self, namespace: str, pod: str, container: str, previous: bool) -> Path:
        p = self._find(namespace, pod)
        directory = rtcfg.pod_log_dir(self.log_root, p) / container
        try:
            numbers = sorted((int(f.stem) for f in directory.glob("*.log") if f.stem.isdigit()), reverse=True)
        except OSError:
            numbers = []
        index = 1 if previous else 0
        if len(numbers) <= index:
            raise KeyError(f"{'previous ' if previous else ''}log of {namespace}/{pod}/{container}")
        return directory / f"{numbers[index]}.log"

    def running_pods(self) -> list[Obj]:
        return self.pods()

    # ---- lifecycle ----

    async def stop(self, *, node_shutdown: bool = False) -> None:
        """Ends `run()`; pods keep running, unless `node_shutdown` with shutdownGracePeriod set:
        then they are killed first as for a node going down (kybernetes.kubelet.shutdown)."""
        if node_shutdown and self.ready.is_set() and not self._stop.is_set():
            from kybernetes.kubelet.shutdown import shutdown_node

            if self._node_shutdown is None:  # a second signal waits for the same shutdown
                self._node_shutdown = asyncio.ensure_future(shutdown_node(self))
            await self._node_shutdown
        self._stop.set()

    async def run(self) -> None:
        """Runs until `stop()` (see the module doc for what runs)."""
        try:
            await self._start()
            self.ready.set()
            await self._stop.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        cfg = self.config
        self.client = Client.from_kubeconfig(cfg.kubeconfig, user_agent=f"kubelet/{self.node_name}")
        self.recorder = EventRecorder(self.client, "kubelet", self.node_name)
        self.carried_ready: dict[tuple[str, str], tuple[str, float]] = {}
        self.workers = PodWorkers(self._sync)
        from kybernetes.kubelet.noderesources import NodeResources

        self.resources = NodeResources(self)
        await asyncio.to_thread(self.resources.setup)
        external = cfg.container_runtime_endpoint is not None
        cni_dir = cfg.cni_conf_dir or (None if external else self.data_dir / "cni" / "net.d")
        self.cni_dir = cni_dir
        if cni_dir is not None:
            from kybernetes.kubelet.leftovers import check_bridge

            # Another node's pods on the bridge hold addresses this node's IPAM would hand out again.
            await asyncio.to_thread(check_bridge, cfg.cni_bridge, self.data_dir)
            self.pod_cidr = cfg.default_pod_cidr
            write_cni_config(cni_dir, self.pod_cidr, bridge=cfg.cni_bridge)
        self.containerd = Containerd(self.data_dir, endpoint=cfg.container_runtime_endpoint,
                                     cni_conf_dir=cni_dir, registry_config_dir=cfg.registry_config_dir)
        await self.containerd.start()
        # Our own containerd is restarted if it dies; its containers run on in their shims.
        self._tasks.append(asyncio.create_task(self.containerd.supervise(), name="kubelet:containerd"))
        self.cri = CRIClient(self.containerd.endpoint, timeout=30)
        if not self.containerd.external:
            # Shims containerd 1.6 leaks when it dies while starting one (containerd#6860).
            cri = self.cri
            self._shim_reaper = ShimReaper(self.containerd.socket, self.containerd.state, lambda: runtime_ids(cri))
            self._tasks.append(asyncio.create_task(self._shim_reaper.run(), name="kubelet:shim-reaper"))
        version = await self.cri.version()
        if cfg.import_images:
            await self._import_builtin_images()

        from kybernetes.kubelet.probes import ProbeManager
        from kybernetes.kubelet.volumes import VolumeManager

        self.volumes = VolumeManager(self.client, self.pods_dir, self.node_name)
        self.probes = ProbeManager(self._exec_sync, self._on_probe)
        self.status = StatusManager(self.client)
        from kybernetes.images.oci import images_dir

        builtin_dir = images_dir(self.data_dir)
        self.images = ImageManager(self.cri, get_secret=lambda ns, n: self._get("secrets", ns, n), record=self.record,
                                   builtins=lambda: imported_builtins(builtin_dir), node_config_dir=self.data_dir)
        factory = SharedInformerFactory(self.client)
        self.factory = factory
        self.pod_informer = factory.informer("v1", "pods", field_selector=f"spec.nodeName={self.node_name}")
        self.service_informer = factory.informer("v1", "services")
        node_ctx = NodeContext(
            node_name=self.node_name, hostname=self.hostname, host_ip=self.host_ip, log_root=self.log_root,
            pods_dir=self.pods_dir, get_configmap=lambda ns, n: self._get("configmaps", ns, n),
            get_secret=lambda ns, n: self._get("secrets", ns, n), services=self.service_informer.store.list,
            allocatable=self._allocatable, get_runtime_class=self._runtime_class,
            dns=DNSSettings(tuple(cfg.cluster_dns), cfg.cluster_domain, cfg.resolv_conf, (self.host_ip,)),
            record_node=self._record_node, seccomp_root=self.data_dir / "seccomp")
        self.syncer = PodSyncer(self.cri, self.images, self.volumes, self.probes, self.record, node_ctx)
        node_ctx.pod_cgroup = self.resources.pod_cgroup

        await self._start_server()  # first: with --port 0 the Node must name the port it got
        await self._register(version)
        self.pod_informer.add_handler(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod_delete)
        await factory.start()
        for inf in (self.pod_informer, self.service_informer):
            await inf.wait_for_sync(60)
        # Adopt what the runtime runs: pods that still exist sync as usual (and find their
        # containers running); the others are killed and removed by their workers.
        self.relister = Relister(self.cri, self.workers.update, cfg.relist_interval)
        await self.relister.relist()
        for uid in self.relister.runtime_uids():
            self.workers.update(uid)
        self._tasks.append(asyncio.create_task(self.relister.run(), name="kubelet:pleg"))
        if cfg.pod_manifest_path is not None:
            self._tasks.append(asyncio.create_task(self._static_loop(), name="kubelet:static-pods"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="kubelet:housekeeping"))
        self._tasks.append(asyncio.create_task(self._check_resolv_conf(), name="kubelet:resolv-conf"))
        from kybernetes.kubelet.housekeeping import start_housekeeping

        self._tasks += start_housekeeping(self)  # image GC, log rotation

    async def _register(self, version: api.VersionResponse) -> None:
        from kybernetes.api.localpath import ROOT_ANNOTATION, STORAGE_SUBDIR
        from kybernetes.kubelet.csinode import ensure_csi_node
        from kybernetes.kubelet.nodestatus import NodeStatusManager

        cfg = self.config
        runtime_version = f"{version.runtime_name}://{version.runtime_version}"

        async def version_of() -> str:
            return runtime_version

        self.node_status = NodeStatusManager(
            self.client, self.node_name, kubelet_port=self.server.port, address=self.host_ip,
            pod_cidr_callback=self._on_pod_cidr, runtime_version=version_of, images=self._node_images,
            on_registered=lambda node: ensure_csi_node(self.client, node),
            labels=dict(cfg.labels), taints=list(cfg.taints), max_pods=cfg.max_pods, data_dir=self.data_dir,
            # Where the local-path provisioner puts this node's volumes (unless a class says otherwise).
            annotations={ROOT_ANNOTATION: str(self.data_dir / STORAGE_SUBDIR)},
            lease_interval=cfg.lease_interval, status_interval=cfg.status_interval,
            allocatable=self.resources.allocatable, pressure=self.resources.pressure)
        await self._check_runtime()
        node = await self.node_status.register()
        cidr = ((node or {}).get("spec") or {}).get("podCIDR")
        if cidr:
            await self._on_pod_cidr(cidr)
        self._tasks.append(asyncio.create_task(self.node_status.run(), name="kubelet:node-status"))
        self._tasks.append(asyncio.create_task(self.resources.run(), name="kubelet:eviction"))

    async def _node_images(self) -> list[Obj]:
        assert self.cri is not None
        return [{"names": [*i.repo_tags, *i.repo_digests], "sizeBytes": int(i.size)}
                for i in await self.cri.list_images()]

    async def _check_runtime(self) -> None:
        """Node readiness is the runtime's: RuntimeReady and NetworkReady (a CNI config loaded)."""
        assert self.cri is not None and self.node_status is not None
        if self._node_shutdown is not None:
            return  # NotReady until the end: the node is shutting down (kybernetes.kubelet.shutdown)
        try:
            conditions = {c.type: c for c in (await self.cri.status()).status.conditions}
        except CRIError as err:
            self.node_status.set_ready(False, f"container runtime is down: {err.details}")
            return
        bad = [c for name, c in conditions.items() if name in ("RuntimeReady", "NetworkReady") and not c.status]
        if bad:
            self.node_status.set_ready(False, "; ".join(f"{c.type}=false reason:{c.reason} message:{c.message}"
                                                        for c in bad))
        else:
            self.node_status.set_ready(True)

    async def _on_pod_cidr(self, cidr: str) -> None:
        if not cidr or cidr == self.pod_cidr or self.cni_dir is None:
            return
        self.pod_cidr = cidr
        write_cni_config(self.cni_dir, cidr, bridge=self.config.cni_bridge)
        try:
            assert self.cri is not None
            await self.cri.update_runtime_config(cidr)
        except CRIError as err:
            log.warning("UpdateRuntimeConfig(%s): %s", cidr, err)

    def _allocatable(self) -> dict[str, str]:
        node = getattr(self.node_status, "node", None) or {}
        return dict(((node.get("status") or {}).get("allocatable")) or {})

    async def _exec_sync(self, container_id: str, cmd: list[str], timeout: int) -> tuple[int, bytes, bytes]:
        assert self.cri is not None
        return await self.cri.exec_sync(container_id, cmd, timeout)

    async def _import_builtin_images(self) -> None:
        from kybernetes.kubelet.images import import_builtin_images

        assert self.cri is not None and self.containerd is not None
        await import_builtin_images(self.cri, self.containerd.socket, self.containerd.snapshotter, self.data_dir)
        # The system image (~200 MB, some seconds to import) arrives in the background: only
        # add-on pods use it, and they wait for it (imagePullPolicy Never: ErrImageNeverPull, retried).
        if self.config.import_system_image:
            self._tasks.append(asyncio.create_task(self._import_system_image(), name="kubelet:system-image"))

    async def _import_system_image(self) -> None:
        from kybernetes.kubelet.images import import_builtin_images

        assert self.cri is not None and self.containerd is not None
        started = time.monotonic()
        try:
            names = await import_builtin_images(self.cri, self.containerd.socket, self.containerd.snapshotter,
                                                self.data_dir, system=True)
        except Exception as err:  # the node runs without add-ons; its other pods are unaffected
            log.error("the kybernetes system image could not be built or imported: %s", err)
            return
        if names:
            log.info("imported %s in %.1fs", ", ".join(names), time.monotonic() - started)

    async def _start_server(self) -> None:
        from kybernetes.kubelet.auth import KUBELET_TTLS, DelegatedAuth
        from kybernetes.kubelet.machine import memory_bytes
        from kybernetes.kubelet.server import KubeletServer
        from kybernetes.kubelet.stats import StatsProvider

        cert, key, ca = ensure_serving_cert(self)
        assert self.cri is not None
        stats = StatsProvider(self._runtime, self.node_name, memory_capacity=memory_bytes())
        self.server = KubeletServer(self, self.cri, cert=cert, key=key, ca=ca, address=self.config.address,
                                    port=self.config.port, auth=DelegatedAuth(self.client, KUBELET_TTLS),
                                    stats=stats, node_name=self.node_name)
        await self.server.start()

    def _runtime(self) -> CRIClient:
        assert self.cri is not None
        return self.cri

    async def _housekeeping(self) -> None:
        """Runtime health for the Ready condition; volumes and logs of pods that exist nowhere any more."""
        while True:
            await asyncio.sleep(self.config.status_interval)
            try:
                live = set(self._api_pods) | set(self._static) | set(self.workers.uids())
                await self._check_runtime()
                for uid in self.volumes.orphaned(live):
                    await self.volumes.teardown(uid)
                if self.relister is not None:  # logs of pods gone from everywhere, the runtime included
                    await asyncio.to_thread(remove_orphaned_pod_log_dirs, self.log_root,
                                            live | self.relister.runtime_uids())
                await self.resources.remove_orphans(live | set(self._last_seen))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping")

    async def _check_resolv_conf(self) -> None:
        """The host's resolver file against pods' limits, every 30 s (the kubelet's CheckLimitsForResolvConf)."""
        from kybernetes.kubelet.dns import check_host_limits

        assert self.syncer is not None
        while True:
            for event in await asyncio.to_thread(check_host_limits, self.syncer.node.dns):
                self._record_node("Warning", event.reason, event.message)
            await asyncio.sleep(RESOLV_CONF_CHECK_INTERVAL)

    async def _drain_pod(self, uid: str) -> None:
        with contextlib.suppress(Exception):
            pod = self.pod_for(uid) or {"metadata": {"uid": uid}, "spec": {}}
            await self.syncer.terminate(pod, await self.syncer.runtime_state(uid))
            await self.syncer.remove(uid)
        with contextlib.suppress(Exception):
            # Drained pods leave nothing behind: their tmpfs volumes go too.
            await self.volumes.teardown(uid)

    async def _shutdown(self) -> None:
        """Undo whatever :meth:`_start` got to, however far that was (a part it never made is
        skipped); a step that fails is logged and the next ones still run."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        workers, syncer, probes = (getattr(self, name, None) for name in ("workers", "syncer", "probes"))
        factory, recorder, client = (getattr(self, name, None) for name in ("factory", "recorder", "client"))
        if workers is not None:
            await _quietly("stopping the pod workers", workers.stop())
        if self.server is not None:
            await _quietly("stopping the kubelet API", self.server.stop())
        if self.config.drain_on_exit and self.cri is not None and syncer is not None:
            # Pods are drained concurrently: each may wait out its own grace period.
            uids = {*(self.relister.runtime_uids() if self.relister is not None else ()), *self._api_pods}
            await asyncio.gather(*(self._drain_pod(uid) for uid in uids))
            if self._shim_reaper is not None:
                # Every pod is gone: a shim serving nothing now is one containerd leaked (killed
                # while starting it, containerd#6860); stopping containerd would leave it running.
                await _quietly("stopping leaked shims", self._shim_reaper.sweep(grace=0))
        if probes is not None:
            await _quietly("stopping the probes", probes.stop())
        if factory is not None:
            for inf in factory.informers:
                await _quietly("stopping an informer", inf.stop())
        if recorder is not None:
            await _quietly("flushing events", wait_for(recorder.close(), 5))
        if client is not None:
            await _quietly("closing the API client", client.close())
        if self.cri is not None:
            await _quietly("closing the CRI client", self.cri.close())
            self.cri = None
        if self.containerd is not None and not self.containerd.external and self.config.stop_runtime_on_exit:
            await _quietly("stopping containerd", self.containerd.stop())


async def _quietly(what: str, step: Awaitable[Any]) -> None:
    """Await one shutdown step; its failure is logged, not raised (the other steps must still run)."""
    try:
        await step
    except Exception as err:
        log.warning("%s failed: %s", what, err or type(err).__name__)


def _default_node_ip() -> str:
    try:
        from kybernetes.kubelet.machine import node_ip

        return node_ip()
    except Exception:
        return "127.0.0.1"
