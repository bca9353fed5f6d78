"""`kyb image`: put images on a node without a registry (like `kind load`), and build the built-ins.

    kyb image import [--data-dir DIR] FILE...     OCI layout or `docker save` archives
    kyb image build-builtin [--output DIR]        write the pause and busybox images as archives

`import` uses the node's containerd when it is running (DATA/containerd/containerd.sock answers);
otherwise it starts a temporary containerd on the same data directory, imports, and stops it, so
the images are there when the node starts. Images keep the names their archives carry. It lives
with the kubelet because it drives the node's containerd; the images themselves are
:mod:`kybernetes.images`.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import click

from kybernetes.images.importer import import_images
from kybernetes.images.oci import BUILTIN_IMAGES, write_builtin_images
from kybernetes.paths import default_data_dir


def _configured_snapshotter(config_path: Path) -> str | None:
    """The CRI snapshotter in a node's containerd config.toml, if there is one."""
    try:
        config = tomllib.loads(config_path.read_text())
        value = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, str) else None


async def import_into_node(data_dir: Path, files: list[Path]) -> list[str]:
    """Imports `files` into the node's containerd, starting a temporary one if it is not running."""
    from kybernetes.kubelet.containerd import Containerd, ContainerdError

    node = Containerd(data_dir)
    running = Containerd(data_dir, endpoint=node.endpoint)
    try:
        await running.wait_ready(timeout=2.0)
    except ContainerdError:
        pass
    else:
        snapshotter = _configured_snapshotter(node.config_path)
        return await import_images(node.socket, files, snapshotter=snapshotter)
    await node.start()
    try:
        return await import_images(node.socket, files, snapshotter=node.snapshotter)
    finally:
        await node.stop()


@click.group("image")
def image_group() -> None:
    """Manage the node's container images without a registry."""


@image_group.command("import")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The node's data directory. Default: /var/lib/kybernetes as root, "
                   "~/.local/share/kybernetes otherwise.")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(data_dir: Path | None, files: tuple[Path, ...]) -> None:
    """Import image archives (OCI layout or docker save) into the node's containerd."""
    names = asyncio.run(import_into_node((data_dir or default_data_dir()).resolve(), list(files)))
    for name in names:
        click.echo(name)


@image_group.command("build-builtin")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory to write the archives into.")
def build_builtin_command(output: Path) -> None:
    """Write kybernetes' built-in images (pause, busybox) as OCI archives."""
    paths = write_builtin_images(output)
    for path, name in zip(paths, BUILTIN_IMAGES.values(), strict=True):
        click.echo(f"{path}\t{name}")
