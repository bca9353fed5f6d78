"""``kyb etcd member list|remove NAME``: the members of a server's embedded etcd.

Run on a server's machine (``--data-dir``, default the server's): it talks to that server's member
at ``https://127.0.0.1:<its client port>`` (recorded in ``DATA_DIR/db/etcd-member.json`` by the
server; ``--endpoints`` overrides) with the data dir's etcd client certificate
(``tls/etcd-client.crt``), as etcdctl would. A member is named after its server's node.

``remove`` refuses the data dir's own member (run it on another server: a member removed from
under its running server stops). Like every membership change, a removal needs the cluster's
quorum: in a cluster of two, remove the member while its server still runs, or lose the quorum
the removal itself needs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from kybernetes.datadir import default_data_dir
from kybernetes.etcdmember import EmbeddedEtcd
from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints
from kybernetes.storage.etcd_members import Member, MemberError, list_members, member_named, remove_member
from kybernetes.storage.interface import UnavailableError

_data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="The server's data dir. Default: /var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")
_endpoints_option = click.option(
    "--endpoints", default="", metavar="URLS",
    help="etcd client URLs (default: the data dir's member, https://127.0.0.1:<its client port>).")


@click.group("etcd")
def etcd_group() -> None:
    """The embedded etcd of a server (`kyb server --cluster-init` or `--server`)."""


@etcd_group.group("member")
def member_group() -> None:
    """The cluster's etcd members (one per server)."""


def _connect(data_dir: Path | None, endpoints: str) -> tuple[EtcdConnection, str]:
    """A connection to the cluster through this data dir's member, and that member's name ("" unknown)."""
    d = (data_dir or default_data_dir()).resolve()
    member = EmbeddedEtcd.load(d)
    if member is None and not endpoints:
        raise click.ClickException(f"{d} holds no etcd member: give the data dir of a server that runs one "
                                   "(`kyb server --cluster-init` or `--server`), or --endpoints")
    tls = TLSFiles(str(d / "tls" / "etcd-ca.crt"), str(d / "tls" / "etcd-client.crt"),
                   str(d / "tls" / "etcd-client.key"))
    url = endpoints or member.client_url  # type: ignore[union-attr]
    try:
        return EtcdConnection(parse_endpoints(url), tls, timeout=10.0), member.name if member else ""
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--endpoints") from None


def _run(coro):  # type: ignore[no-untyped-def]
    try:
        return asyncio.run(coro)
    except (MemberError, UnavailableError) as e:
        raise click.ClickException(str(e)) from None


@member_group.command("list")
@_data_dir_option
@_endpoints_option
def list_command(data_dir: Path | None, endpoints: str) -> None:
    """Every member: name, ID, status (started; learner: joining, not yet voting; unstarted: added,
    not yet run), peer and client URLs."""
    async def go() -> list[Member]:
        conn, _ = _connect(data_dir, endpoints)
        try:
            return await list_members(conn)
        finally:
            await conn.close()

    rows = [(m.name or "(unstarted)", m.hex_id, "unstarted" if not m.started else "learner" if m.learner else "started",
             ",".join(m.peer_urls), ",".join(m.client_urls)) for m in _run(go())]
    header = ("NAME", "ID", "STATUS", "PEER URLS", "CLIENT URLS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])


@member_group.command("remove")
@_data_dir_option
@_endpoints_option
@click.argument("name")
def remove_command(data_dir: Path | None, endpoints: str, name: str) -> None:
    """Remove the member NAME (a server's node name, or the ID `list` shows: an unstarted member has
    no name) from the cluster."""
    async def go() -> str:
        conn, own = _connect(data_dir, endpoints)
        try:
            by_id = [m for m in await list_members(conn) if m.hex_id == name.lower()]
            member = by_id[0] if by_id else await member_named(conn, name)
            if member.name and member.name == own:
                raise click.ClickException(f"{name} is this data dir's own member: remove it from another server")
            await remove_member(conn, member.id)
            return member.hex_id
        finally:
            await conn.close()

    click.echo(f"member {name} ({_run(go())}) removed")
