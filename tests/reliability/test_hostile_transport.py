"""Malformed transport (issue 20, "Hostile input"): random and truncated bytes, slow headers, heads
and bodies over the limits, invalid UTF-8, JSON nested a million deep, a YAML alias bomb in an apply
body, garbage protobuf, a watcher that stops reading. Each gets a 4xx or a closed connection, and
the server keeps serving everyone else: another client's p99 GET latency during the attacks (all
at once) against the same figure before them. The attacks are :mod:`tests.reliability.hostile`'s;
``bench.fuzz`` prints the same table with the exact figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.reliability.hostile import ok, run_attacks

pytestmark = pytest.mark.integration

P99_BOUND = 10.0
"""The goal is at most 2x (bench.fuzz reports it); on a shared 2-core CI machine the attackers and
the measuring client compete for the same cores, so the test's bound is generous."""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess.start(Path(tmp_path_factory.mktemp("hostile")), timeout=60)
    try:
        yield server
    finally:
        server.stop()


def test_each_attack_gets_a_4xx_or_a_closed_connection_and_others_are_served(srv: ServerProcess) -> None:
    result = run_attacks(srv)
    for name, outcome in result["outcomes"].items():
        print(f"{name}: {outcome[:160]}")
    print(f"p99 GET before {result['p99_before_s'] * 1000:.1f} ms ({result['samples_before']} GETs), during "
          f"{result['p99_during_s'] * 1000:.1f} ms ({result['samples_during']} GETs): x{result['ratio']:.2f}; "
          f"slowest {result['max_during_s'] * 1000:.0f} ms")
    failed = {name: outcome for name, outcome in result["outcomes"].items() if not ok(outcome)}
    assert failed == {}
    assert result["samples_during"] > 50
    assert result["p99_during_s"] < float("inf"), "a GET failed during the attacks"
    # Within the bound, or under a quarter of a second whatever the baseline (a fast, idle baseline
    # of 2-3 ms makes any ratio noisy on a shared machine).
    assert result["p99_during_s"] <= max(P99_BOUND * result["p99_before_s"], 0.25), result
    status, _ = srv.request("GET", "/api/v1/namespaces/default")
    assert status == 200
    assert "Traceback" not in srv.log(), srv.log()[-5000:]


@pytest.mark.parametrize(("attack", "answer"), [
    ("a 2 MiB header", "4xx 431 431 Request Header Fields Too Large"),
    ("20,000 headers", "4xx 431 431 Request Header Fields Too Large"),
    ("a body over 3 MiB", '"message":"Request entity too large: limit is 3145728","reason":"RequestEntityTooLarge"'),
    ("YAML alias bomb (apply)",
     '"message":"error decoding YAML: error converting YAML to JSON: yaml: document contains excessive aliasing"'),
])
def test_kubernetes_answers_and_words(srv: ServerProcess, attack: str, answer: str) -> None:
    from tests.reliability.hostile import ATTACKS

    assert answer in ATTACKS[attack](srv)


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/api/v1/namespaces/default/configmaps/nonex", {"dryRun": 1.5},
     "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type []string"),
    ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {"dryRun": "All"},
     "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string"),
    ("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {"dryRun": [True]},
     "json: cannot unmarshal boolean into Go struct field DeleteOptions.dryRun of type string"),
])
def test_delete_options_of_the_wrong_type_are_a_400(srv: ServerProcess, path: str, body: dict, message: str) -> None:
    """Found by bench.fuzz: a DeleteOptions body whose dryRun was a number was a 500 (TypeError)."""
    status, answer = srv.request("DELETE", path, body)
    assert (status, answer["reason"], answer["message"]) == (400, "BadRequest", message), answer
