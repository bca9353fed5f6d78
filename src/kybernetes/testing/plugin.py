"""The pytest plugin (entry point ``pytest11``): a real kybernetes cluster for your tests.

Fixtures:

``kyb_cluster``
    A :class:`~kybernetes.testing.cluster.KybCluster`: API server, scheduler and every controller on
    a free loopback port and a fresh data dir; ``.kubeconfig``, ``.server``, ``.kubectl(...)``,
    ``.api()``. Session scope unless the ini option ``kyb_cluster_scope`` says otherwise
    (``module``, ``package``, ``class`` or ``function``). ``KUBECONFIG`` points at it while it runs,
    for libraries that read it (kopf, kr8s, lightkube). Under pytest-xdist each worker has its own.
``kyb_namespace``
    The name (a ``str``) of a fresh namespace of ``kyb_cluster`` whose ``default`` ServiceAccount
    exists; deleted, with everything in it, after the test.

Nodes: ``@pytest.mark.kyb_nodes(3)`` (or ``--kyb-nodes 3`` / ini ``kyb_nodes``, for every test)
makes at least that many hollow nodes exist: Deployments reach Running with no container.
``--kyb-real-node`` (root, with containerd installed) runs this machine's node instead.

Mode: by default the API server is a ``kyb server`` child process, as the scheduler and the
controller manager are. ``kyb_cluster_mode = in-process`` (ini) or ``--kyb-in-process`` runs it on
a thread of the test process instead (:mod:`kybernetes.testing.inprocess`): a cluster after the
first of a run starts faster (no interpreter to start, nothing to import), at the price of sharing
the test process's GIL and interpreter; the first one pays the imports. No real node in that mode.

Nothing is started unless a test asks for ``kyb_cluster``, and nothing is left behind: the processes
run under :mod:`~kybernetes.testing.guardian`, which ends them and removes the data dir when the
fixture is torn down or the test process dies (Ctrl-C, a killed xdist worker).

How long the cluster took to answer a namespaced create is kept in ``kyb_cluster.started_in`` and
printed in the header: a session-scope cluster that a collected test uses is started as soon as
collection ends, and its line follows "collected N items". A cluster started later (another
scope, or under xdist, whose workers print no header) is reported in the terminal summary.

This module imports nothing heavy: it is loaded into every pytest run on a machine where
kybernetes is installed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kybernetes.testing.cluster import KybCluster

SCOPES = ("session", "package", "module", "class", "function")
MODES = ("process", "in-process")
_started: list[tuple[str, float]] = []  # (server URL, seconds) of each cluster started lazily
_early: list[KybCluster] = []  # the session cluster started when collection ended, until a fixture takes it


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kybernetes", "kybernetes test cluster (kyb_cluster)")
    group.addoption("--kyb-nodes", type=int, default=None, metavar="N",
                    help="hollow nodes in kyb_cluster for every test (default: the kyb_nodes ini option, 0)")
    group.addoption("--kyb-real-node", action="store_true", default=False,
                    help="run this machine's node (kubelet, containerd) in kyb_cluster: needs root")
    group.addoption("--kyb-in-process", action="store_true", default=False,
                    help="run kyb_cluster's API server on a thread of the test process (kyb_cluster_mode = in-process)")
    parser.addini("kyb_cluster_scope", "scope of the kyb_cluster fixture", default="session")
    parser.addini("kyb_nodes", "hollow nodes in kyb_cluster for every test", default="0")
    parser.addini("kyb_cluster_mode", "where kyb_cluster's API server runs: process (a child process) or "
                  "in-process (a thread of the test process)", default="process")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kyb_nodes(n): the test needs at least n Ready nodes in kyb_cluster")


def pytest_report_header(config: pytest.Config) -> str:
    nodes = "this machine's node" if config.getoption("--kyb-real-node") else f"{_default_nodes(config)} hollow nodes"
    scope = _scope("kyb_cluster", config)
    when = "once collected, if a test uses it" if scope == "session" else "when a test asks for it"
    mode = ", API server in-process" if _in_process(config) else ""
    return f"kybernetes: kyb_cluster ({scope} scope, {nodes}{mode}) starts {when}"


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """Start the session's cluster now, when a collected test needs it, and say how long it took."""
    if (config.option.collectonly or _scope("kyb_cluster", config) != "session"
            or not any("kyb_cluster" in getattr(item, "fixturenames", ()) for item in items)):
        return None
    cluster = _start(config)
    _early.append(cluster)
    return f"kybernetes: kyb_cluster at {cluster.server} answered a namespaced create in {cluster.started_in:.2f} s"


def pytest_unconfigure(config: pytest.Config) -> None:
    while _early:  # started when collection ended, and no test took it (the run ended first)
        _early.pop().stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for server, seconds in _started:
        terminalreporter.write_line(f"kybernetes: kyb_cluster at {server} answered a namespaced create "
                                    f"{seconds:.2f} s after it was requested")


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = str(config.getini("kyb_cluster_scope") or "session")
    if scope not in SCOPES:
        raise pytest.UsageError(f"kyb_cluster_scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def _in_process(config: pytest.Config) -> bool:
    mode = str(config.getini("kyb_cluster_mode") or "process")
    if mode not in MODES:
        raise pytest.UsageError(f"kyb_cluster_mode must be one of {', '.join(MODES)}, not {mode!r}")
    in_process = bool(config.getoption("--kyb-in-process")) or mode == "in-process"
    if in_process and config.getoption("--kyb-real-node"):
        raise pytest.UsageError("--kyb-real-node needs the process mode (kyb_cluster_mode = process)")
    return in_process


def _start(config: pytest.Config) -> KybCluster:
    from kybernetes.testing.cluster import KybCluster

    return KybCluster.start(real_node=bool(config.getoption("--kyb-real-node")), in_process=_in_process(config))


def _default_nodes(config: pytest.Config) -> int:
    option = config.getoption("--kyb-nodes")
    return int(option if option is not None else config.getini("kyb_nodes") or 0)


@contextlib.contextmanager
def _kubeconfig_exported(path: str) -> Iterator[None]:
    """``KUBECONFIG`` names the cluster while it runs. The official client reads the variable once,
    when ``kubernetes.config`` is first imported (usually by a test module, before any fixture), into
    ``kube_config.KUBE_CONFIG_DEFAULT_LOCATION``; so that its ``load_kube_config()`` (which kopf's
    login calls) finds the cluster too, that default is set as well, and both are put back after."""
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = path
    kube_config = sys.modules.get("kubernetes.config.kube_config")
    default = getattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", None)
    if kube_config is not None:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        if kube_config is not None:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = default  # type: ignore[attr-defined]


@pytest.fixture(scope=_scope)
def kyb_cluster(request: pytest.FixtureRequest) -> Iterator[KybCluster]:

    if _early and request.scope == "session":
        cluster = _early.pop()
    else:
        cluster = _start(request.config)
        _started.append((cluster.server, cluster.started_in))
    try:
        with _kubeconfig_exported(str(cluster.kubeconfig)):
            cluster.ensure_nodes(_default_nodes(request.config))
            yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _kyb_nodes_marker(request: pytest.FixtureRequest) -> None:
    """A test marked ``kyb_nodes(n)`` gets at least n nodes (only tests that use ``kyb_cluster``)."""
    marker = request.node.get_closest_marker("kyb_nodes")
    if marker is None or "kyb_cluster" not in request.fixturenames:
        return
    count = int(marker.args[0] if marker.args else marker.kwargs.get("count", 1))
    cluster: KybCluster = request.getfixturevalue("kyb_cluster")
    if not cluster.real_node:
        cluster.ensure_nodes(count)


@pytest.fixture
def kyb_namespace(kyb_cluster: KybCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = kyb_cluster.create_namespace(request.node.name)
    try:
        yield name
    finally:
        kyb_cluster.delete_namespace(name)
