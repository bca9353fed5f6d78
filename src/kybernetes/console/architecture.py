"""The architecture picture (``/api/overview``): components' health and rates, and every node.

Contract:

- :class:`Architecture` scrapes in the background every :data:`SCRAPE_INTERVAL` seconds, never
  per request: the API server's ``/metrics`` and ``/readyz?verbose`` through the API (the user's
  credentials: RBAC's nonResourceURLs), and each control-plane component's ``/metrics`` and
  ``/readyz`` at its URL (default ``https://127.0.0.1:10259`` scheduler, ``:10257`` controller
  manager, ``:10258`` cloud controller manager) with the same credentials and the kubeconfig's CA.
  A component that does not answer is skipped for :data:`COMPONENT_RETRY` seconds; its health then
  comes from its Lease in kube-system (renewed within its duration: ok; expired: failing; none:
  unknown). Node usage comes from metrics.k8s.io every :data:`USAGE_INTERVAL` seconds when served.
- Rates (numbers per second) are counter deltas between two scrapes divided by the time between
  them (:func:`rate`); a counter that went down (a restart) gives no rate for that interval.
  Gauges are summed over their series. A value that cannot be read is absent from ``rates``.
- :meth:`Architecture.overview` is the last picture (CONSOLE.md's shape): the control plane, the
  first :data:`MAX_NODES` nodes by name, node, not-ready and pod counts, ``collectedAt``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.quantity import cpu_millis, to_bytes
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.client import Client
from kybernetes.console.cache import Model

log = logging.getLogger(__name__)
Obj = dict[str, Any]

SCRAPE_INTERVAL = 2.0
SCRAPE_TIMEOUT = 1.5
COMPONENT_RETRY = 10.0
USAGE_INTERVAL = 10.0
MAX_NODES = 200
PROXY_HEALTHZ_PORT = 10256  # kube-proxy's --healthz-bind-address port

COMPONENT_URLS = {"kube-scheduler": "https://127.0.0.1:10259",
                  "kube-controller-manager": "https://127.0.0.1:10257",
                  "cloud-controller-manager": "https://127.0.0.1:10258"}
LEASES = {"kube-scheduler": "kube-scheduler", "kube-controller-manager": "kube-controller-manager",
          "cloud-controller-manager": "cloud-controller-manager"}

Selector = Callable[[Mapping[str, str]], bool] | None
WANTED: dict[str, dict[str, Selector]] = {
    "kube-apiserver": {"apiserver_request_total": None, "apiserver_current_inflight_requests": None,
                       "apiserver_longrunning_requests": lambda labels: labels.get("verb") == "WATCH",
                       "apiserver_storage_objects": None, "apiserver_storage_db_total_size_in_bytes": None,
                       "apiserver_storage_size_bytes": None},
    "kube-scheduler": {"scheduler_schedule_attempts_total": None, "scheduler_pending_pods": None},
    "kube-controller-manager": {"workqueue_depth": None, "workqueue_adds_total": None},
    "cloud-controller-manager": {"workqueue_depth": None, "workqueue_adds_total": None},
}


@dataclass
class Sample:
    """One scrape: when (monotonic seconds) and each wanted metric's sum over its selected series."""

    at: float
    sums: dict[str, float] = field(default_factory=dict)


def parse_sums(text: str, wanted: Mapping[str, Selector]) -> dict[str, float]:
    """Sum the samples of each wanted metric (selected series only) in a Prometheus text body.

    A metric declared (``# TYPE``) without series sums to 0 (a labelled counter nothing has
    counted yet). Only lines of wanted metrics are parsed: a kube-apiserver body is megabytes."""
    names = tuple(wanted)
    lines = [ln for ln in text.splitlines()
             if ln.startswith(names) or (ln.startswith("# TYPE ") and ln[7:].startswith(names))]
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for name in (family.name, f"{family.name}_total"):
            if name in wanted:
                sums.setdefault(name, 0.0)
        for s in family.samples:
            if s.name not in wanted:
                continue
            select = wanted[s.name]
            if select is None or select(s.labels):
                sums[s.name] = sums.get(s.name, 0.0) + float(s.value)
    return sums


def rate(prev: Sample | None, cur: Sample, name: str) -> float | None:
    """A counter's rate per second between two scrapes; None without both values or after a reset."""
    if prev is None or name not in prev.sums or name not in cur.sums or cur.at <= prev.at:
        return None
    delta = cur.sums[name] - prev.sums[name]
    if delta < 0:
        return None
    return round(delta / (cur.at - prev.at), 3)


def rates_of(component: str, prev: Sample | None, cur: Sample) -> dict[str, float]:
    """The contract's rates of one component from its last two scrapes."""
    s = cur.sums
    out: dict[str, float | None] = {}
    if component == "kube-apiserver":
        out = {"requestsPerSecond": rate(prev, cur, "apiserver_request_total"),
               "watches": s.get("apiserver_longrunning_requests"),
               "inflight": s.get("apiserver_current_inflight_requests")}
    elif component == "store":
        out = {"objects": s.get("apiserver_storage_objects"),
               "dbSizeBytes": s.get("apiserver_storage_db_total_size_in_bytes", s.get("apiserver_storage_size_bytes"))}
    elif component == "kube-scheduler":
        out = {"attemptsPerSecond": rate(prev, cur, "scheduler_schedule_attempts_total"),
               "pendingPods": s.get("scheduler_pending_pods")}
    elif component in ("kube-controller-manager", "cloud-controller-manager"):
        out = {"queueDepth": s.get("workqueue_depth"), "addsPerSecond": rate(prev, cur, "workqueue_adds_total")}
    return {k: v for k, v in out.items() if v is not None}


def lease_health(lease: Obj | None, now: datetime) -> tuple[str, str, str, str]:
    """(health, detail, holder, renewed) of a component or node from its Lease."""
    if lease is None:
        return "unknown", "no lease", "", ""
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    renewed_text = str(spec.get("renewTime") or spec.get("acquireTime") or "")
    renewed = parse_rfc3339(renewed_text)
    duration = spec.get("leaseDurationSeconds")
    if not holder or renewed is None or not isinstance(duration, int):
        return "failing", "the lease has no holder", holder, renewed_text
    late = (now - (renewed + timedelta(seconds=duration))).total_seconds()
    if late > 0:
        return "failing", f"lease held by {holder} expired {int(late)}s ago", holder, renewed_text
    return "ok", f"lease renewed by {holder}", holder, renewed_text


def readyz_check(body: str, check: str) -> str | None:
    """One named check's result in a ``/readyz?verbose`` body: "ok", "failed", or None if absent."""
    for line in body.splitlines():
        if line.startswith(f"[+]{check} "):
            return "ok"
        if line.startswith(f"[-]{check} "):
            return "failed"
    return None


def _format_usage(usage: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    if "cpu" in usage:
        out["cpu"] = f"{cpu_millis(usage['cpu'])}m"
    if "memory" in usage:
        out["memory"] = f"{to_bytes(usage['memory']) // (1 << 20)}Mi"
    return out


@dataclass
class _Target:
    name: str
    client: Client
    via_api: bool
    samples: list[Sample] = field(default_factory=list)
    readyz: str | None = None
    skip_until: float = 0.0


class Architecture:
    """The background scraper and the overview it keeps (see the module contract)."""

    def __init__(self, model: Model, component_urls: Mapping[str, str] | None = None) -> None:
        self.model = model
        urls = {**COMPONENT_URLS, **(component_urls or {})}
        self.targets = [_Target("kube-apiserver", model.client, True)]
        for name, url in urls.items():
            if url:
                cfg = dataclasses.replace(model.client.config, server=url.rstrip("/"), tls_server_name=None)
                self.targets.append(_Target(name, Client(cfg, user_agent="kyb-console"), False))
        self.latest: Obj | None = None
        self._usage_at = 0.0
        self._proxy_at = 0.0
        self.proxy_health: dict[str, tuple[str, str]] = {}  # node -> (health, detail) of its kube-proxy
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="console-scrape")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for t in self.targets:
            if not t.via_api:
                await t.client.close()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                # Started once (later rounds find them running); an API server down now is retried.
                await asyncio.gather(*(self.model.ensure_quietly(r) for r in ("nodes", "pods", "leases")))
                await self.scrape_once()
            except ConnectionError as e:
                log.warning("console scrape: %s", e)
            except Exception:
                log.exception("console scrape failed")
            await asyncio.sleep(max(0.1, SCRAPE_INTERVAL - (time.monotonic() - started)))

    async def scrape_once(self) -> Obj:
        """One round: every reachable target, node usage when due; the new overview."""
        now = time.monotonic()
        due = [t for t in self.targets if now >= t.skip_until]
        await asyncio.gather(*(self._scrape(t) for t in due))
        if now - self._usage_at >= USAGE_INTERVAL:
            self._usage_at = now
            await self._node_usage()
        if now - self._proxy_at >= USAGE_INTERVAL:
            self._proxy_at = now
            await self._proxy_healths()
        self.latest = self.build()
        return self.latest

    async def _scrape(self, t: _Target) -> None:
        try:
            ready = await wait_for(t.client.request("GET", "/readyz", params={"verbose": "true"}),
                                           SCRAPE_TIMEOUT)
            t.readyz = ready if isinstance(ready, str) else str(ready)
        except errors.StatusError as e:  # it answered: not ready (or /readyz is not ours to read)
            t.readyz = f"[-]readyz: {e}" if e.code >= 500 else None
        except Exception as e:  # unreachable or not a component: its lease speaks for it
            log.debug("scrape of %s failed: %s", t.name, e)
            t.samples.clear()
            t.readyz = None
            if not t.via_api:
                t.skip_until = time.monotonic() + COMPONENT_RETRY
            return
        try:
            text = await wait_for(t.client.request("GET", "/metrics"), SCRAPE_TIMEOUT)
        except Exception as e:
            log.debug("metrics of %s: %s", t.name, e)
            t.samples.clear()
            return
        sums = parse_sums(text if isinstance(text, str) else "", WANTED[t.name])
        t.samples = [*t.samples[-1:], Sample(time.monotonic(), sums)]

    async def _node_usage(self) -> None:
        try:
            out = await wait_for(self.model.client.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes"),
                                         SCRAPE_TIMEOUT)
        except Exception as e:
            log.debug("node usage: %s", e)
            return
        items = out.get("items") if isinstance(out, dict) else None
        usage = {str(i["metadata"]["name"]): _format_usage(i.get("usage") or {}) for i in items or ()}
        self.model.set_node_usage(usage)

    async def _proxy_healths(self) -> None:
        """kube-proxy's /healthz (``--healthz-bind-address``, port 10256) on the nodes of this
        machine, at the node's own address (the API server serves no ``nodes/NAME:PORT/proxy``).
        Nodes elsewhere are never contacted (a hollow node's address is made up): their kube-proxy
        stays ``unknown``."""
        nodes = sorted(self.model.cache("nodes").objects(), key=lambda n: str((n.get("metadata") or {}).get("name")))
        local = {str(n["metadata"]["name"]): ip for n in nodes[:MAX_NODES] if (ip := internal_ip(n)) and is_local(ip)}

        async def probe(session: aiohttp.ClientSession, name: str, ip: str) -> tuple[str, tuple[str, str]]:
            host = f"[{ip}]" if ":" in ip else ip
            try:
                async with session.get(f"http://{host}:{PROXY_HEALTHZ_PORT}/healthz") as resp:
                    body = (await resp.text())[:300]
                    return name, ("ok", "/healthz ok") if resp.status == 200 else ("failing", body)
            except (aiohttp.ClientError, TimeoutError) as e:
                return name, ("unknown", str(e)[:300] or type(e).__name__)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)) as session:
            results = await asyncio.gather(*(probe(session, name, ip) for name, ip in local.items()))
        self.proxy_health = dict(results)

    # -- the picture --------------------------------------------------------------------------

    def build(self, now: datetime | None = None) -> Obj:
        now = now or datetime.now(UTC)
        nodes = self.model.cache("nodes")
        names = sorted(o["metadata"]["name"] for o in nodes.objects())
        return {"controlPlane": self._control_plane(now),
                "nodes": [self._node(nodes.get("", n) or {}, now) for n in names[:MAX_NODES]],
                "nodeCount": len(names),
                "nodesNotReady": sum(1 for r, _ in self.model.problems if r == "nodes"),
                "podCount": len(self.model.cache("pods")),
                "collectedAt": format_rfc3339(now)}

    def _control_plane(self, now: datetime) -> list[Obj]:
        by_name = {t.name: t for t in self.targets}
        api = by_name["kube-apiserver"]
        out = [self._entry("kube-apiserver", api, now)]
        store = _Target("store", api.client, True, api.samples)
        etcd = readyz_check(api.readyz, "etcd") if api.readyz else None
        out.append({**self._entry("store", store, now), **_store_health(etcd)})
        for name in LEASES:
            out.append(self._entry(name, by_name.get(name), now))
        return out

    def _entry(self, name: str, t: _Target | None, now: datetime) -> Obj:
        lease = self.model.get("leases", "kube-system", LEASES[name]) if name in LEASES else None
        health, detail, holder, renewed = lease_health(lease, now)
        if name not in LEASES:
            health, detail = "unknown", "not scraped"
        if t is not None and t.readyz is not None and name != "store":
            ok = t.readyz.strip().endswith("readyz check passed") or t.readyz.strip() == "ok"
            health, detail = ("ok", "/readyz ok") if ok else ("failing", t.readyz.strip()[-300:])
        rates = rates_of(name, t.samples[-2] if t and len(t.samples) > 1 else None, t.samples[-1]) \
            if t is not None and t.samples else {}
        return {"name": name, "health": health, "detail": detail, "holder": holder, "renewed": renewed,
                "rates": rates}

    def _node(self, node: Obj, now: datetime) -> Obj:
        meta, status = node.get("metadata") or {}, node.get("status") or {}
        name = str(meta.get("name") or "")
        conditions = [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason") or ""}
                      for c in status.get("conditions") or ()]
        ready = next((c["status"] for c in conditions if c["type"] == "Ready"), None)
        lease_state = lease_health(self.model.get("leases", "kube-node-lease", name), now)[0]
        info = status.get("nodeInfo") or {}
        pods = self.model.cache("pods").by_index("nodeName", name)
        return {"name": name, "ready": {"True": True, "False": False}.get(str(ready)), "conditions": conditions,
                "kubelet": {"health": lease_state, "version": info.get("kubeletVersion", "")},
                "runtime": info.get("containerRuntimeVersion", ""),
                "proxy": dict(zip(("health", "detail"), self.proxy_health.get(name, ("unknown", "not reachable from here")),
                                  strict=True)),
                "pods": len(pods),
                "podsRunning": sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running"),
                "capacity": status.get("capacity") or {}, "allocatable": status.get("allocatable") or {},
                "usage": self.model.node_usage.get(name) or None}


def _store_health(etcd: str | None) -> Obj:
    if etcd is None:
        return {"health": "unknown", "detail": "the API server's /readyz is not readable"}
    if etcd == "ok":
        return {"health": "ok", "detail": "the API server's etcd check passed"}
    return {"health": "failing", "detail": "the API server's etcd check failed"}


def internal_ip(node: Obj) -> str | None:
    return next((str(a.get("address")) for a in ((node.get("status") or {}).get("addresses") or ())
                 if a.get("type") == "InternalIP"), None)


def is_local(ip: str) -> bool:
    """Whether ``ip`` is an address of this machine (binding to it succeeds)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False
