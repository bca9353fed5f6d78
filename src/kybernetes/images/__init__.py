"""Images without the internet: build busybox-based OCI images and import them into containerd.

`oci` writes image archives (deterministically) from Debian's busybox-static; `importer` loads
archives into a containerd (`ctr images import`) or pushes them to a registry (Docker Registry HTTP
API v2). The `kyb image` command group is `kybernetes.kubelet.imagecmd` (it drives a node's
containerd); this package sits below the kubelet and imports no component.
"""

from kybernetes.images.oci import (
    BUSYBOX_IMAGE,
    PAUSE_IMAGE,
    build_busybox_image,
    ensure_builtin_images,
    images_dir,
)

__all__ = ["BUSYBOX_IMAGE", "PAUSE_IMAGE", "build_busybox_image", "ensure_builtin_images", "images_dir"]
