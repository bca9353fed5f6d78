"""``kyb server --cluster-reset [--cluster-reset-restore-path FILE]``: one embedded etcd member
becomes a new single-member cluster (k3s's flags), then the command exits.

Contract:

- Refused, with a :class:`ResetError` that says why and before anything changes, when: a server
  runs on the data dir (its PID file names a live process); the data dir holds no embedded etcd
  (no member in ``D/db/etcd``: a server that was never started with ``--cluster-init``; with a
  snapshot to restore, a fresh data dir is accepted, a SQLite server's is not); a reset already
  happened and the server has not run since (``D/db/reset-flag``, k3s's safety catch: it is written
  by a reset and removed by the next ordinary start; a restore ignores it, as k3s's does); the
  snapshot file is not a complete, intact etcd snapshot (the whole file is verified first:
  :func:`kybernetes.storage.snapshot.open_verified`).
- Without a snapshot, the member keeps its data: etcd runs once with ``--force-new-cluster``,
  which rewrites its membership to itself alone (committed in its WAL), so a member that lost its
  quorum (its peers gone) serves again. With one, the snapshot becomes the member's data
  (``etcdctl snapshot restore`` into a new directory, renamed into place; the data it replaces is
  kept as ``D/db/etcd.pre-restore-<unix time>``) and then the same run follows.
- Either way the member is then healthy (it answers a linearizable read), the only member of its
  cluster, under this node's name with this server's peer URL (updated if it was another), and it
  is stopped again before the command returns: the next ``kyb server --cluster-init`` on the data
  dir serves it. Any etcd still running on the member's data dir (left by a server killed with
  SIGKILL) is ended first, by PID, as an ordinary start does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from kybernetes import procctl
from kybernetes.aiorun import wait_for
from kybernetes.datadir import reset_flag, running_pid, store_path
from kybernetes.etcdmember import EmbeddedEtcd, wait_healthy
from kybernetes.storage.etcd_snapshot import EtcdSnapshotter, RestoreMember, etcdctl
from kybernetes.storage.snapshot import SnapshotError, restore_snapshot

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
HEALTHY_TIMEOUT = 60.0
CLUSTER_TOKEN = "kybernetes"
"""The ``--initial-cluster-token`` of ``EmbeddedEtcd``'s members (a restored member gets the same)."""


class ResetError(Exception):
    """A cluster reset refused or failed; the message says why."""


def done_message(data_dir: Path) -> str:
    return ("Managed etcd cluster membership has been reset, restart without --cluster-reset flag now: "
            f"kyb server --cluster-init --data-dir {data_dir}. Backup and delete {data_dir}/db on each "
            "peer etcd server and rejoin the nodes")


def check(member: EmbeddedEtcd, restore: Path | None) -> None:
    """Raises :class:`ResetError` for a data dir this reset must not touch (module docstring)."""
    d = member.server_data_dir
    pid = running_pid(d)
    if pid is not None:
        raise ResetError(f"a kybernetes server (pid {pid}) is running on {d}: stop it before --cluster-reset")
    has_member = (member.data_dir / "member").is_dir()
    if restore is None:
        if not has_member:
            raise ResetError(f"{d} has no embedded etcd member ({member.data_dir}): --cluster-reset resets the "
                             "etcd of a server started with --cluster-init")
        if reset_flag(d).exists():
            raise ResetError("Managed etcd cluster membership was previously reset, please remove the "
                             "--cluster-reset flag and start kyb server normally. If you need to perform another "
                             f"cluster reset, you must first manually delete the file at {reset_flag(d)}")
        return
    sqlite = store_path(d)
    if not has_member and sqlite is not None and sqlite.exists():
        raise ResetError(f"{d} keeps its store in SQLite ({sqlite}), not in an embedded etcd: restore its "
                         "snapshots with kyb snapshot restore")


async def cluster_reset(member: EmbeddedEtcd, restore: Path | None = None) -> None:
    """The reset (module docstring); :class:`ResetError` if it is refused or fails."""
    check(member, restore)
    logs = member.server_data_dir / "logs"
    if restore is not None:
        target = RestoreMember(member.data_dir, member.name, member.peer_url, "", CLUSTER_TOKEN)
        try:
            # restore_snapshot verifies the whole file before it calls `prepare` or touches the target.
            await restore_snapshot(EtcdSnapshotter("", member=target), restore, member.server_data_dir,
                                   member.data_dir, prepare=lambda: _stop_leftovers(member))
        except (SnapshotError, OSError) as e:
            raise ResetError(f"snapshot not restored: {e}") from None
        log.info("restored snapshot %s into %s", restore, member.data_dir)
    else:
        await asyncio.to_thread(_stop_leftovers, member)
    logs.mkdir(parents=True, exist_ok=True)
    await _force_new_cluster(member, logs / "etcd.log")
    reset_flag(member.server_data_dir).write_bytes(b"")


def _stop_leftovers(member: EmbeddedEtcd) -> None:
    for pid in member.stop_leftovers():
        log.warning("stopped etcd %d, left running on %s by an earlier server", pid, member.data_dir)


async def _force_new_cluster(member: EmbeddedEtcd, log_path: Path) -> None:
    """Runs the member once with ``--force-new-cluster`` until it is healthy and alone, then stops it."""
    with open(log_path, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *procctl.exec_dying_with_parent([*member.command(), "--force-new-cluster"]),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=procctl.child_env())
    try:
        try:
            await wait_healthy(member.client_url, member.client_tls(), lambda: proc.returncode is None, log_path,
                               HEALTHY_TIMEOUT)
        except TimeoutError as e:
            raise ResetError(str(e)) from None
        await asyncio.to_thread(_be_alone, member)
    except SnapshotError as e:  # etcdctl's
        raise ResetError(str(e)) from None
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _be_alone(member: EmbeddedEtcd) -> None:
    """Checks that the member is its cluster's only one, and gives it this server's peer URL."""
    members = _member_list(member)
    if len(members) != 1 or members[0].get("name") != member.name:
        names = ", ".join(str(m.get("name") or m.get("ID")) for m in members)
        raise ResetError(f"after the reset the etcd cluster has members {names}, not only {member.name}")
    [me] = members
    if me.get("peerURLs") != [member.peer_url]:
        log.info("updating the member's peer URL %s to %s", me.get("peerURLs"), member.peer_url)
        etcdctl(*_client_flags(member), "member", "update", f"{int(str(me['ID'])):x}", f"--peer-urls={member.peer_url}")


def _member_list(member: EmbeddedEtcd) -> list[dict[str, object]]:
    out = etcdctl(*_client_flags(member), "member", "list", "--write-out", "json")
    try:
        members = json.loads(out)["members"]
        assert isinstance(members, list)
        return members
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise ResetError(f"etcdctl member list: unexpected output ({e}): {out[:200]!r}") from None


def _client_flags(member: EmbeddedEtcd) -> list[str]:
    tls = member.client_tls()
    return [f"--endpoints={member.client_url}", f"--cacert={tls.cafile}", f"--cert={tls.certfile}",
            f"--key={tls.keyfile}", "--command-timeout=10s"]
