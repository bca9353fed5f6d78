"""The NetworkPolicy controller's loop without a cluster or root, as test_proxier does for the
proxier: fake informer caches, a fake ``nft`` recording each script, a fake clock; and the bridge's
``nf_call_iptables`` option in a directory standing for /sys/class/net."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kybernetes.client.workqueue import FakeClock
from kybernetes.proxy import netpol_sync
from kybernetes.proxy.netpol_sync import NetpolConfig, NetpolController

from .test_proxier import FakeFactory, FakeInformer, calls, fake_nft, until

NODE = "n1"


def pod(name: str, ip: str, node: str = NODE) -> dict[str, Any]:
    return {"metadata": {"namespace": "x", "name": name, "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}, "status": {"phase": "Running", "podIP": ip}}


DENY = {"metadata": {"namespace": "x", "name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def fake_controller(nft: str, clock: FakeClock, **cfg: Any) -> tuple[NetpolController, FakeFactory]:
    c = NetpolController(NetpolConfig(node_name=NODE, table_name="kyb-netpol-fake", bridge="kybnp-none", nft=nft,
                                      **cfg), client=object(), clock=clock)  # type: ignore[arg-type]
    factory = FakeFactory()
    factory.infs = {plural: FakeInformer() for _, plural in netpol_sync.RESOURCES}  # type: ignore[assignment]
    c.factory = factory  # type: ignore[assignment]
    return c, factory


async def test_sync_loop(tmp_path: Path) -> None:
    nft, log = fake_nft(tmp_path)
    clock = FakeClock(100.0)
    c, factory = fake_controller(nft, clock, min_sync_period=0.2, sync_period=30.0, check_period=1000.0)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await until(lambda: c.rounds == 1)
    assert len(calls(log)) == 1 and "table inet kyb-netpol-fake {" in calls(log)[0]

    # a policy and its pods arrive in a burst: one apply once the debounce has passed
    factory.infs["networkpolicies"].store.items.append(DENY)
    for i in range(3):
        factory.infs["pods"].store.items.append(pod(f"p{i}", f"10.9.0.{i + 2}"))
        c.mark_dirty()
        await clock.advance(0.01)
    assert c.rounds == 1
    await clock.advance(0.2)
    await until(lambda: c.rounds == 2)
    assert len(calls(log)) == 2 and "10.9.0.4 : jump ingress-" in calls(log)[1]

    # a change that does not change the table (a pod of another node): a round, nothing applied
    await clock.advance(1.0)
    factory.infs["pods"].store.items.append(pod("elsewhere", "10.9.1.2", node="n2"))
    c.mark_dirty()
    await until(lambda: c.rounds == 3)
    assert len(calls(log)) == 2

    # the periodic resync re-applies (it repairs a table flushed by hand)
    await until(clock.has_sleepers)
    await clock.advance(30.0)
    await until(lambda: c.rounds == 4)
    assert len(calls(log)) == 3

    stop.set()
    await asyncio.wait_for(task, 2)
    await c.stop()
    assert calls(log)[-1] == "add table inet kyb-netpol-fake\ndelete table inet kyb-netpol-fake\n"


def chain_listing(rules: int) -> str:
    """``nft -j list chain``'s output for a chain holding ``rules`` rules (handles 1, 2, ...)."""
    items = [{"metainfo": {}}, {"chain": {"name": "c"}}, *({"rule": {"handle": i + 1}} for i in range(rules))]
    return json.dumps({"nftables": items})


def fake_nft_with_table(tmp_path: Path, rules: int) -> tuple[str, Path, Path]:
    """A fake nft that records scripts; an apply writes the probed chain's listing (holding the
    ``rules`` rules the table text puts there) to a file that ``nft -j list chain`` prints (no
    file: no such table). Returns (nft, calls log, listing file)."""
    log, listing = tmp_path / "calls", tmp_path / "listing"
    listing_after_apply = tmp_path / "listing-after-apply"
    listing_after_apply.write_text(chain_listing(rules))
    script = tmp_path / "nft"
    script.write_text(f"#!/bin/sh\nif [ \"$2\" = list ]; then exec cat {listing}; fi\n"
                      f"cat >> {log}\necho '#---' >> {log}\ncp {listing_after_apply} {listing}\n")
    script.chmod(0o755)
    return str(script), log, listing


async def check_repairs(loop_owner: Any, log: Path, listing: Path, clock: FakeClock) -> None:
    """Drive a running sync loop: an intact table is only checked; a deleted or flushed one is
    re-applied at the next check."""
    await until(lambda: loop_owner.rounds == 1)
    for _ in range(3):  # the table is intact: checks, but no sync
        await until(clock.has_sleepers)
        await clock.advance(2.0)
        await asyncio.sleep(0.05)
    assert loop_owner.rounds == 1 and len(calls(log)) == 1
    listing.unlink()  # nft delete table
    await until(clock.has_sleepers)
    await clock.advance(2.0)
    await until(lambda: loop_owner.rounds == 2)
    assert len(calls(log)) == 2
    listing.write_text(chain_listing(0))  # nft flush table: the chain is there, its rules are not
    await until(clock.has_sleepers)
    await clock.advance(2.0)
    await until(lambda: loop_owner.rounds == 3)
    assert len(calls(log)) == 3
    await until(clock.has_sleepers)
    await clock.advance(2.0)
    await asyncio.sleep(0.05)
    assert loop_owner.rounds == 3  # repaired: no further apply


async def test_a_table_deleted_or_flushed_by_hand_comes_back_within_the_check_period(tmp_path: Path) -> None:
    nft, log, listing = fake_nft_with_table(tmp_path, rules=2)  # input: established, egress
    clock = FakeClock(100.0)
    c, _ = fake_controller(nft, clock, sync_period=30.0, check_period=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await check_repairs(c, log, listing, clock)
    assert "table inet kyb-netpol-fake {" in calls(log)[2]
    stop.set()
    await asyncio.wait_for(task, 2)


@pytest.mark.parametrize("br_netfilter", [True, False])
async def test_the_bridge_passes_netfilter_while_the_controller_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, br_netfilter: bool) -> None:
    sys_net = tmp_path / "net"
    option = sys_net / "kybnp-none" / "bridge" / "nf_call_iptables"
    global_sysctl = tmp_path / "bridge-nf-call-iptables"
    monkeypatch.setattr(netpol_sync, "SYS_NET", sys_net)
    monkeypatch.setattr(netpol_sync, "BRIDGE_NF_CALL", global_sysctl)
    if br_netfilter:
        global_sysctl.write_text("0\n")
    nft, _ = fake_nft(tmp_path)
    c, _ = fake_controller(nft, FakeClock())
    await c.sync()  # no bridge yet: nothing to do
    option.parent.mkdir(parents=True)
    option.write_text("0\n")
    await c.sync()
    assert option.read_text().strip() == ("1" if br_netfilter else "0")  # the option needs br_netfilter
    await c.stop()
    assert option.read_text().strip() == "0"  # restored
