"""The pytest plugin, run as users run it: pytest in a subprocess on a test file of theirs.

Each test writes a small project (a test file and a pytest.ini) into a temp dir and runs pytest
there, with the plugin loaded as installed (entry point ``pytest11``; ``-p`` where the package is
not installed with its entry point, as in a development tree). The user tests record what they saw
(server URL, data dir, namespace) in a JSON file, which these tests then check against the world:
the cluster answered, the processes are gone, the data dir is removed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

USER_TESTS = '''
import json, os, pathlib, threading
import pytest
from kubernetes import client

RECORD = pathlib.Path(os.environ["KYB_RECORD"])

def record(**facts):
    old = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    old.update(facts)
    RECORD.write_text(json.dumps(old))

@pytest.mark.kyb_nodes(2)
def test_a_deployment_runs_on_hollow_nodes(kyb_cluster, kyb_namespace):
    assert os.environ["KUBECONFIG"] == str(kyb_cluster.kubeconfig)
    record(server=kyb_cluster.server, data_dir=str(kyb_cluster.data_dir), first_ns=kyb_namespace,
           started_in=kyb_cluster.started_in,
           server_threads=[t.name for t in threading.enumerate() if t.name.startswith("kyb-apiserver")])
    kyb_cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", kyb_namespace)
    kyb_cluster.kubectl("rollout", "status", "deployment/web", "-n", kyb_namespace, "--timeout=60s", timeout=70)
    apps = client.AppsV1Api(kyb_cluster.api())
    assert apps.read_namespaced_deployment("web", kyb_namespace).status.available_replicas == 3

def test_the_namespace_of_the_last_test_is_going(kyb_cluster, kyb_namespace):
    first = json.loads(RECORD.read_text())["first_ns"]
    assert kyb_namespace != first
    core = client.CoreV1Api(kyb_cluster.api())
    names = {ns.metadata.name: ns.status.phase for ns in core.list_namespace().items}
    assert names.get(first) in (None, "Terminating")
    core.create_namespaced_config_map(kyb_namespace, {"metadata": {"name": "c"}, "data": {"a": "b"}})
'''

SLOW_TEST = '''
import json, os, pathlib, threading, time

def test_waits_to_be_interrupted(kyb_cluster):
    pathlib.Path(os.environ["KYB_RECORD"]).write_text(json.dumps(
        {"server": kyb_cluster.server, "data_dir": str(kyb_cluster.data_dir), "pid": os.getpid(),
         "in_process": any(t.name.startswith("kyb-apiserver") for t in threading.enumerate())}))
    time.sleep(120)
'''


TWO_CLUSTERS = '''
import gc, json, logging, os, pathlib, signal, threading, time, urllib.request
from kubernetes import client
from prometheus_client import REGISTRY

RECORD = pathlib.Path(os.environ["KYB_RECORD"])

def record(**facts):
    old = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    old.update(facts)
    RECORD.write_text(json.dumps(old))

def process_state():
    """What an in-process API server could leave changed in the process (pytest's own handlers aside)."""
    root = logging.getLogger()
    kyb = {name: [lg.level, lg.propagate, len(lg.handlers), lg.disabled]
           for name, lg in logging.root.manager.loggerDict.items()
           if name.startswith("kybernetes") and isinstance(lg, logging.Logger)}
    return {"signals": [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP)],
            "wakeup_fd": signal.set_wakeup_fd(-1),
            "root": [root.level] + [repr(h) for h in root.handlers if not type(h).__module__.startswith("_pytest")],
            "kyb_loggers": kyb, "gc": [list(gc.get_threshold()), gc.get_freeze_count(), gc.isenabled()],
            "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
            "metrics": sorted(n for n in REGISTRY._names_to_collectors if n.startswith("apiserver_"))}

record(before=process_state())

def test_a(kyb_cluster):
    record(a={"server": kyb_cluster.server, "data_dir": str(kyb_cluster.data_dir)}, during=process_state())
    kyb_cluster.kubectl("create", "configmap", "from-a", "-n", "default")
    ns = kyb_cluster.create_namespace("a")
    client.CoreV1Api(kyb_cluster.api()).create_namespaced_config_map(ns, {"metadata": {"name": "c"}})

def test_between():
    record(between=process_state())

def test_b(kyb_cluster, kyb_namespace):
    record(b={"server": kyb_cluster.server, "data_dir": str(kyb_cluster.data_dir)})
    core = client.CoreV1Api(kyb_cluster.api())
    assert "from-a" not in [c.metadata.name for c in core.list_namespaced_config_map("default").items]
    assert not [n for n in core.list_namespace().items if n.metadata.name.startswith("a-")]
    core.create_namespaced_config_map(kyb_namespace, {"metadata": {"name": "c"}})
    # The test thread's stalls while another thread keeps the API server busy: a 1 ms ticker.
    url = kyb_cluster.server + "/api/v1/namespaces"
    ctx = kyb_cluster.process._admin_context()
    done = threading.Event()
    def hammer():
        while not done.is_set():
            urllib.request.urlopen(url, context=ctx, timeout=10).read()
    worker = threading.Thread(target=hammer)
    worker.start()
    gaps, last, end = [], time.monotonic(), time.monotonic() + 2
    while last < end:
        time.sleep(0.001)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    done.set()
    worker.join(15)
    record(stall_max=max(gaps), stall_p99=sorted(gaps)[int(len(gaps) * 0.99)])

def test_after():
    record(after=process_state())
'''


def _plugin_args() -> list[str]:
    installed = any(e.value == "kybernetes.testing.plugin"
                    for e in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "kybernetes.testing.plugin"]


def _project(tmp_path: Path, tests: str, *, xdist: bool = False, ini: str = "") -> tuple[list[str], dict[str, str]]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(tests))
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}")  # the user's own: none of this project's settings
    env = {**os.environ, "KYB_RECORD": str(tmp_path / "record.json")}
    env.pop("KUBECONFIG", None)
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *_plugin_args(),
            *(["-n", "2"] if xdist else []), str(tmp_path)]
    return args, env


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _gone(data_dir: str, timeout: float = 45.0) -> None:
    """Until no process mentions the cluster's data dir and the dir is removed."""
    deadline = time.monotonic() + timeout
    while _processes_mentioning(data_dir) or Path(data_dir).exists():
        assert time.monotonic() < deadline, (f"left behind after {timeout}s: processes "
                                             f"{_processes_mentioning(data_dir)}, dir {Path(data_dir).exists()}")
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    if not shutil.which("kubectl") and not Path("/usr/bin/kubectl").exists():
        pytest.skip("kubectl is not installed (it is on CI)")


IN_PROCESS_INI = "kyb_cluster_mode = in-process\n"


@pytest.mark.parametrize("mode", ["process", "in-process"])
def test_fixtures_nodes_namespaces_and_clean_up(tmp_path: Path, mode: str) -> None:
    args, env = _project(tmp_path, USER_TESTS, ini=IN_PROCESS_INI if mode == "in-process" else "")
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    said = ", API server in-process" if mode == "in-process" else ""
    assert f"kyb_cluster (session scope, 0 hollow nodes{said}) starts once collected, if a test uses it" in run.stdout
    header = run.stdout.partition("\n\n")[0]  # pytest's header: up to the first test's line
    assert "collected " in header, run.stdout
    assert re.search(r"kyb_cluster at https://127\.0\.0\.1:\d+ answered a namespaced create in \d+\.\d\d s", header)
    facts = json.loads((tmp_path / "record.json").read_text())
    assert facts["server"].startswith("https://127.0.0.1:") and facts["started_in"] > 0
    assert bool(facts["server_threads"]) == (mode == "in-process"), facts  # where the API server ran
    _gone(facts["data_dir"])


def test_in_process_clusters_one_after_the_other_leave_the_process_as_they_found_it(tmp_path: Path) -> None:
    """Two function-scope in-process clusters in one pytest process: each its own (no object of the
    first in the second), and after each the process is as before: signal handlers, logging
    configuration, the collector, threads, the Prometheus registry; the data dirs are removed."""
    args, env = _project(tmp_path, TWO_CLUSTERS, ini=f"{IN_PROCESS_INI}kyb_cluster_scope = function\n")
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    facts = json.loads((tmp_path / "record.json").read_text())
    assert facts["a"]["server"] != facts["b"]["server"]
    during, before = facts["during"], facts["before"]
    assert any(t.startswith("kyb-apiserver") for t in during["threads"]) and during["metrics"], during
    for later in (facts["between"], facts["after"]):
        for key in ("signals", "wakeup_fd", "root", "gc", "threads", "metrics"):
            assert later[key] == before[key], (key, later[key], before[key])
    assert facts["between"]["kyb_loggers"] == facts["after"]["kyb_loggers"]
    # Not longer than the GIL's switch interval (5 ms) makes it, and the machine's load: far below 1 s.
    assert facts["stall_max"] < 1.0, facts
    for cluster in (facts["a"], facts["b"]):
        _gone(cluster["data_dir"])


def test_one_cluster_per_xdist_worker(tmp_path: Path) -> None:
    tests = '''
import json, os, pathlib
def test_a(kyb_cluster):
    d = pathlib.Path(os.environ["KYB_RECORD"] + "." + os.environ["PYTEST_XDIST_WORKER"])
    d.write_text(json.dumps({"server": kyb_cluster.server, "data_dir": str(kyb_cluster.data_dir)}))
    kyb_cluster.kubectl("create", "configmap", "only-mine", "-n", "default")
test_b = test_a
'''
    args, env = _project(tmp_path, tests, xdist=True)
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    workers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("record.json.gw*"))]
    # Each worker ran one test on a cluster of its own (the ConfigMap would exist twice otherwise).
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(workers) == 2 and workers[0]["server"] != workers[1]["server"], workers
    for w in workers:
        _gone(w["data_dir"])


@pytest.mark.parametrize("mode", ["process", "in-process"])
@pytest.mark.parametrize("how", ["ctrl-c", "worker-killed"])
def test_an_interrupted_run_leaves_nothing_behind(tmp_path: Path, how: str, mode: str) -> None:
    args, env = _project(tmp_path, SLOW_TEST, xdist=how == "worker-killed")
    args += ["--kyb-in-process"] if mode == "in-process" else []
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        record = tmp_path / "record.json"
        deadline = time.monotonic() + 120
        while not record.exists() or not record.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        facts = json.loads(record.read_text())
        assert _processes_mentioning(facts["data_dir"]), "the cluster is not running"
        assert facts["in_process"] == (mode == "in-process"), facts
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends pytest
        else:
            os.kill(facts["pid"], signal.SIGKILL)  # the xdist worker that holds the cluster
        _gone(facts["data_dir"])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.mark.parametrize("mode", ["process", "in-process"])
def test_the_kopf_example_passes(mode: str) -> None:
    """examples/kopf-operator: a kopf operator's own suite on the plugin, as its README runs it (in
    the in-process mode too: kopf runs its own event loop beside the server's)."""
    pytest.importorskip("kopf", reason="kopf is in the test extras (installed on CI by scripts/setup.sh)")
    example = Path(__file__).resolve().parents[2] / "examples" / "kopf-operator"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    mode_args = ["--kyb-in-process"] if mode == "in-process" else []
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *_plugin_args(), *mode_args],
                         cwd=example, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout, run.stdout
