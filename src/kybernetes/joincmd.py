"""``kyb token``: create, list and revoke node join tokens on the server's machine, and show the
server token (``kyb token server``: ``DATA_DIR/server-token``, which lets another machine join as a
server; see ``kybernetes.apiserver.join.tokens``).

These commands edit the server's token file (``DATA_DIR/join-tokens``, see
``kybernetes.apiserver.join.tokens``) directly; the API server re-reads it on every join request,
so a new token works and a deleted one stops working at once, with no API call and no restart.
Being file-based, they run where the server's data dir is, as the user that owns it (root for
/var/lib/kybernetes) — the same trust as reading the CA key next to it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kybernetes.apiserver.join import tokens
from kybernetes.datadir import default_data_dir
from kybernetes.join import format_token


def _data_dir(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).resolve()


_data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="The server's data dir. Default: /var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")


@click.group("token")
def token_group() -> None:
    """Node join tokens (K10<CA hash>::node:<secret>) for `kyb agent --token`, and the server token."""


@token_group.command("create")
@_data_dir_option
@click.option("--ttl", default="24h", show_default=True, help="Lifetime (e.g. 30m, 24h, 7d); 0 never expires.")
@click.option("--description", default="", help="A note shown by `kyb token list`.")
def create(data_dir: Path | None, ttl: str, description: str) -> None:
    """Make a join token and print it (the only output, for scripts)."""
    try:
        lifetime = tokens.parse_duration(ttl)
        token = tokens.create_token(_data_dir(data_dir), ttl=lifetime, description=description)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(token)


@token_group.command("list")
@_data_dir_option
def list_(data_dir: Path | None) -> None:
    """Live tokens: the full token, when it expires, and its description."""
    d = _data_dir(data_dir)
    try:
        ca_pem = tokens.read_ca(d)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    now = dt.datetime.now(dt.UTC)
    rows = [(format_token(ca_pem, e.secret), _expires(e, now), e.description)
            for e in tokens.load_tokens(d) if not e.expired(now)]
    width = max((len(r[0]) for r in rows), default=5)
    click.echo(f"{'TOKEN':<{width}}  {'EXPIRES':<20}  DESCRIPTION")
    for token, expires, description in rows:
        click.echo(f"{token:<{width}}  {expires:<20}  {description}")


def _expires(e: tokens.TokenEntry, now: dt.datetime) -> str:
    at = e.expires_at()
    if at is None:
        return "never"
    left = at - now
    hours, rem = divmod(int(left.total_seconds()), 3600)
    return f"{at:%Y-%m-%dT%H:%MZ} ({hours}h{rem // 60:02d}m)"


@token_group.command("server")
@_data_dir_option
def server(data_dir: Path | None) -> None:
    """Print the server token (`kyb server --server URL --token T` on another machine), the only output."""
    d = _data_dir(data_dir)
    token = tokens.read_server_token(d)
    if token is None:
        raise click.ClickException(f"{d} has no server token: only a server with an embedded etcd "
                                   "(`kyb server --cluster-init`) can be joined by other servers")
    click.echo(token)


@token_group.command("delete")
@_data_dir_option
@click.argument("token")
def delete(data_dir: Path | None, token: str) -> None:
    """Revoke TOKEN (the full token, or its secret). Nodes that joined keep their certificates."""
    if not tokens.delete_token(_data_dir(data_dir), token):
        raise click.ClickException("no such token")
    click.echo("token deleted")
