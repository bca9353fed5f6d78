"""`kyb image`: put images on a node without a registry (like `kind load`), and build the built-ins.

    kyb image import [--data-dir DIR] FILE...     OCI layout or `docker save` archives
    kyb image build-builtin [--output DIR]        write the pause and busybox images as archives

`import` finds the node's own containerd from the data directory it is given: `kyb server`'s
(DATA/agent/containerd: the server's node runs as an agent in DATA/agent) or `kyb agent`'s
(DATA/containerd). When that containerd is running it imports there; otherwise it starts a
temporary one on the same directories, imports, and stops it, so the images are there when the
node starts. Either way it says on stderr where the images went. Images keep the names their
archives carry; an image named like a built-in one (docker.io/library/busybox:1.36) replaces it
for good, since the kubelet only imports a built-in image that is missing (or an older build of
its own). It lives with the kubelet because it drives the node's containerd; the images
themselves are :mod:`kybernetes.images`.
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click

from kybernetes.datadir import default_data_dir, node_dir
from kybernetes.images.importer import import_images
from kybernetes.images.oci import BUILTIN_IMAGES, write_builtin_images


def _configured_snapshotter(config_path: Path) -> str | None:
    """The CRI snapshotter in a node's containerd config.toml, if there is one."""
    try:
        config = tomllib.loads(config_path.read_text())
        value = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, str) else None


@dataclass
class Imported:
    names: list[str]
    node_dir: Path
    socket: str
    running: bool  # the node's own containerd (else a temporary one on its directories)

    def describe(self) -> str:
        how = "running containerd" if self.running else "containerd (not running: started for the import, then stopped)"
        return f"imported into the {how} of the node in {self.node_dir} (socket {self.socket})"


async def import_into_node(data_dir: Path, files: list[Path]) -> Imported:
    """Imports `files` into the node's containerd, starting a temporary one if it is not running."""
    from kybernetes.kubelet.containerd import Containerd, ContainerdError

    directory = node_dir(data_dir)
    node = Containerd(directory)
    running = Containerd(directory, endpoint=node.endpoint)
    try:
        await running.wait_ready(timeout=2.0)
    except ContainerdError:
        pass
    else:
        snapshotter = _configured_snapshotter(node.config_path)
        names = await import_images(node.socket, files, snapshotter=snapshotter)
        return Imported(names, directory, node.socket, running=True)
    await node.start()
    try:
        names = await import_images(node.socket, files, snapshotter=node.snapshotter)
        return Imported(names, directory, node.socket, running=False)
    finally:
        await node.stop()


@click.group("image")
def image_group() -> None:
    """Manage the node's container images without a registry."""


@image_group.command("import")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The data directory of `kyb server` or `kyb agent`. Default: the server's, "
                   "/var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(data_dir: Path | None, files: tuple[Path, ...]) -> None:
    """Import image archives (OCI layout or docker save) into the node's containerd.

    --data-dir is the server's or the agent's data directory. The image names go to stdout; where
    they went, to stderr.
    """
    result = asyncio.run(import_into_node((data_dir or default_data_dir()).resolve(), list(files)))
    for name in result.names:
        click.echo(name)
    click.echo(result.describe(), err=True)
    for name in sorted(set(result.names) & set(BUILTIN_IMAGES.values())):
        click.echo(f"{name} now replaces the node's built-in image of that name (the kubelet keeps yours)",
                   err=True)


@image_group.command("build-builtin")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory to write the archives into.")
def build_builtin_command(output: Path) -> None:
    """Write kybernetes' built-in images (pause, busybox) as OCI archives."""
    paths = write_builtin_images(output)
    for path, name in zip(paths, BUILTIN_IMAGES.values(), strict=True):
        click.echo(f"{path}\t{name}")
