"""The proxier's sync loop without a cluster or root: fake informer caches and a fake ``nft`` that
records each script it is fed, so we can count applies (debounce, unchanged skip, resync, stop)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kybernetes.client.workqueue import FakeClock
from kybernetes.proxy.proxier import Proxier, ProxyConfig


class FakeStore:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def list(self) -> list[dict[str, Any]]:
        return list(self.items)


class FakeInformer:
    def __init__(self) -> None:
        self.store = FakeStore()


class FakeFactory:
    def __init__(self) -> None:
        self.infs = {"services": FakeInformer(), "endpointslices": FakeInformer()}

    def informer(self, api_version: str, plural: str) -> FakeInformer:
        return self.infs[plural]

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        return True

    async def stop(self) -> None:
        pass


def fake_nft(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "calls"
    script = tmp_path / "nft"
    script.write_text(f"#!/bin/sh\ncat >> {log}\necho '#---' >> {log}\n")
    os.chmod(script, 0o755)
    return str(script), log


def calls(log: Path) -> list[str]:
    return [c for c in log.read_text().split("#---\n") if c] if log.exists() else []


def svc(name: str, ip: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"port": 80}]}}


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (in real time, bounded) until the proxier's loop has done what the test waits for."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def fake_proxier(nft: str, clock: FakeClock, **cfg: Any) -> tuple[Proxier, FakeFactory]:
    config = ProxyConfig(table_name="kyb-proxy-fake", bridge="kybpx-none", nft=nft, masquerade_all=False, **cfg)
    p = Proxier(config, client=object(), clock=clock)  # type: ignore[arg-type]  # the factory is fake
    factory = FakeFactory()
    p.factory = factory  # type: ignore[assignment]
    return p, factory


async def test_sync_loop(tmp_path: Path) -> None:
    nft, log = fake_nft(tmp_path)
    clock = FakeClock(100.0)
    p, factory = fake_proxier(nft, clock, min_sync_period=0.2, sync_period=30.0, check_period=1000.0)
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    await until(lambda: p.rounds == 1)
    assert len(calls(log)) == 1  # the first sync applies at once, without waiting for the debounce
    assert "table ip kyb-proxy-fake {" in calls(log)[0]

    # a burst of changes within min_sync_period becomes one apply, when the debounce has passed
    for i in range(5):
        factory.infs["services"].store.items.append(svc(f"s{i}", f"10.43.0.{i + 10}"))
        p.mark_dirty()
        await clock.advance(0.01)
    assert p.rounds == 1
    await clock.advance(0.2)
    await until(lambda: p.rounds == 2)
    assert len(calls(log)) == 2
    assert "10.43.0.14" in calls(log)[1]

    # a change event that does not change the table: a round, but nothing applied
    await clock.advance(1.0)
    p.mark_dirty()
    await until(lambda: p.rounds == 3)
    assert len(calls(log)) == 2

    # the periodic resync re-applies even without changes
    await until(clock.has_sleepers)
    await clock.advance(30.0)
    await until(lambda: p.rounds == 4)
    assert len(calls(log)) == 3

    stop.set()
    await asyncio.wait_for(task, 2)
    await p.stop()
    assert calls(log)[-1] == "add table ip kyb-proxy-fake\ndelete table ip kyb-proxy-fake\n"


async def test_a_table_deleted_or_flushed_by_hand_comes_back_within_the_check_period(tmp_path: Path) -> None:
    from .test_netpol_sync import check_repairs, fake_nft_with_table

    nft, log, listing = fake_nft_with_table(tmp_path, rules=1)  # nat-prerouting: jump services
    clock = FakeClock(100.0)
    p, _ = fake_proxier(nft, clock, sync_period=30.0, check_period=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    await check_repairs(p, log, listing, clock)
    assert "table ip kyb-proxy-fake {" in calls(log)[2]
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_failed_apply_is_retried(tmp_path: Path) -> None:
    script = tmp_path / "nft"
    failures = tmp_path / "failures"
    # The first round's two scripts (the in-place sync and the whole-table fallback) fail.
    script.write_text(f"#!/bin/sh\ncase \"$*\" in *list*) exit 1;; esac\ncat > /dev/null\n"
                      f"if [ $(wc -c < {failures} 2>/dev/null || echo 0) -lt 4 ]; then echo x >> {failures}; "
                      f"echo boom >&2; exit 1; fi\n")
    os.chmod(script, 0o755)
    clock = FakeClock()
    p, _ = fake_proxier(str(script), clock)
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    await until(lambda: p.rounds == 1)
    assert p.syncs == 0 and p.last_error is not None and "boom" in str(p.last_error)
    await until(clock.has_sleepers)
    await clock.advance(0.5)
    assert p.rounds == 1  # still backing off
    await clock.advance(0.5)  # RETRY_BACKOFF has passed
    await until(lambda: p.rounds == 2)
    assert p.syncs == 1 and p.last_error is None
    stop.set()
    await asyncio.wait_for(task, 2)


def test_nodeport_address_selection() -> None:
    """kube-proxy's GetNodeIPs over CIDRs (loopback only with localhost NodePorts), and the Node's
    primary address for ``primary``."""
    from kybernetes.proxy.proxier import node_primary_ip, nodeport_ips

    addrs = ["127.0.0.1", "10.74.0.1", "192.0.2.5", "10.71.0.1"]
    assert nodeport_ips(["10.74.0.0/24", "127.0.0.0/8"], addrs, localhost=True) == ["127.0.0.1", "10.74.0.1"]
    assert nodeport_ips(["10.74.0.0/24", "127.0.0.0/8"], addrs, localhost=False) == ["10.74.0.1"]
    assert nodeport_ips(["0.0.0.0/0"], addrs, localhost=False) == ["10.74.0.1", "192.0.2.5", "10.71.0.1"]
    node = {"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "ExternalIP", "address": "192.0.2.9"},
                                     {"type": "InternalIP", "address": "fd00::1"},
                                     {"type": "InternalIP", "address": "10.74.0.1"}]}}
    assert node_primary_ip(node) == "10.74.0.1"
    assert node_primary_ip({"status": {"addresses": [{"type": "ExternalIP", "address": "192.0.2.9"}]}}) == "192.0.2.9"
    assert node_primary_ip(None) is None
    p = Proxier(ProxyConfig(nodeport_addresses=["primary"]), client=object())  # type: ignore[arg-type]
    assert p._nodeport_ips(None) is None  # unknown node IP: every address, as kube-proxy
    assert p._nodeport_ips({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}) is None


def test_nodeport_addresses_flag() -> None:
    """``--nodeport-addresses``: comma-separated and repeatable CIDRs, or 'primary' alone (kube-proxy's rules)."""
    from click.testing import CliRunner

    from kybernetes.proxy.cmd import _nodeport_addresses, command

    def error(*args: str) -> str:
        res = CliRunner().invoke(command, ["--kubeconfig", "/dev/null", *args, "--table", "bad name"])
        return res.output

    assert _nodeport_addresses(None, None, ("10.0.0.0/8, 192.0.2.0/24", "127.0.0.1/32")) == \
        ["10.0.0.0/8", "192.0.2.0/24", "127.0.0.1/32"]  # type: ignore[arg-type]
    assert _nodeport_addresses(None, None, ("primary",)) == ["primary"]  # type: ignore[arg-type]
    assert "'foo': must be a valid CIDR" in error("--nodeport-addresses", "foo")
    assert "can't use both 'primary' and CIDRs" in error("--nodeport-addresses", "primary,10.0.0.0/8")
    assert "only IPv4" in error("--nodeport-addresses", "fd00::/64")


def test_node_heartbeats_do_not_resync() -> None:
    """Only the Node's primary address and its deletion/taint state make a sync, not status heartbeats."""
    p = Proxier(ProxyConfig(node_name="n"), client=object())  # type: ignore[arg-type]
    old: dict[str, Any] = {"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.74.0.1"}],
                                                "conditions": [{"type": "Ready", "lastHeartbeatTime": "t1"}]}}
    beat = {**old, "status": {**old["status"], "conditions": [{"type": "Ready", "lastHeartbeatTime": "t2"}]}}
    p._on_node_update(old, beat)
    assert not p.loop._dirty.is_set()
    p._on_node_update(old, {**old, "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler"}]}})
    assert p.loop._dirty.is_set()
    p.loop._dirty.clear()
    p._on_node_update(old, {**old, "status": {"addresses": [{"type": "InternalIP", "address": "10.74.0.2"}]}})
    assert p.loop._dirty.is_set()
