"""``kyb console``: serve the web console on this machine for one kubeconfig's user.

Contract: it prints exactly one line to stdout, ``Console: http://ADDRESS:PORT/?token=TOKEN``
(``--no-token``: without the query), flushed once it listens; logs go to stderr. It talks to the
API server with the kubeconfig's credentials (RBAC applies) until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import sys
import webbrowser
from pathlib import Path

import click
import yaml

from kybernetes import aiorun
from kybernetes.client import Client
from kybernetes.client.kubeconfig import ConfigError, default_kubeconfig_paths, load_kubeconfig
from kybernetes.console.server import Console, ConsoleConfig


def context_name(kubeconfig: Path | None, context: str | None) -> str:
    """The context in use: the flag, else the first kubeconfig's current-context."""
    if context:
        return context
    for p in [kubeconfig] if kubeconfig else default_kubeconfig_paths():
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("current-context"):
            return str(doc["current-context"])
    return ""


def _component_urls(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep:
            raise click.BadParameter(f"{v!r} is not NAME=URL", param_hint="--component-url")
        out[name] = url
    return out


async def _serve(console: Console, open_browser: bool) -> None:
    stop = aiorun.stop_on_signals()
    await console.start()
    try:
        click.echo(f"Console: {console.url}")
        sys.stdout.flush()
        if open_browser:
            webbrowser.open(console.url)
        await stop.wait()
    finally:
        await console.stop()
        await console.client.close()


@click.command("console")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Default: $KUBECONFIG, else ~/.kube/config.")
@click.option("--context", default=None, help="The kubeconfig context (default: its current-context).")
@click.option("--address", default="127.0.0.1", show_default=True, help="The address to serve on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the console in the default browser.")
@click.option("--no-token", is_flag=True, help="Serve without the one-time token (anyone who reaches the "
                                               "address acts with the kubeconfig's credentials).")
@click.option("--component-url", multiple=True, metavar="NAME=URL", hidden=True,
              help="Where a control-plane component serves /metrics and /readyz (kube-scheduler, "
                   "kube-controller-manager, cloud-controller-manager; empty URL: do not scrape).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path | None, context: str | None, address: str, port: int, open_browser: bool,
            no_token: bool, component_url: tuple[str, ...], verbose: int) -> None:
    """Serve a live web console of the cluster (architecture, journeys, lists, problems, logs)."""
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * verbose), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    try:
        cluster = load_kubeconfig(kubeconfig, context=context)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    config = ConsoleConfig(address=address, port=port, context=context_name(kubeconfig, context),
                           component_urls=_component_urls(component_url))
    if no_token:
        config.token = None
    console = Console(Client(cluster, user_agent="kyb-console"), config)
    aiorun.run(_serve(console, open_browser))
