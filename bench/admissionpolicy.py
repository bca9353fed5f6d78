"""Creates per second with one ValidatingAdmissionPolicy in the path, against none, in one run.

Run from the repository root::

    .venv/bin/python -m bench.admissionpolicy [--creates 2000] [--clients 16]

Starts a real ``kyb server`` (no agent, scheduler or controllers) and creates ConfigMaps (~1 KB)
from ``--clients`` concurrent clients, alternating ``--rounds`` times between no binding and one
policy and binding matching them (a variable, a matchCondition and two validations, one with a
messageExpression), and prints the median creates/s of each and the overhead per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess

API = "admissionregistration.k8s.io/v1"
POLICY = {"apiVersion": API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "bench"}, "spec": {
    "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                            "resources": ["configmaps"]}]},
    "matchConditions": [{"name": "not-system", "expression": "!request.userInfo.username.startsWith('system:node')"}],
    "variables": [{"name": "keys", "expression": "has(object.data) ? size(object.data) : 0"}],
    "validations": [
        {"expression": "variables.keys <= 10", "messageExpression": "'too many keys: ' + string(variables.keys)"},
        {"expression": "object.metadata.name.matches('^[a-z0-9-]+$')"}]}}
BINDING = {"apiVersion": API, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "bench"},
           "spec": {"policyName": "bench", "validationActions": ["Deny"]}}


async def creates(c: Client, prefix: str, n: int, clients: int) -> float:
    """Creates per second of ``n`` ConfigMaps from ``clients`` concurrent loops."""
    todo = iter(range(n))

    async def loop() -> None:
        for i in todo:
            await c.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": f"{prefix}-{i}"},
                                                "data": {f"k{j}": "x" * 120 for j in range(8)}}, "default")

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return n / (time.perf_counter() - start)


async def until_denied(c: Client) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await c.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "probe-x"},
                                                "data": {str(i): "" for i in range(11)}}, "default", dry_run=True)
        except Exception:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("policy not in effect")


async def run(args: Any, srv: ServerProcess) -> None:
    c = Client.from_kubeconfig(str(srv.kubeconfig))
    without: list[float] = []
    with_vap: list[float] = []
    try:
        await creates(c, "warm", 200, args.clients)
        await c.create(API, "validatingadmissionpolicies", POLICY)
        for rnd in range(args.rounds):
            without.append(await creates(c, f"a{rnd}", args.creates, args.clients))
            await c.create(API, "validatingadmissionpolicybindings", BINDING)
            await until_denied(c)
            with_vap.append(await creates(c, f"b{rnd}", args.creates, args.clients))
            await c.delete(API, "validatingadmissionpolicybindings", "bench")
            await asyncio.sleep(0.5)  # the binding leaves the watch cache
    finally:
        await c.close()
    base, vap = statistics.median(without), statistics.median(with_vap)
    print(f"creates/s without a policy: {base:.0f} (rounds: {', '.join(f'{x:.0f}' for x in without)})")
    print(f"creates/s with one policy:  {vap:.0f} (rounds: {', '.join(f'{x:.0f}' for x in with_vap)})")
    print(f"overhead per create (medians): {(1 / vap - 1 / base) * 1e6:.0f} us of server time, "
          f"{(1 / vap - 1 / base) * 1e3 * args.clients:.2f} ms of latency at {args.clients} clients")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess.start(Path(tmp) / "data")
        try:
            asyncio.run(run(args, srv))
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
