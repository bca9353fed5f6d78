"""Static pods: pods the kubelet runs from manifest files, and the mirror pods that show them in the API.

The kubelet's file source (``pkg/kubelet/config/file.go`` and ``common.go``) in one class:

- every regular, non-hidden file in the manifest directory holds one Pod, as YAML or JSON
  (kind ``Pod``, apiVersion ``v1``); a file that does not parse is skipped with a warning and
  does not hide the others;
- the pod is made this node's: ``spec.nodeName`` is the node, the name becomes ``NAME-NODE``,
  the namespace defaults to ``default``, it gets the API's pod defaults (restart policy, grace
  period, container defaults...) and a toleration of every ``NoExecute`` taint, so that node
  problems never evict the pods the node itself depends on;
- its uid is a hash of the node name, the file's path and the parsed pod, as the kubelet's
  ``applyDefaults`` computes it: the same file gives the same uid on every scan and across kubelet
  restarts, and any change of content gives a new uid — which is how the core learns that a
  static pod must be replaced (kill the old one, start the new one) rather than updated;
- annotations ``kubernetes.io/config.source=file``, ``kubernetes.io/config.hash=<uid>`` and
  ``kubernetes.io/config.seen`` (the first time this process saw that uid, kept stable across
  scans so that re-scanning does not look like a change).

:meth:`StaticPodSource.mirror_of` builds the mirror pod the core creates in the API server: the
same spec, ``kubernetes.io/config.mirror=<hash>`` and an ownerReference to the Node (controller),
so the garbage collector removes mirror pods of a deleted Node. The API server recognises the
mirror annotation and gives such pods no service-account volume.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path

import yaml

from kybernetes.api.defaults import default_pod_spec
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import format_micro

log = logging.getLogger(__name__)


CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
SOURCE_FILE = "file"


def is_static(pod: Obj) -> bool:
    """Whether a pod came from a static source (not from the API server)."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_SOURCE, "api") != "api"


def is_mirror(pod: Obj) -> bool:
    return CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def pod_name(name: str, node_name: str) -> str:
    """``generatePodName``: the static pod's name carries the node's (lower-cased) name."""
    return f"{name}-{node_name.lower()}"


class StaticPodSource:
    """Reads the manifest directory; each :meth:`scan` is the full, current set of static pods."""

    def __init__(self, manifest_dir: Path, node_name: str) -> None:
        self.manifest_dir = Path(manifest_dir)
        self.node_name = node_name
        self._seen: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        """Files that failed to parse in the last scan, and why (path -> message)."""

    def scan(self) -> list[Obj]:
        pods: list[Obj] = []
        self.errors = {}
        try:
            entries = sorted(self.manifest_dir.iterdir())
        except FileNotFoundError:
            return []
        seen_now: set[str] = set()
        names: dict[tuple[str, str], Path] = {}
        for path in entries:
            # Editors and config management leave dotfiles (swap files, atomic-rename temporaries).
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                pod = self._load(path)
            except (OSError, ValueError, yaml.YAMLError) as e:
                self.errors[str(path)] = str(e)
                log.warning("static pod manifest %s: %s", path, e)
                continue
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            if key in names:
                # Two files naming the same pod: the kubelet keeps the first and reports the rest.
                self.errors[str(path)] = f"duplicate pod {key[0]}/{key[1]} (also in {names[key]})"
                log.warning("static pod manifest %s: %s", path, self.errors[str(path)])
                continue
            names[key] = path
            uid = meta["uid"]
            seen_now.add(uid)
            meta["annotations"][CONFIG_SEEN] = self._seen.setdefault(uid, format_micro())
            pods.append(pod)
        # Forget pods whose files are gone, so that a re-created file counts as newly seen.
        self._seen = {uid: t for uid, t in self._seen.items() if uid in seen_now}
        return pods

    def _load(self, path: Path) -> Obj:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
        if not isinstance(data, dict):
            raise ValueError("not a Pod object")
        if data.get("kind") != "Pod" or data.get("apiVersion", "v1") != "v1":
            raise ValueError(f"want a v1 Pod, got {data.get('apiVersion')}/{data.get('kind')}")
        meta = data.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise ValueError("metadata.name is required")
        spec = data.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list) or not spec["containers"]:
            raise ValueError("spec.containers is required")
        return self._apply_defaults(data, path)

    def _apply_defaults(self, pod: Obj, path: Path) -> Obj:
        meta = pod["metadata"]
        # The uid hashes what the file says (before our own defaults), keyed by node and file, as
        # the kubelet's applyDefaults does: stable across scans and restarts, new on any change.
        if not meta.get("uid"):
            h = hashlib.md5(usedforsecurity=False)
            h.update(f"host:{self.node_name}".encode())
            h.update(f"file:{path}".encode())
            h.update(json.dumps(pod, sort_keys=True, separators=(",", ":"), default=str).encode())
            meta["uid"] = h.hexdigest()
        meta["name"] = pod_name(str(meta["name"]), self.node_name)
        meta["namespace"] = meta.get("namespace") or "default"
        meta.setdefault("labels", meta.get("labels") or {})
        annotations = meta.get("annotations") or {}
        meta["annotations"] = annotations
        annotations[CONFIG_HASH] = meta["uid"]
        annotations[CONFIG_SOURCE] = SOURCE_FILE
        spec = pod["spec"]
        spec["nodeName"] = self.node_name
        default_pod_spec(spec, pod=True)
        tolerations = spec.get("tolerations") or []
        everything = {"operator": "Exists", "effect": "NoExecute"}
        if everything not in tolerations:
            tolerations.append(everything)
        spec["tolerations"] = tolerations
        pod["apiVersion"] = "v1"
        pod["kind"] = "Pod"
        pod["status"] = {"phase": "Pending"}
        return pod

    def mirror_of(self, pod: Obj, node_uid: str) -> Obj:
        """The mirror pod for ``pod`` to create in the API (its uid is the API server's to choose)."""
        mirror = copy.deepcopy(pod)
        meta = mirror.setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        annotations[CONFIG_MIRROR] = annotations.get(CONFIG_HASH) or meta.get("uid", "")
        for field in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                      "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": node_uid,
                                    "controller": True}]
        mirror.pop("status", None)
        return mirror
