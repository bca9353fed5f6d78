"""Creates per second with no admission extension, with one validating webhook and with one
ValidatingAdmissionPolicy in the path, side by side in one run.

Run from the repository root::

    .venv/bin/python -m bench.admission            # ~2 minutes on 2 cores
    .venv/bin/python -m bench.admission --quick    # a smoke test (200 creates per cell, 1 round)

It starts a real ``kyb server`` (API server only, fresh temp data dir) and, in a process of its
own, an HTTPS admission webhook (aiohttp, a certificate from a CA made for the run) that allows
every object but those named ``deny-*``. ConfigMap creates (``bench.apiserver``'s ~1 KB objects,
admin client certificate, keep-alive) run at 1 and 16 concurrent clients in three modes:

* ``none``: no webhook configuration and no policy binding;
* ``webhook``: one ValidatingWebhookConfiguration matching ConfigMap creates (by ``url``,
  ``caBundle`` verified);
* ``vap``: one ValidatingAdmissionPolicy and its binding matching them (a matchCondition, a
  variable, two validations, one with a messageExpression).

The modes alternate ``--rounds`` times (none, webhook, vap, none, ...) so that the shared
machine's drift falls on all three alike; a mode is measured only once a dry-run probe shows it in
effect (a ``deny-`` name refused by the webhook; eleven keys refused by the policy) and the
previous one gone. Per mode and concurrency it reports the median creates/s and p50 of the rounds,
and the overhead per create against ``none`` (added p50, and added time per create per client
from the rates), with the goals of :data:`GOALS` as PASS/MISS, and writes JSON to
``bench/results/admission.json``.
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
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import orjson

from bench.apiserver import HTTPError, call, client_ssl_context, configmap, new_session, pct, verdict, warm
from kybernetes import aiorun
from kybernetes.pki import PKI
from kybernetes.testing import ServerProcess, free_port

RESULTS_PATH = Path(__file__).parent / "results" / "admission.json"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
NAME = "bench"
MODES = ("none", "webhook", "vap")
CONCURRENCY = (1, 16)
GOALS = {"webhook": 3.0, "vap": 0.5}
"""The most a mode may add to the p50 of a create at 1 client, in ms: a webhook call is a TLS
round trip to another process (~1.6 ms of it the Python webhook's own); a policy is in-process CEL."""

RULES = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]
POLICY = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
          "metadata": {"name": NAME}, "spec": {
              "matchConstraints": {"resourceRules": RULES},
              "matchConditions": [{"name": "not-node",
                                   "expression": "!request.userInfo.username.startsWith('system:node')"}],
              "variables": [{"name": "keys", "expression": "has(object.data) ? size(object.data) : 0"}],
              "validations": [
                  {"expression": "variables.keys <= 10",
                   "messageExpression": "'too many keys: ' + string(variables.keys)"},
                  {"expression": "object.metadata.name.matches('^[a-z0-9-]+$')"}]}}
BINDING = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
           "metadata": {"name": NAME}, "spec": {"policyName": NAME, "validationActions": ["Deny"]}}


def _serve_webhook(cert: str, key: str, port: int) -> None:
    """The webhook process: allow every AdmissionReview but for objects named ``deny-*``."""
    async def review(request: aiohttp.web.Request) -> aiohttp.web.Response:
        req = orjson.loads(await request.read())["request"]
        allowed = not str(req.get("name") or (req.get("object") or {}).get("metadata", {}).get("name")
                          or "").startswith("deny-")
        answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "response": {"uid": req["uid"], "allowed": allowed}}
        return aiohttp.web.Response(body=orjson.dumps(answer), content_type="application/json")

    app = aiohttp.web.Application()
    app.router.add_post("/validate", review)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    aiohttp.web.run_app(app, host="127.0.0.1", port=port, ssl_context=ctx, print=None, access_log=None)


def webhook_configuration(url: str, ca_pem: bytes) -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": NAME},
            "webhooks": [{"name": "allow.bench.kybernetes.io", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                          "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                          "rules": RULES}]}


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


class Modes:
    """Switching the server between the modes, each waited for through a dry-run probe."""

    def __init__(self, session: aiohttp.ClientSession, base: str, hook_url: str, ca_pem: bytes) -> None:
        self.session, self.base, self.hook_url, self.ca_pem = session, base, hook_url, ca_pem
        self.hooks = f"{base}{ADMISSION}/validatingwebhookconfigurations"
        self.bindings = f"{base}{ADMISSION}/validatingadmissionpolicybindings"

    async def refused(self, body: dict[str, Any]) -> bool:
        try:
            await call(self.session, "POST", f"{self.base}/api/v1/namespaces/default/configmaps?dryRun=All", body)
        except HTTPError:
            return True
        return False

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + 15
        while not await check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not in effect after 15 s")
            await asyncio.sleep(0.05)

    def webhook_denies(self) -> Awaitable[bool]:
        return self.refused(configmap("deny-probe"))

    def policy_denies(self) -> Awaitable[bool]:
        return self.refused({**configmap("probe"), "data": {f"k{i}": "" for i in range(11)}})

    async def enter(self, mode: str) -> None:
        if mode == "webhook":
            await call(self.session, "POST", self.hooks, webhook_configuration(self.hook_url, self.ca_pem))
            await self.until(self.webhook_denies, "the webhook")
        elif mode == "vap":
            await call(self.session, "POST", self.bindings, BINDING)
            await self.until(self.policy_denies, "the policy binding")

    async def leave(self, mode: str) -> None:
        if mode == "webhook":
            await call(self.session, "DELETE", f"{self.hooks}/{NAME}")
            await self.until(lambda: _not(self.webhook_denies()), "removing the webhook")
        elif mode == "vap":
            await call(self.session, "DELETE", f"{self.bindings}/{NAME}")
            await self.until(lambda: _not(self.policy_denies()), "removing the binding")


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def run(srv: ServerProcess, hook_url: str, ca_pem: bytes, ops: int, rounds: int,
              results: dict[str, Any]) -> None:
    base = srv.url
    session = new_session(client_ssl_context(srv.data_dir), max(CONCURRENCY))
    cells: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        await warm(session, base, max(CONCURRENCY))
        await call(session, "POST", f"{base}{ADMISSION}/validatingadmissionpolicies", POLICY)  # unbound: no effect
        for rnd in range(rounds):
            for mode in MODES:
                modes = Modes(session, base, hook_url, ca_pem)
                await modes.enter(mode)
                for concurrency in CONCURRENCY:
                    cell = {"round": rnd, **await creates(session, base, f"{mode}-r{rnd}-c{concurrency}", ops,
                                                          concurrency)}
                    cells[mode].append(cell)
                    print(f"  round {rnd} {mode:<8} c={concurrency:<3} {cell['creates_per_s']:8.1f} creates/s  "
                          f"p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms", flush=True)
                await modes.leave(mode)
    finally:
        await session.close()
    results["cells"] = cells
    results["summary"] = summarize(cells)


def summarize(cells: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per mode and concurrency: the medians of the rounds and the overhead against ``none``."""
    out = []
    for concurrency in CONCURRENCY:
        medians = {}
        for mode in MODES:
            mine = [c for c in cells[mode] if c["concurrency"] == concurrency]
            medians[mode] = (statistics.median(c["creates_per_s"] for c in mine),
                             statistics.median(c["p50_ms"] for c in mine))
        rate0, p50_0 = medians["none"]
        for mode in MODES:
            rate, p50 = medians[mode]
            row: dict[str, Any] = {"mode": mode, "concurrency": concurrency, "creates_per_s": rate, "p50_ms": p50}
            if mode != "none":
                row["added_p50_ms"] = round(p50 - p50_0, 2)
                row["added_ms_per_create_per_client"] = round((1 / rate - 1 / rate0) * 1000 * concurrency, 2)
                if concurrency == 1:
                    row["goal_added_p50_ms"] = GOALS[mode]
                    row["verdict"] = verdict(row["added_p50_ms"] <= GOALS[mode])
            out.append(row)
    return out


def report(results: dict[str, Any]) -> None:
    print("\nmode      clients  creates/s   p50 ms   added p50   added per create per client   goal (1 client)")
    for row in results["summary"]:
        added = (f"{row['added_p50_ms']:+8.2f} ms   {row['added_ms_per_create_per_client']:+8.2f} ms"
                 if "added_p50_ms" in row else " " * 26)
        goal = f"<= {row['goal_added_p50_ms']} ms: {row['verdict']}" if "verdict" in row else ""
        print(f"{row['mode']:<8}  {row['concurrency']:>7}  {row['creates_per_s']:9.1f}  {row['p50_ms']:7.2f}   "
              f"{added}                {goal}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="200 creates per cell and one round")
    ap.add_argument("--rounds", type=int, default=3, help="times the three modes alternate (default 3)")
    ap.add_argument("--tmp-dir", default=None, help="parent of the temporary data dir (not tmpfs)")
    ap.add_argument("--out", default=str(RESULTS_PATH))
    args = ap.parse_args(argv)
    ops, rounds = (200, 1) if args.quick else (1000, args.rounds)
    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-admission-", dir=args.tmp_dir))
    pki = PKI.load_or_create(tmp / "webhook")
    cert, key = pki.issue("127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    (tmp / "hook.crt").write_bytes(cert)
    (tmp / "hook.key").write_bytes(key)
    port = free_port()
    hook = multiprocessing.get_context("spawn").Process(
        target=_serve_webhook, args=(str(tmp / "hook.crt"), str(tmp / "hook.key"), port), daemon=True)
    hook.start()
    results: dict[str, Any] = {"timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "nproc": os.cpu_count(), "ops_per_cell": ops, "rounds": rounds,
                               "loadavg_at_start": os.getloadavg()}
    srv: ServerProcess | None = None
    try:
        srv = ServerProcess.start(tmp / "data")
        aiorun.run(run(srv, f"https://127.0.0.1:{port}/validate", pki.ca_pem, ops, rounds, results))
    finally:
        if srv is not None:
            results["server_exit_code"] = srv.stop()
        hook.terminate()
        hook.join(10)
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    results["loadavg_at_end"] = os.getloadavg()
    report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
