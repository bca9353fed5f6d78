"""Ephemeral containers on the node: started once in the pod's sandbox, never restarted.

What the kubelet 1.32 does with ``spec.ephemeralContainers`` (``computePodActions``, SyncPod's
"start ephemeral containers" step, ``startSpec.getTargetID``, ``generateLinuxContainerConfig``):

- an ephemeral container with no instance in the runtime is started, in the pod's running
  sandbox and before the init containers (a pod stuck in an init container can still be
  debugged); one that has run is never started again, whatever its exit;
- it shares the pod's network and IPC namespaces as every container does, and its volumes;
- with ``targetContainerName`` it joins that container's PID namespace (CRI ``NamespaceMode``
  TARGET with the target's container ID) when the pod's containers each have their own (neither
  ``shareProcessNamespace`` nor ``hostPID``, where it sees every process already); a target with
  no instance fails with the kubelet's "unable to find target container NAME"
  (CreateContainerConfigError, event Failed);
- its instances are labelled ``io.kubernetes.container.type=ephemeral``.

The start itself (image, environment, mounts, events) is the syncer's, as for any container;
this module adds only the CRI config's namespaces and label. Its status is
``status.ephemeralContainerStatuses`` (:func:`kybernetes.kubelet.status.ephemeral_statuses`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from kybernetes.api.obj import Obj
from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.cri import api
from kybernetes.kubelet.status import PodRuntime

if TYPE_CHECKING:
    from kybernetes.kubelet.sync import PodSyncer

CONTAINER_TYPE = "ephemeral"
"""The value of the container-type label on an ephemeral container's instances."""


async def start_ephemeral_containers(syncer: PodSyncer, pod: Obj, rt: PodRuntime,
                                     sandbox_config: api.PodSandboxConfig, paths: dict[str, Path]) -> float:
    """Starts every ephemeral container of ``pod`` that has never run; returns when the pod
    wants another pass (as ``PodSyncer._start`` does)."""
    requeue = float("inf")
    for ec in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        name = ec.get("name", "")
        if rt.latest(name) is not None:
            continue
        target = ec.get("targetContainerName") or ""
        target_id = ""
        if target:
            found = rt.latest(target)
            if found is None:
                message = f"unable to find target container {target}"
                syncer.waiting(rt.uid)[name] = ("CreateContainerConfigError", message)
                syncer.record(pod, "Warning", "Failed", f"Error: {message}")
                requeue = min(requeue, 1.0)
                continue
            target_id = found.id
        requeue = min(requeue, await syncer._start(pod, ec, rt, sandbox_config, paths, init=True,
                                                   configure=functools.partial(configure, target_id=target_id)))
    return requeue


def configure(config: api.ContainerConfig, target_id: str) -> None:
    """An ephemeral container's additions to its CRI config: its type label, and the target's PID
    namespace where the pod's containers each have their own."""
    config.labels[rtcfg.LABEL_CONTAINER_TYPE] = CONTAINER_TYPE
    namespaces = config.linux.security_context.namespace_options
    if target_id and namespaces.pid == api.CONTAINER:
        namespaces.pid = api.TARGET
        namespaces.target_id = target_id
