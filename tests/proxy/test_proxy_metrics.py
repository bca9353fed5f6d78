"""kube-proxy's metrics: the sync histogram and timestamp, the change counters and pending gauges
(a proxier with fake caches and a fake ``nft``), and the plain-HTTP metrics server on loopback."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.client.workqueue import FakeClock
from kybernetes.proxy.metrics import MetricsServer
from tests.proxy.test_proxier import fake_nft, fake_proxier, svc


def sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    return 0.0 if value is None else value


async def test_syncs_and_changes_are_counted(tmp_path: Path) -> None:
    nft, _log = fake_nft(tmp_path)
    p, factory = fake_proxier(nft, FakeClock(100.0))
    syncs_before = sample("kubeproxy_sync_proxy_rules_duration_seconds_count")
    services_before = sample("kubeproxy_sync_proxy_rules_service_changes_total")
    endpoints_before = sample("kubeproxy_sync_proxy_rules_endpoint_changes_total")

    s = svc("web", "10.43.0.10")
    factory.infs["services"].store.items.append(s)
    p._on_change("services", s)
    p._on_update("services", s, dict(s))
    p._on_change("endpointslices", {"metadata": {"name": "web-abc", "namespace": "default"}})
    assert sample("kubeproxy_sync_proxy_rules_service_changes_total") == services_before + 2
    assert sample("kubeproxy_sync_proxy_rules_endpoint_changes_total") == endpoints_before + 1
    assert sample("kubeproxy_sync_proxy_rules_service_changes_pending") == 1  # one Service, changed twice
    assert sample("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 1

    before = time.time()
    assert await p.sync(force=True)
    assert sample("kubeproxy_sync_proxy_rules_duration_seconds_count") == syncs_before + 1
    assert sample("kubeproxy_sync_proxy_rules_last_timestamp_seconds") >= before
    assert sample("kubeproxy_sync_proxy_rules_service_changes_pending") == 0
    assert sample("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 0


async def test_metrics_server_serves_the_registry_over_plain_http() -> None:
    server = MetricsServer("127.0.0.1:0")
    await asyncio.wait_for(server.serve(), 10)
    try:
        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()

        status, body = await asyncio.to_thread(get, "/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "process_cpu_seconds"} <= names
        assert await asyncio.to_thread(get, "/healthz") == (200, "ok")
        assert await asyncio.to_thread(get, "/proxyMode") == (200, "nftables")
    finally:
        await server.stop()
