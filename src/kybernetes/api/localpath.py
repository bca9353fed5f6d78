"""Names the local-path provisioner shares with the kubelet and the add-ons (neither imports the other).

- `PROVISIONER`: the StorageClass provisioner the `local-path` add-on serves, `kybernetes.io/local-path`.
- `ROOT_ANNOTATION`: on a Node, the directory under which that node's local-path volumes live,
  `<agent data dir>/storage`; the kubelet sets it at registration. A class's `nodePath`
  parameter overrides it.
"""

from __future__ import annotations

PROVISIONER = "kybernetes.io/local-path"
ROOT_ANNOTATION = "kybernetes.io/local-path-root"
STORAGE_SUBDIR = "storage"
"""The kubelet's root: this directory under its data dir."""

__all__ = ["PROVISIONER", "ROOT_ANNOTATION", "STORAGE_SUBDIR"]
