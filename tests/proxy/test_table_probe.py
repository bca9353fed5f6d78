"""The sync loop's check of its table (syncloop.ChainProbe) against the real ``nft``, as root, in a
network namespace of the test's own: a hand change that lands between an apply and the probe's
read of the applied chain is not taken for our own state."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.client.workqueue import FakeClock
from kybernetes.proxy.masquerade import render_masquerade_table
from kybernetes.proxy.netpol import Plan
from kybernetes.proxy.netpol import render_table as render_netpol_table
from kybernetes.proxy.nftables import RenderOptions, chain_rules, run_nft
from kybernetes.proxy.nftables import render_table as render_proxy_table
from kybernetes.proxy.syncloop import ChainProbe

from .test_netpol_sync import fake_controller
from .test_proxier import fake_proxier, until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None,
                                reason="a network namespace and nft need root")


@pytest.fixture
def nft(tmp_path: Path) -> Iterator[str]:
    """An ``nft`` that runs in a network namespace of this test (removed with everything in it)."""
    ns = f"kybprobe{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        wrapper = tmp_path / "nft"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} nft "$@"\n')
        wrapper.chmod(0o755)
        yield str(wrapper)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=True, timeout=10)


def rules_in(nft: str, family: str, table: str, chain: str) -> int:
    res = subprocess.run([nft, "-j", "list", "chain", family, table, chain], capture_output=True, text=True,
                         check=True, timeout=10)
    return sum(1 for item in json.loads(res.stdout)["nftables"] if "rule" in item)


@pytest.mark.parametrize("owner", ["proxy", "netpol"])
async def test_a_flush_between_the_apply_and_the_probes_read_is_restored_at_the_next_check(
        nft: str, owner: str) -> None:
    clock = FakeClock(100.0)
    syncer: Any
    if owner == "proxy":
        syncer, _ = fake_proxier(nft, clock, sync_period=30.0, check_period=2.0)
        family, chain = "ip", "nat-prerouting"
    else:
        syncer, _ = fake_controller(nft, clock, sync_period=30.0, check_period=2.0)
        family, chain = "inet", "input"
    table = syncer.config.table_name
    apply = syncer.loop._sync
    hand_flushes = [["flush", "table", family, table]]

    async def apply_then_changed_by_hand(force: bool) -> Any:
        # The seam: the hand change lands after the apply returned, before the probe reads the chain.
        applied = await apply(force)
        if hand_flushes:
            await asyncio.to_thread(subprocess.run, [nft, *hand_flushes.pop()], check=True, timeout=10)
        return applied

    syncer.loop._sync = apply_then_changed_by_hand
    stop = asyncio.Event()
    task = asyncio.create_task(syncer.run(stop))
    try:
        await until(lambda: syncer.rounds == 1)
        assert rules_in(nft, family, table, chain) == 0  # flushed right after our apply
        await until(clock.has_sleepers)
        await clock.advance(2.0)  # the next check sees the damage and restores the table
        await until(lambda: syncer.rounds == 2)
        assert syncer.last_error is None
        assert rules_in(nft, family, table, chain) > 0
        assert syncer.syncs == 2
        assert await asyncio.to_thread(syncer.loop.probe.intact)  # restored, and read as ours
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await syncer.stop()


TABLES = {
    "proxy": ("ip", "kyb-probe-proxy", "nat-prerouting",
              render_proxy_table([], RenderOptions(table="kyb-probe-proxy")).text),
    "netpol": ("inet", "kyb-probe-netpol", "input", render_netpol_table(Plan(), "kyb-probe-netpol")),
    "network": ("ip", "kyb-probe-net", "postrouting", render_masquerade_table("kyb-probe-net", "10.42.0.0/16",
                                                                              "10.43.0.0/16")),
}


@pytest.mark.parametrize("owner", sorted(TABLES))
def test_the_probe_reads_its_chain_as_the_applied_text_put_it(nft: str, owner: str) -> None:
    """The rules our text puts in the probed chain are the rules nft lists there, so the probe
    takes our apply for ours; a flush before its read is not taken for ours."""
    family, table, chain, text = TABLES[owner]
    run_nft(text, nft=nft)
    assert len(chain_rules(text, chain)) == rules_in(nft, family, table, chain) > 0
    probe = ChainProbe(family, table, chain, nft)
    probe.remember(text)
    assert probe.intact()
    subprocess.run([nft, "flush", "table", family, table], check=True, timeout=10)
    assert not probe.intact()
    probe.remember(text)  # the flush landed between an apply and the probe's read
    assert not probe.intact()
    run_nft(text, nft=nft)
    probe.remember(text)
    assert probe.intact()
