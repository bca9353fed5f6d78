"""``kyb local-path-provisioner``: flags -> :class:`ProvisionerConfig` -> the provisioner until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click

from kybernetes import aiorun
from kybernetes.api.localpath import PROVISIONER
from kybernetes.localpath.plan import HELPER_IMAGE


@click.command("local-path-provisioner")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), default=None,
              help="Default: the pod's in-cluster service account.")
@click.option("--namespace", default=lambda: os.environ.get("POD_NAMESPACE", "kube-system"),
              show_default="$POD_NAMESPACE, else kube-system", help="Where the helper pods run.")
@click.option("--provisioner-name", default=PROVISIONER, show_default=True,
              help="The StorageClass provisioner this serves.")
@click.option("--helper-image", default=HELPER_IMAGE, show_default=True,
              help="The image of the helper pods that create and remove directories (needs mkdir and rm).")
@click.option("--helper-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds a helper pod may take.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path | None, namespace: str, provisioner_name: str, helper_image: str,
            helper_timeout: float, verbose: int) -> None:
    """Provision local-path volumes: a directory on the claim's node, deleted on reclaim."""
    from kybernetes.client.rest import Client
    from kybernetes.localpath.provisioner import LocalPathProvisioner, ProvisionerConfig

    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    config = ProvisionerConfig(namespace=namespace, name=provisioner_name, helper_image=helper_image,
                               helper_timeout=helper_timeout)

    async def main() -> None:
        stop = aiorun.stop_on_signals()
        agent = "kybernetes-local-path-provisioner"
        client = (Client.from_kubeconfig(kubeconfig, user_agent=agent) if kubeconfig
                  else Client.in_cluster(user_agent=agent))
        task = asyncio.ensure_future(LocalPathProvisioner(client, config).run())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # the provisioner ended on its own: its error is the command's
        finally:
            for t in (task, stopper):
                t.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
            await client.close()

    aiorun.run(main())


if __name__ == "__main__":
    command()
