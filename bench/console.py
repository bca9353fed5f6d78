"""Console benchmark: is the console's page responsive on a large cluster (issue 16)?

Run from the repository root (needs Debian's chromium and the playwright wheel, scripts/setup.sh)::

    .venv/bin/python -m bench.console                 # 5,000 hollow nodes, 10,000 pods (~6 minutes)
    .venv/bin/python -m bench.console --quick         # 200 nodes, 1,000 pods (smoke test, ~1 minute)

What is measured
----------------
A real ``kyb server`` (API server, scheduler, controller manager; fresh data dir) and ``kyb
hollow-nodes`` processes for the nodes (as ``bench.scheduler``: 4 CPU, 32Gi, 110 pods, 3 zones;
Leases renewed every 100 s, status every 300 s, so one Python API server on two cores keeps up).
The pods are created by this process bound to the nodes round robin (``spec.nodeName``: what is
measured is the console, not the scheduler), in 10 namespaces, 64 requests in flight, and the
hollow kubelets mark them Running; 20 more pods stay Pending (a nodeSelector no node has) so the
problems list is not empty. Then ``kyb console`` starts on the admin kubeconfig and headless
Chromium (Debian's, driven by Playwright, the launch of ``kybernetes.testing.CHROMIUM_ARGS``) logs in.

- **console sync**: ``kyb console`` started -> ``/api/list/pods`` reports every pod (its informers
  have listed and watch), and its CPU seconds and RSS then;
- **first render of the pods view**: a new tab opened on ``/#/pods`` -> the first row of the list
  in the document and painted (``performance.now()`` in the first animation frame after the row
  appears, measured from the navigation's start; an init script's MutationObserver watches for it);
  5 tabs, median and worst; the same for the architecture view (first node drawn);
- **page change**: ``pager-next`` clicked -> the next page's first row painted, 10 times; and a
  **search**: a pod's name typed into ``search`` -> the list shows only matching rows, 5 names;
- **the console's list API alone**: ``GET /api/list/pods?limit=100`` (server-side sort and page of
  every pod), p50/p99 of 20, to tell the console's share of the figures above from the browser's;
- **memory**: the page's JS heap (CDP ``Performance.getMetrics``: ``JSHeapUsedSize``,
  ``JSHeapTotalSize``, DOM ``Nodes``) after the runs and 10 s more on the live pods view, the
  renderer processes' RSS and PSS (from /proc: Chromium ``--type=renderer``), and the console
  process's RSS and CPU (while syncing, during the browser runs, and idle per second).

Goals (issue 16): first render of the pods view <= 2 s, page change <= 500 ms, JS heap <= 100 MB.
Results: a table with PASS/MISS and ``bench/results/console.json`` (with the machine's load average at
start and end: the machine is shared, and these are wall-clock figures).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procstat import CpuWindow, tree_pids, tree_rss
from bench.scheduler import (
    LEASE_INTERVAL,
    NODE_MONITOR_GRACE,
    STATUS_INTERVAL,
    Fleet,
    make_namespace,
    pctl,
    wait_nodes,
)
from kybernetes import aiorun
from kybernetes.client.rest import Client
from kybernetes.testing import CHROMIUM, CHROMIUM_ARGS, ConsoleProcess, ServerProcess, browser_missing

Obj = dict[str, Any]
NAMESPACES = 10
PENDING = 20
PREFIX = "con-"
GOALS = {"first_render_ms": 2000.0, "page_change_ms": 500.0, "js_heap_mb": 100.0}

# Set before the page's own scripts run: when the first list row is in the document, note the time
# of the next animation frame (the one that paints it), in ms since the navigation started.
FIRST_ELEMENT_SCRIPT = """
(() => {
  const note = (sel, key) => {
    const seen = () => {
      if (window[key] !== undefined || !document.querySelector(sel)) return false;
      window[key] = null;
      requestAnimationFrame(() => { window[key] = performance.now(); });
      return true;
    };
    const obs = new MutationObserver(() => { if (seen()) obs.disconnect(); });
    obs.observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-testid"]});
  };
  note('[data-testid^="row-"]', "__kybFirstRow");
  note('[data-testid^="arch-node-"]', "__kybFirstNode");
})();
"""

# In the page: do `action` (a function body), then wait until `done()` holds, then one animation
# frame; the milliseconds it all took.
TIMED_CHANGE_SCRIPT = """
async ([action, done, timeoutMs]) => {
  const act = new Function(action), ok = new Function("before", done);
  const before = [...document.querySelectorAll('[data-testid^="row-"]')].map(e => e.dataset.testid);
  const t0 = performance.now();
  act();
  await new Promise((resolve, reject) => {
    if (ok(before)) return resolve();
    const obs = new MutationObserver(() => { if (ok(before)) { obs.disconnect(); resolve(); } });
    obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    setTimeout(() => { obs.disconnect(); reject(new Error("timed out: " + done)); }, timeoutMs);
  });
  await new Promise(r => requestAnimationFrame(r));
  return performance.now() - t0;
}
"""
ROWS_JS = '[...document.querySelectorAll(\'[data-testid^="row-"]\')].map(e => e.dataset.testid)'
NEXT_PAGE = ("document.querySelector('[data-testid=\"pager-next\"]').click();",
             f"const now = {ROWS_JS}; return now.length > 0 && now[0] !== before[0];")


def search_action(text: str) -> tuple[str, str]:
    """Type ``text`` into the search box; done when every row (and at least one) is a match."""
    q = json.dumps(text)
    action = ("const el = document.querySelector('[data-testid=\"search\"]'); "
              f"el.value = {q}; el.dispatchEvent(new Event('input', {{bubbles: true}})); "
              "el.dispatchEvent(new Event('change', {bubbles: true}));")
    done = f"const now = {ROWS_JS}; return now.length > 0 && now.every(id => id.includes({q}));"
    return action, done


def pod(name: str, node: str | None) -> Obj:
    spec: Obj = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}}}],
                 "terminationGracePeriodSeconds": 0}
    if node:
        spec["nodeName"] = node
    else:
        spec["nodeSelector"] = {"bench.kybernetes.io/nowhere": "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}}, "spec": spec}


async def create_pods(client: Client, nodes: list[str], count: int) -> Obj:
    """``count`` pods bound round robin to ``nodes`` in :data:`NAMESPACES` namespaces, plus the
    Pending ones; waits until the hollow kubelets report most of them Running."""
    for k in range(NAMESPACES):
        await make_namespace(client, f"bench-{k}")
    sem = asyncio.Semaphore(64)

    async def create(i: int, node: str | None) -> None:
        async with sem:
            ns = f"bench-{i % NAMESPACES}"
            await client.create("v1", "pods", pod(f"p-{i:05d}" if node else f"pending-{i}", node), ns)

    t0 = time.monotonic()
    await asyncio.gather(*(create(i, nodes[i % len(nodes)]) for i in range(count)))
    await asyncio.gather(*(create(i, None) for i in range(PENDING)))
    created = time.monotonic() - t0
    running, deadline = 0, time.monotonic() + max(120.0, count / 50)
    while time.monotonic() < deadline:
        items, _ = await client.list_all("v1", "pods")
        running = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")
        if running >= count * 0.99:
            break
        await asyncio.sleep(3)
    return {"pods": count, "pending": PENDING, "create_s": round(created, 1),
            "running": running, "running_after_s": round(time.monotonic() - t0, 1)}


async def console_sync(console: ConsoleProcess, http: aiohttp.ClientSession, want: int, timeout: float) -> float:
    """Seconds from now until the console's pod list counts ``want`` pods."""
    t0 = time.monotonic()
    while True:
        try:
            async with http.get(f"{console.base}/api/list/pods", params={"limit": "1"}) as r:
                if r.status == 200 and int((await r.json()).get("total", 0)) >= want:
                    return time.monotonic() - t0
        except aiohttp.ClientError:
            pass
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the console did not list {want} pods in {timeout:.0f}s:\n{console.log()}")
        await asyncio.sleep(0.25)


async def list_api_latency(console: ConsoleProcess, http: aiohttp.ClientSession, runs: int = 20) -> Obj:
    lat = []
    for i in range(runs):
        t0 = time.perf_counter()
        async with http.get(f"{console.base}/api/list/pods",
                            params={"limit": "100", "offset": str((i % 5) * 100)}) as r:
            await r.read()
            assert r.status == 200, r.status
        lat.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(pctl(lat, 0.5), 1), "p99_ms": round(pctl(lat, 0.99), 1)}


def renderer_memory() -> Obj:
    """RSS and PSS (MB) of this process tree's Chromium renderers, from /proc."""
    rss = pss = 0
    count = 0
    for pid in tree_pids(os.getpid()):
        try:
            # Chromium rewrites its processes' titles: one string with spaces, not argv.
            if b"--type=renderer" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in rollup[1:] if ln.split()[-1:] == ["kB"]}
        rss += kb.get("Rss", 0)
        pss += kb.get("Pss", 0)
        count += 1
    return {"renderers": count, "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}


class Disturbances:
    """Chromium's ``ERR_NETWORK_CHANGED`` aborts in a browser context.

    Chromium fails every request in flight whenever an address or link of this machine changes
    (another cluster's pod veth, a test's network namespace); a sample during which that happened
    measured the machine, not the console, so :meth:`sample` takes it again (and counts it)."""

    def __init__(self, ctx: Any) -> None:
        self.aborts = 0
        self.resampled = 0
        ctx.on("requestfailed", self._failed)

    def _failed(self, request: Any) -> None:
        if "ERR_NETWORK_CHANGED" in str(request.failure):
            self.aborts += 1

    async def sample(self, take: Any, tries: int = 5) -> float:
        for attempt in range(tries):
            before = self.aborts
            try:
                value = float(await take())
            except Exception:
                if self.aborts == before or attempt == tries - 1:
                    raise
                self.resampled += 1
                continue
            if self.aborts == before:
                return value
            self.resampled += 1
        raise RuntimeError(f"every one of {tries} tries was disturbed by a network change")


async def first_render(ctx: Any, net: Disturbances, url: str, key: str, runs: int) -> list[float]:
    """Open ``url`` in ``runs`` new tabs; ms from navigation start to the first element painted."""

    async def once() -> float:
        page = await ctx.new_page()
        try:
            await page.goto(url)
            await page.wait_for_function(f"typeof window.{key} === 'number'", timeout=20_000)
            return float(await page.evaluate(f"window.{key}"))
        finally:
            await page.close()

    return [await net.sample(once) for _ in range(runs)]


async def open_pods(page: Any, base: str) -> None:
    """Load the pods view afresh and wait for its first row."""
    await page.goto("about:blank")
    await page.goto(f"{base}/#/pods")
    await page.wait_for_selector('[data-testid^="row-"]', timeout=20_000)


async def timed_changes(page: Any, net: Disturbances, base: str, actions: list[tuple[str, str]]) -> list[float]:
    """Each action's time (``TIMED_CHANGE_SCRIPT``); the page is reloaded after a disturbed one."""
    out = []
    for action in actions:
        async def once(action: tuple[str, str] = action) -> float:
            before = net.aborts
            try:
                return float(await page.evaluate(TIMED_CHANGE_SCRIPT, [*action, 10_000]))
            finally:
                if net.aborts != before:
                    await open_pods(page, base)
        out.append(await net.sample(once))
    return out


async def browse(console: ConsoleProcess, work: Path, shots: Path | None, pods: int) -> Obj:
    from playwright.async_api import async_playwright

    res: Obj = {}
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            str(work / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS),
            viewport={"width": 1440, "height": 900})
        try:
            ctx.set_default_timeout(60_000)
            net = Disturbances(ctx)
            await ctx.add_init_script(FIRST_ELEMENT_SCRIPT)
            page = ctx.pages[0] if ctx.pages else await ctx.new_page()
            await page.goto(console.url)  # the session cookie, for every tab after it
            base = console.base
            res["first_render_pods_ms"] = await first_render(ctx, net, f"{base}/#/pods", "__kybFirstRow", 5)
            res["first_render_architecture_ms"] = await first_render(
                ctx, net, f"{base}/#/architecture", "__kybFirstNode", 3)
            await open_pods(page, base)
            res["page_change_ms"] = await timed_changes(page, net, base, [NEXT_PAGE] * 10)
            names = [f"p-{i:05d}" for i in (17, pods // 4 + 3, pods // 2 + 11, 3 * pods // 4 + 7, pods - 1)]
            res["search_ms"] = await timed_changes(page, net, base, [search_action(n) for n in names])
            await open_pods(page, base)
            await asyncio.sleep(10)  # live: the page follows the console's `changed` events meanwhile
            cdp = await ctx.new_cdp_session(page)
            await cdp.send("Performance.enable")
            metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
            res["js_heap_used_mb"] = round(metrics["JSHeapUsedSize"] / 2**20, 1)
            res["js_heap_total_mb"] = round(metrics["JSHeapTotalSize"] / 2**20, 1)
            res["dom_nodes"] = int(metrics.get("Nodes", 0))
            res["renderer"] = renderer_memory()
            res["rows_on_page"] = len(await page.evaluate(ROWS_JS))
            res["network_change_aborts"], res["resampled"] = net.aborts, net.resampled
            if shots is not None:
                await page.screenshot(path=str(shots / "console-bench-pods.png"))
                await page.goto(f"{base}/#/architecture")
                await page.wait_for_selector('[data-testid^="arch-node-"]')
                await page.screenshot(path=str(shots / "console-bench-architecture.png"))
        finally:
            await ctx.close()
    return res


def cpu_of(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


async def amain(args: argparse.Namespace, work: Path) -> Obj:
    res: Obj = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "loadavg_start": os.getloadavg()},
                "settings": {"nodes": args.nodes, "pods": args.pods, "namespaces": NAMESPACES,
                             "pending": PENDING, "lease_interval_s": LEASE_INTERVAL,
                             "status_interval_s": STATUS_INTERVAL}, "goals": GOALS}
    srv = ServerProcess.start(work / "data", "--kube-controller-manager-arg",
                              f"node-monitor-grace-period={NODE_MONITOR_GRACE}", control_plane=True, timeout=60)
    client = Client.from_kubeconfig(srv.kubeconfig, user_agent="bench-console")
    fleets: list[Fleet] = []
    console: ConsoleProcess | None = None
    try:
        per = -(-args.nodes // 2)
        for k, first in enumerate(range(0, args.nodes, per)):
            fleets.append(Fleet(srv.kubeconfig, work / f"hollow-{k}.log", min(per, args.nodes - first), first, PREFIX,
                                "--lease-interval", str(LEASE_INTERVAL), "--status-interval", str(STATUS_INTERVAL),
                                "--pod-start-delay", "1", "--concurrency", "64"))
        took = await wait_nodes(client, PREFIX, args.nodes, timeout=max(120.0, args.nodes / 15))
        print(f"{args.nodes} hollow nodes Ready in {took:.0f}s", flush=True)
        nodes = [f"{PREFIX}{i}" for i in range(args.nodes)]
        res["cluster"] = await create_pods(client, nodes, args.pods)
        print(f"pods: {res['cluster']}", flush=True)

        cpu = CpuWindow(os.getpid())
        console = ConsoleProcess.start(srv.kubeconfig, work / "console.log")
        headers = {"Authorization": f"Bearer {console.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:
            sync_s = await console_sync(console, http, args.pods + PENDING, timeout=300)
            c0 = cpu_of(console.pid)
            res["console_sync"] = {"seconds": round(sync_s, 1), "cpu_s": round(c0, 1),
                                   "rss_mb": round(tree_rss(console.pid)[0] / 2**20, 1)}
            print(f"console synced: {res['console_sync']}", flush=True)
            res["list_api"] = await list_api_latency(console, http)
            t0 = time.monotonic()
            res["browser"] = await browse(console, work, args.screenshots, args.pods)
            c1 = cpu_of(console.pid)
            res["console_during_browser"] = {"seconds": round(time.monotonic() - t0, 1), "cpu_s": round(c1 - c0, 1)}
            await asyncio.sleep(10)
            res["console_idle_cpu_per_s"] = round((cpu_of(console.pid) - c1) / 10, 3)
            res["console_rss_mb"] = round(tree_rss(console.pid)[0] / 2**20, 1)
        res["cpu_window"] = cpu.stop()
    finally:
        if console is not None:
            console.stop()
        await client.close()
        for f in fleets:
            f.stop()
        srv.stop()
    res["machine"]["loadavg_end"] = os.getloadavg()
    return res


def verdicts(res: Obj) -> list[tuple[str, str, str, str]]:
    b = res["browser"]
    fr = statistics.median(b["first_render_pods_ms"])
    pc = pctl(b["page_change_ms"], 0.99)
    sc = pctl(b["search_ms"], 0.99)
    heap = b["js_heap_used_mb"]

    def mark(v: float, goal: float) -> str:
        return "PASS" if v <= goal else "MISS"

    return [("first render of the pods view (median of 5)", "<= 2,000 ms", f"{fr:.0f} ms",
             mark(fr, GOALS["first_render_ms"])),
            ("page change (worst of 10)", "<= 500 ms", f"{pc:.0f} ms", mark(pc, GOALS["page_change_ms"])),
            ("search (worst of 5)", "<= 500 ms", f"{sc:.0f} ms", mark(sc, GOALS["page_change_ms"])),
            ("JS heap used", "<= 100 MB", f"{heap:.1f} MB", mark(heap, GOALS["js_heap_mb"]))]


def table(res: Obj) -> str:
    b = res["browser"]
    s = res["settings"]
    lines = [f"\n{s['nodes']:,} hollow nodes, {s['pods']:,} pods (+{s['pending']} Pending), one API server, "
             "kyb console, headless Chromium", "", "| goal | target | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {t} | {m} | {v} |" for a, t, m, v in verdicts(res)]
    fmt = ", ".join
    lines += ["", "| figure | value |", "|---|---|",
              f"| first render, pods view (ms) | {fmt(f'{v:.0f}' for v in b['first_render_pods_ms'])} |",
              f"| first render, architecture view (ms) | {fmt(f'{v:.0f}' for v in b['first_render_architecture_ms'])} |",
              f"| page change (ms) | {fmt(f'{v:.0f}' for v in b['page_change_ms'])} |",
              f"| search (ms) | {fmt(f'{v:.0f}' for v in b['search_ms'])} |",
              f"| console list API, 100 of all pods, p50 / p99 | {res['list_api']['p50_ms']} / "
              f"{res['list_api']['p99_ms']} ms |",
              f"| JS heap used / total, DOM nodes | {b['js_heap_used_mb']} / {b['js_heap_total_mb']} MB, "
              f"{b['dom_nodes']:,} |",
              f"| renderer RSS / PSS ({b['renderer']['renderers']} process(es)) | {b['renderer']['rss_mb']} / "
              f"{b['renderer']['pss_mb']} MB |",
              f"| console sync (all pods listed) | {res['console_sync']['seconds']} s, "
              f"{res['console_sync']['cpu_s']} CPU s, RSS {res['console_sync']['rss_mb']} MB |",
              f"| console CPU during the browser runs | {res['console_during_browser']['cpu_s']} s in "
              f"{res['console_during_browser']['seconds']} s |",
              f"| console idle CPU, RSS at the end | {res['console_idle_cpu_per_s']} s/s, {res['console_rss_mb']} MB |",
              f"| samples taken again (Chromium's ERR_NETWORK_CHANGED aborts: other work's interfaces) | "
              f"{b['resampled']} ({b['network_change_aborts']} requests aborted) |",
              f"| load average start / end | {res['machine']['loadavg_start'][0]:.1f} / "
              f"{res['machine']['loadavg_end'][0]:.1f} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--quick", action="store_true", help="200 nodes, 1,000 pods")
    ap.add_argument("--tmp-dir", default=None)
    ap.add_argument("--screenshots", type=Path, default=None, help="save the pods and architecture views here")
    ap.add_argument("--out", default="bench/results/console.json")
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.pods = 200, 1000
    missing = browser_missing()
    if missing:
        raise SystemExit(f"bench.console {missing}")
    with tempfile.TemporaryDirectory(prefix="kyb-bench-console-", dir=args.tmp_dir) as d:
        res = aiorun.run(amain(args, Path(d)))
    print(table(res))
    res["verdicts"] = [dict(zip(("goal", "target", "measured", "verdict"), v, strict=True)) for v in verdicts(res)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
