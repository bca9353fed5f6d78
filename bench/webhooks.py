"""Creates per second with one validating admission webhook in the path, against none, in one run.

Run from the repository root::

    .venv/bin/python -m bench.webhooks            # ~1 minute on 2 cores
    .venv/bin/python -m bench.webhooks --quick    # a smoke test

It starts a real ``kyb server`` (API server only, fresh temp data dir) and, in a process of its
own, an HTTPS admission webhook (aiohttp, a certificate from a CA made for the run) that allows
everything. ConfigMap creates (``bench.apiserver``'s ~1 KB objects, admin client certificate,
keep-alive) run at 1 and 16 concurrent clients, first with no webhook configured, then with one
ValidatingWebhookConfiguration matching ConfigMap creates (by ``url``, ``caBundle`` verified), then
once more without (the configuration deleted) to show the machine did not drift. It prints
creates/s, p50/p99 and the added latency per request, and writes JSON to
``bench/results/webhooks.json``. No ValidatingAdmissionPolicy yet (another branch brings CEL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import multiprocessing
import os
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import orjson

from bench.apiserver import call, client_ssl_context, configmap, new_session, pct, warm
from kybernetes import aiorun
from kybernetes.pki import PKI
from kybernetes.testing import ServerProcess, free_port

RESULTS_PATH = Path(__file__).parent / "results" / "webhooks.json"
HOOK_NAME = "bench-allow"


def _serve_webhook(cert: str, key: str, port: int) -> None:
    """The webhook process: allow every AdmissionReview, echoing its uid."""
    async def review(request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = orjson.loads(await request.read())
        answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "response": {"uid": body["request"]["uid"], "allowed": True}}
        return aiohttp.web.Response(body=orjson.dumps(answer), content_type="application/json")

    app = aiohttp.web.Application()
    app.router.add_post("/validate", review)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    aiohttp.web.run_app(app, host="127.0.0.1", port=port, ssl_context=ctx, print=None, access_log=None)


async def creates(session: aiohttp.ClientSession, base: str, prefix: str, ops: int, concurrency: int) -> dict[str, Any]:
    """``ops`` ConfigMap creates by ``concurrency`` clients: creates/s and latency percentiles."""
    latencies: list[float] = []
    names = iter(range(ops))

    async def client() -> None:
        for i in names:
            t = time.perf_counter()
            await call(session, "POST", f"{base}/api/v1/namespaces/default/configmaps", configmap(f"{prefix}-{i}"))
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return {"concurrency": concurrency, "ops": ops, "seconds": round(seconds, 3),
            "creates_per_s": round(ops / seconds, 1), "p50_ms": round(pct(latencies, 50) * 1000, 2),
            "p99_ms": round(pct(latencies, 99) * 1000, 2)}


def webhook_configuration(url: str, ca_pem: bytes) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": HOOK_NAME},
            "webhooks": [{"name": "allow.bench.kybernetes.io", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                          "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}]}]}


async def run(srv: ServerProcess, url: str, ca_pem: bytes, ops: int, results: dict[str, Any]) -> None:
    base = srv.url
    session = new_session(client_ssl_context(srv.data_dir), 16)
    hooks = f"{base}/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    try:
        await warm(session, base, 16)
        for phase in ("without", "with", "without-again"):
            if phase == "with":
                await call(session, "POST", hooks, webhook_configuration(url, ca_pem))
                await asyncio.sleep(1.0)  # the server's webhook cache follows its watch
            elif phase == "without-again":
                await call(session, "DELETE", f"{hooks}/{HOOK_NAME}")
                await asyncio.sleep(1.0)
            cells = []
            for concurrency in (1, 16):
                cell = await creates(session, base, f"{phase}-c{concurrency}", ops, concurrency)
                cells.append(cell)
                print(f"  {phase:<14} c={concurrency:<3} {cell['creates_per_s']:8.1f} creates/s  "
                      f"p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms", flush=True)
            results[phase] = cells
    finally:
        await session.close()


def report(results: dict[str, Any]) -> None:
    print("\nconcurrency  without/s  with/s  overhead per create (p50 added, 1/rate added)")
    for without, with_ in zip(results["without"], results["with"], strict=True):
        added_rate_ms = (1 / with_["creates_per_s"] - 1 / without["creates_per_s"]) * 1000 * without["concurrency"]
        added_p50 = with_["p50_ms"] - without["p50_ms"]
        without["overhead_ms"] = with_["overhead_ms"] = round(added_rate_ms, 2)
        print(f"{without['concurrency']:>11}  {without['creates_per_s']:9.1f}  {with_['creates_per_s']:6.1f}  "
              f"{added_p50:+.2f} ms p50, {added_rate_ms:+.2f} ms per create per client")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="200 creates per cell instead of 2,000")
    ap.add_argument("--tmp-dir", default=None, help="parent of the temporary data dir (not tmpfs)")
    ap.add_argument("--out", default=str(RESULTS_PATH))
    args = ap.parse_args(argv)
    ops = 200 if args.quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-webhooks-", dir=args.tmp_dir))
    pki = PKI.load_or_create(tmp / "webhook")
    cert, key = pki.issue("127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    (tmp / "hook.crt").write_bytes(cert)
    (tmp / "hook.key").write_bytes(key)
    port = free_port()
    hook = multiprocessing.get_context("spawn").Process(
        target=_serve_webhook, args=(str(tmp / "hook.crt"), str(tmp / "hook.key"), port), daemon=True)
    hook.start()
    results: dict[str, Any] = {"timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "nproc": os.cpu_count(), "ops_per_cell": ops, "loadavg_at_start": os.getloadavg()}
    srv: ServerProcess | None = None
    try:
        srv = ServerProcess.start(tmp / "data")
        aiorun.run(run(srv, f"https://127.0.0.1:{port}/validate", pki.ca_pem, ops, results))
    finally:
        if srv is not None:
            results["server_exit_code"] = srv.stop()
        hook.terminate()
        hook.join(10)
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
