"""HA: servers on machines of their own lose power during a stream of writes (issue 14).

Real processes throughout: ``kyb server`` (with its etcd member, scheduler, controller manager and,
on one machine, the node) in network namespaces, driven from the host by the official client
over the test bridge; kill -9 of every process of a machine. What must hold (``tests.ha.traffic``):
every acknowledged write is in the final list at its resourceVersion, and each watcher, resuming by
resourceVersion whenever its stream broke, saw exactly the final list's objects in order, none
missing and none twice.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.e2e.conftest import wait_until
from tests.ha.conftest import HAMachines
from tests.ha.traffic import Watcher, Writer, check_stream, core_api, listed, missing_acknowledged

pytestmark = pytest.mark.integration
NS = "ha"


def _report(writer: Writer, watchers: list[Watcher]) -> str:
    lines = [f"writer: {len(writer.acks)} acknowledged, {len(writer.failures)} failed attempts, "
             f"error {writer.error!r}; last failures {writer.failures[-3:]}"]
    lines += [f"watcher {w.name}: {len(w.events)} events, at {w.last_rv}, resumes {w.resumes[-6:]}, "
              f"error {w.error!r}" for w in watchers]
    return "\n".join(lines)


def _check(writer: Writer, watchers: list[Watcher], final: dict[str, int]) -> None:
    assert not writer.error, _report(writer, watchers)
    assert not missing_acknowledged(writer.acks, final), missing_acknowledged(writer.acks, final)
    for w in watchers:
        w.wait_for(max(final.values()), 60)
    for w in watchers:
        w.stop()
        assert not w.error, _report(writer, watchers)
        problems = check_stream(w.events, w.start_rv, final)
        assert not problems, f"watcher {w.name}:\n" + "\n".join(problems[:20])


def test_the_only_server_crashes_and_comes_back(ha_machines: HAMachines) -> None:
    """One ``--cluster-init`` server killed with -9 mid-stream and restarted on its data dir: the
    writer retries until it answers again, its watcher resumes from its resourceVersion."""
    s1 = ha_machines.first_server(0)
    s1.start()
    api = core_api(s1.kubeconfig)
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    watcher = Watcher("a", [api], [0], NS)
    watcher.start()
    writer = Writer([api], NS, write_deadline=90.0)
    writer.start()
    try:
        wait_until(lambda: len(writer.acks) >= 20 or writer.error, 60, "20 writes acknowledged")
        s1.power_off()
        down = len(writer.acks)
        s1.start()
        back = time.monotonic()
        wait_until(lambda: writer.acked_by(0, since=back) >= 20 or writer.error, 60,
                   "20 writes acknowledged after the restart")
    finally:
        writer.stop()
    final = listed(api, NS)
    _check(writer, [watcher], final)
    assert down < len(writer.acks) and writer.failures, "the server died in the middle of the stream"
    assert any(rv > watcher.start_rv for _, rv in watcher.resumes), "the watcher resumed by resourceVersion"
