"""``kyb snapshot save | ls | restore``: backups of a server's store (k3s's ``etcd-snapshot``).

``save`` takes an online, consistent snapshot of the store of the server data dir ``--data-dir``
(running or not) into ``--dir`` (default ``DATA_DIR/db/snapshots``) as
``<name>-<node>-<unix time>``; ``ls`` lists a directory's snapshots with the revision each holds;
``restore FILE`` verifies the file completely and only then makes it the store of ``--data-dir``,
which no server may be running on, or with ``--etcd-data-dir`` a fresh etcd data dir (etcd's
snapshots: ``--datastore-endpoint https://...`` with ``--datastore-cafile/-certfile/-keyfile`` on
``save``, which streams from the leader). On a ``--cluster-init`` data dir (an embedded etcd
member in ``D/db/etcd``) ``save`` needs no flags: it snapshots the running member's cluster with
the server's etcd client certificate (``D/tls/etcd-client.*``), as k3s's ``etcd-snapshot save``
does; its snapshots are restored with ``kyb server --cluster-reset --cluster-reset-restore-path``. The work is :mod:`kybernetes.storage.snapshot`'s; see
docs/architecture.md ("Snapshots") for why ``save`` reads the store file itself rather than
asking the server.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import click

from kybernetes.datadir import default_data_dir, snapshot_dir, store_path
from kybernetes.storage.snapshot import (
    ON_DEMAND,
    SnapshotError,
    Snapshotter,
    list_snapshots,
    restore_snapshot,
    save_snapshot,
    snapshotter_for,
)

_data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="The server's data dir. Default: /var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")
_endpoint_option = click.option("--datastore-endpoint", default="",
                                help="The server's --datastore-endpoint (empty or sqlite://PATH, or etcd's "
                                     "https://HOST:2379[,...] / http://...).")


def _tls_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--datastore-keyfile", default="", help="TLS key for the etcd datastore.")(f)
    f = click.option("--datastore-certfile", default="", help="TLS certificate for the etcd datastore.")(f)
    return click.option("--datastore-cafile", default="", help="TLS CA of the etcd members' certificates.")(f)


def _dir(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).resolve()


@click.group("snapshot")
def snapshot_group() -> None:
    """Save, list and restore snapshots of the server's store."""


@snapshot_group.command("save")
@_data_dir_option
@_endpoint_option
@_tls_options
@click.option("--name", default=ON_DEMAND, show_default=True, help="The snapshot's name, before -<node>-<time>.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where to write it. Default: DATA_DIR/db/snapshots.")
@click.option("--node-name", default=None, help="The node named in the file name (default: the host name).")
def save(data_dir: Path | None, datastore_endpoint: str, datastore_cafile: str, datastore_certfile: str,
         datastore_keyfile: str, name: str, directory: Path | None, node_name: str | None) -> None:
    """Take a snapshot of the store, online and consistent (of an etcd store: from its leader)."""
    d = _dir(data_dir)
    if not name or "/" in name:
        raise click.UsageError(f"invalid snapshot name {name!r}")
    tls = (datastore_cafile, datastore_certfile, datastore_keyfile)
    if not datastore_endpoint and _has_embedded_etcd(d):
        datastore_endpoint, tls = _embedded_endpoint(d)
    try:
        snapshotter = snapshotter_for(d, datastore_endpoint, tls)
        info = asyncio.run(save_snapshot(snapshotter, directory or snapshot_dir(d),
                                         name, node_name or socket.gethostname()))
    except (SnapshotError, OSError) as e:
        raise click.ClickException(str(e)) from None
    assert info.header is not None
    click.echo(f"Snapshot {info.path.name} saved at revision {info.header.revision}: {info.path}")


def _has_embedded_etcd(d: Path) -> bool:
    """A ``--cluster-init`` data dir: its store is the etcd member in D/db/etcd, not D/db/state.db."""
    return (d / "db" / "etcd" / "member").is_dir()


def _embedded_endpoint(d: Path) -> tuple[str, tuple[str, str, str]]:
    """The running embedded member's client URL and the API server's etcd client certificate
    (D/tls/etcd-client.*), as k3s's etcd-snapshot uses its server's; a usage error if it is not running."""
    from kybernetes.etcdmember import EmbeddedEtcd, running_client_urls  # grpc: only here

    member = EmbeddedEtcd(d, "")
    urls = running_client_urls(member.data_dir)
    if not urls:
        raise click.UsageError(f"{d} keeps its store in an embedded etcd ({member.data_dir}) that is not running: "
                               "start the server (kyb server --cluster-init) to take a snapshot")
    tls = member.client_tls()
    return urls[0], (tls.cafile, tls.certfile, tls.keyfile)


@snapshot_group.command("ls")
@_data_dir_option
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="The directory to list. Default: DATA_DIR/db/snapshots.")
def ls(data_dir: Path | None, directory: Path | None) -> None:
    """List snapshots: name, location, size, creation time, revision."""
    rows = [("Name", "Location", "Size", "Created", "Revision")]
    for info in list_snapshots(directory or snapshot_dir(_dir(data_dir))):
        h = info.header
        created = datetime.fromtimestamp(h.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if h else "-"
        rows.append((info.path.name, f"file://{info.path}", str(info.size), created,
                     str(h.revision) if h else f"invalid: {info.problem}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


@snapshot_group.command("restore")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@_data_dir_option
@_endpoint_option
@click.option("--etcd-data-dir", type=click.Path(path_type=Path), default=None,
              help="Restore an etcd snapshot into this new etcd data dir (etcdctl snapshot restore's --data-dir).")
@click.option("--etcd-name", default="default", show_default=True, help="The restored etcd member's name.")
@click.option("--initial-cluster", default="", help="NAME=PEER_URL[,...] of the restored etcd cluster "
                                                   "(default: the member alone).")
@click.option("--initial-advertise-peer-urls", "peer_url", default="http://localhost:2380", show_default=True,
              help="The restored etcd member's peer URL.")
def restore(file: Path, data_dir: Path | None, datastore_endpoint: str, etcd_data_dir: Path | None,
            etcd_name: str, initial_cluster: str, peer_url: str) -> None:
    """Make snapshot FILE the store of --data-dir (no server may be running on it), or, with
    --etcd-data-dir, an etcd data dir that an etcd started as --etcd-name serves.

    The whole file is verified (format, length, checksum) before anything is overwritten; the
    store it replaces is kept beside it as ``state.db.pre-restore-<unix time>`` (an etcd data
    dir as ``DIR.pre-restore-<unix time>``)."""
    d = _dir(data_dir)
    try:
        if etcd_data_dir is not None:
            from kybernetes.storage.etcd_snapshot import EtcdSnapshotter, RestoreMember  # grpc: only here

            target = etcd_data_dir.resolve()
            snapshotter: Snapshotter = EtcdSnapshotter(  # no endpoint: a restore never talks to etcd
                "", member=RestoreMember(target, etcd_name, peer_url, initial_cluster))
        else:
            store = store_path(d, datastore_endpoint)
            if not datastore_endpoint and _has_embedded_etcd(d):
                raise click.UsageError(f"{d} keeps its store in an embedded etcd: restore a snapshot into it with "
                                       f"kyb server --cluster-reset --cluster-reset-restore-path {file} --data-dir {d}")
            if store is None:  # etcd: the store is no file of the data dir
                raise click.UsageError("restoring into etcd needs --etcd-data-dir (a new etcd data dir to "
                                       "start etcd on)")
            target, snapshotter = store, snapshotter_for(d, datastore_endpoint)
        header = asyncio.run(restore_snapshot(snapshotter, file, d, target))
    except (SnapshotError, OSError) as e:
        raise click.ClickException(f"snapshot not restored: {e}") from None
    if etcd_data_dir is not None:
        click.echo(f"Restored {file} (revision {header.revision}) into {target}; start etcd there as "
                   f"--name {etcd_name} --initial-advertise-peer-urls {peer_url}")
        return
    click.echo(f"Restored {file} (revision {header.revision}) into {target}; "
               f"start the server with: kyb server --data-dir {d}")
