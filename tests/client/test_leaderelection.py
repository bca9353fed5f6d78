"""Leader election: two candidates on a real API server, and the timing rules on a FakeClock."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kybernetes import errors
from kybernetes.api.timeutil import format_micro
from kybernetes.client.leaderelection import LEASE_API, HealthzAdaptor, LeaderElector
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.testing import ServerProcess
from tests.client.conftest import eventually

Obj = dict[str, Any]


class Candidate:
    """An elector plus what its callbacks saw."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self.started = 0
        self.stopped = 0
        self.leading_cancelled = False
        self.task: asyncio.Task[None] | None = None

    async def _lead(self) -> None:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.leading_cancelled = True
            raise

    def _stop(self) -> None:
        self.stopped += 1

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(self._lead, self._stop))
        return self

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# -- against a real server ------------------------------------------------------------------------


@pytest.fixture
async def clients(server: ServerProcess) -> AsyncIterator[list[Client]]:
    cs = [Client.from_kubeconfig(server.kubeconfig) for _ in range(3)]
    try:
        yield cs
    finally:
        for c in cs:
            await c.close()


def elector(client: Client, lease: str, identity: str, lease_duration: float = 2.0,
            renew_deadline: float = 1.5) -> LeaderElector:
    return LeaderElector(client, lease_name=lease, namespace="kube-system", identity=identity,
                         lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=0.2)


@pytest.mark.integration
async def test_one_leads_and_graceful_stop_hands_over_at_once(clients: list[Client]) -> None:
    # A long lease, so that taking over at once can only be the release's doing.
    a = Candidate(elector(clients[0], "le-graceful", "a", 20.0, 10.0)).start()
    await eventually(lambda: a.elector.is_leader)
    b = Candidate(elector(clients[1], "le-graceful", "b", 20.0, 10.0)).start()
    # b has tried three times, and seen a's claim: it does not lead.
    await eventually(lambda: b.elector.attempts >= 3 and b.elector.observed_holder == "a")
    assert a.elector.is_leader and not b.elector.is_leader and b.started == 0
    lease = await clients[2].get(LEASE_API, "leases", "le-graceful", "kube-system")
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 20
    assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await a.cancel()
    assert a.stopped == 1 and a.leading_cancelled and not a.elector.is_leader
    await eventually(lambda: b.elector.is_leader, timeout=5)
    # Released: b takes over at its next retry, long before the 20 s lease would have expired.
    assert loop.time() - t0 < 10
    lease = await clients[2].get(LEASE_API, "leases", "le-graceful", "kube-system")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    await b.cancel()


@pytest.mark.integration
async def test_cut_off_leader_steps_down_and_other_takes_over(clients: list[Client]) -> None:
    a = Candidate(elector(clients[0], "le-killed", "a", 4.0, 2.0)).start()
    await eventually(lambda: a.elector.is_leader)
    b = Candidate(elector(clients[1], "le-killed", "b", 4.0, 2.0)).start()
    await eventually(lambda: b.elector.observed_holder == "a")  # b's lease clock runs from here on
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await clients[0].close()  # a can no longer reach the server: no renewals, no release
    await eventually(lambda: a.task is not None and a.task.done(), timeout=10)
    a_gone = loop.time()
    assert a.stopped == 1 and a.leading_cancelled
    assert not b.elector.is_leader  # the old leader steps down before anyone else may lead
    await eventually(lambda: b.elector.is_leader, timeout=10)
    assert loop.time() - t0 >= 3.0  # b had to wait for the 4 s lease to expire (by its own clock)
    assert a_gone - t0 < 4.0
    await eventually(lambda: b.started == 1)
    await b.cancel()


@pytest.mark.integration
async def test_leading_callback_returning_releases(clients: list[Client]) -> None:
    done = asyncio.Event()

    async def lead() -> None:
        done.set()

    le = elector(clients[0], "le-return", "solo")
    await asyncio.wait_for(le.run(lead), 5)
    assert done.is_set() and not le.is_leader
    lease = await clients[2].get(LEASE_API, "leases", "le-return", "kube-system")
    assert lease["spec"].get("holderIdentity", "") == "" and lease["spec"]["leaseDurationSeconds"] == 1


# -- timing rules on a FakeClock, with an in-memory lease -------------------------------------------


class FakeLeases:
    """Just enough of Client for leases: get/create/update with resourceVersion compare-and-swap."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], Obj] = {}
        self.rv = 0
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("unreachable")

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> Obj:
        self._check()
        try:
            return copy.deepcopy(self.leases[(namespace, name)])
        except KeyError:
            raise errors.NotFound.of("leases", name, "coordination.k8s.io") from None

    async def create(self, api_version: str, plural: str, obj: Obj, namespace: str = "") -> Obj:
        self._check()
        key = (namespace, obj["metadata"]["name"])
        if key in self.leases:
            raise errors.AlreadyExists.of("leases", key[1])
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.leases[key] = obj
        return copy.deepcopy(obj)

    async def update(self, api_version: str, plural: str, obj: Obj, namespace: str = "") -> Obj:
        self._check()
        key = (namespace, obj["metadata"]["name"])
        cur = self.leases[key]
        if cur["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.Conflict.of("leases", key[1])
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.leases[key] = obj
        return copy.deepcopy(obj)


def fake_elector(store: FakeLeases, clock: FakeClock, identity: str) -> LeaderElector:
    return LeaderElector(store, lease_name="l", identity=identity, lease_duration=15, renew_deadline=10,  # type: ignore[arg-type]
                         retry_period=2, clock=clock)


async def run_for(clock: FakeClock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        await clock.advance(step)


async def test_expiry_is_judged_by_local_observation() -> None:
    clock = FakeClock()
    store = FakeLeases()
    # Another holder, renewed "in the future" by a skewed wall clock: renewTime is not trusted.
    store.leases[("kube-system", "l")] = {
        "apiVersion": LEASE_API, "kind": "Lease", "metadata": {"name": "l", "namespace": "kube-system",
                                                               "resourceVersion": "1"},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 15, "renewTime": "2999-01-01T00:00:00.000000Z",
                 "acquireTime": format_micro(), "leaseTransitions": 4}}
    b = Candidate(fake_elector(store, clock, "b")).start()
    await run_for(clock, 14)
    assert not b.elector.is_leader and b.elector.observed_holder == "ghost"
    await run_for(clock, 4)  # 15 s after b first saw the record (plus a retry period)
    assert b.elector.is_leader and b.started == 1
    spec = store.leases[("kube-system", "l")]["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 5
    await b.cancel()
    assert store.leases[("kube-system", "l")]["spec"]["holderIdentity"] == ""


async def test_renewals_keep_others_out_and_failed_renewals_step_down() -> None:
    clock = FakeClock()
    store = FakeLeases()
    a = Candidate(fake_elector(store, clock, "a")).start()
    await clock.advance(0)
    assert a.elector.is_leader
    b = Candidate(fake_elector(store, clock, "b")).start()
    await run_for(clock, 60)  # renewals every 2 s: the record keeps changing, b never sees it expire
    assert a.elector.is_leader and not b.elector.is_leader
    renew_before = store.leases[("kube-system", "l")]["spec"]["renewTime"]

    real_update = store.update

    async def failing_update(*args: Any, **kw: Any) -> Obj:
        if args[2]["spec"]["holderIdentity"] == "a":
            raise errors.InternalError("etcd is sad")
        return await real_update(*args, **kw)

    store.update = failing_update  # type: ignore[method-assign]
    await run_for(clock, 9)
    assert a.elector.is_leader  # still within renew_deadline
    await run_for(clock, 4)
    assert not a.elector.is_leader and a.stopped == 1 and a.leading_cancelled
    assert a.task is not None and a.task.done()
    # b takes over only once the record has been unchanged for the lease duration.
    assert not b.elector.is_leader
    assert store.leases[("kube-system", "l")]["spec"]["renewTime"] == renew_before
    await run_for(clock, 10)
    assert b.elector.is_leader
    await b.cancel()


async def test_master_status_and_the_leader_election_health_check() -> None:
    """leader_election_master_status{name} follows leadership; the leaderElection check fails only for a
    leader whose renewals stalled past lease_duration + the tolerance (client-go's HealthzAdaptor)."""
    clock = FakeClock()
    store = FakeLeases()
    health = HealthzAdaptor(timeout=20)
    await health.check()  # no election yet: healthy
    a = Candidate(fake_elector(store, clock, "a"))
    health.elector = a.elector
    a.start()
    await clock.advance(0)
    assert a.elector.is_leader
    assert REGISTRY.get_sample_value("leader_election_master_status", {"name": "l"}) == 1
    await run_for(clock, 60)
    await health.check()  # renewing: healthy
    clock.advance(36)  # the loop gets no chance to renew: a stalled leader
    with pytest.raises(RuntimeError, match="failed election to renew leadership on lease l"):
        await health.check()
    await a.cancel()
    assert REGISTRY.get_sample_value("leader_election_master_status", {"name": "l"}) == 0
    await health.check()  # not leading: healthy


def test_rejects_bad_timing() -> None:
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), lease_name="l", identity="x", lease_duration=5, renew_deadline=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), lease_name="l", identity="")  # type: ignore[arg-type]
