"""The test kit's in-process mode: ``kyb server``'s bundle with its API server on a thread of the
test process (``kyb_cluster_mode = in-process``, ``--kyb-in-process``).

:meth:`InProcessServer.start` runs what ``kyb server`` runs for a test cluster (the flags
:meth:`ServerProcess.start <kybernetes.testing.ServerProcess.start>` gives it for a control plane
without a node, read by :func:`kybernetes.cli.server_config`) with :func:`kybernetes.bundle.run_server`
on a thread of its own, with an event loop of its own (uvloop, as every daemon's): never the test's
loop, which may not exist (a sync test) or may be stopped and started by the test. The store and
the serving stay on that thread (and its loop's executor threads); the scheduler and the controller
manager are child processes as in the process mode, each under a guardian. Guarantees:

- Fresh data dir (the caller's), a free loopback port (bound as port 0: no race for it).
- Process-wide state is left as it was found: no signal handler is installed (none can be off the
  main thread, and ``run_server`` asks for none), the logging configuration is not changed (one
  handler, on the root logger, writes the WARNING-and-above records of the server's threads to
  ``DATA_DIR/server.log``; it is removed by ``stop``; those records still reach the test process's
  own handlers, pytest's capture among them), the garbage collector is not tuned (``aiorun.run``
  freezes the heap of a daemon; a test process's heap is the test's), the server's Prometheus
  collectors leave the default registry when it stops (``apiserver.monitoring``).
- ``stop`` stops the children (SIGTERM to their guardians), the API server and store, ends the
  thread and its executor, removes the data dir. If the test process dies without ``stop`` (a
  SIGKILL), the children's guardians end them and a third guardian, watching only, removes the
  data dir; the thread is a daemon thread, so an interpreter that exits without ``stop`` (Ctrl-C
  during collection) does not wait for it.
- The API server shares the GIL with the test: its Python work delays the test thread's by at most
  a switch interval (``sys.getswitchinterval()``, 5 ms) at a time; what it does in C (TLS, SQLite,
  JSON) releases the GIL as in any threaded program.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.testing import _COMPONENT_ARG, ServerProcess, _free_secure_ports, stop_process
from kybernetes.testing.cluster import guarded

THREAD_PREFIX = "kyb-apiserver"
"""The name (prefix) of the server's thread and of its loop's executor threads."""

STOP_TIMEOUT = 60.0


def server_args(data_dir: Path, *extra: str) -> list[str]:
    """``kyb server``'s flags for a test cluster's control plane without a node (as the process
    mode's ``ServerProcess.start(control_plane=True)``), on a port the kernel picks."""
    args = ["--data-dir", str(data_dir), "--https-port", "0", "--bind-address", "127.0.0.1", *extra,
            "--disable", "coredns,local-storage,metrics-server", "--disable-cloud-controller", "--disable-agent"]
    for name, port in _free_secure_ports(extra).items():
        args += [_COMPONENT_ARG[name], f"secure-port={port}"]
    return args


class _ServerThreadLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return (record.threadName or "").startswith(THREAD_PREFIX)


@dataclass
class InProcessServer(ServerProcess):
    """A :class:`ServerProcess` whose server runs in this process. ``proc`` is the data dir's
    watching guardian (the only process of its own; the children have theirs)."""

    thread: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    log_handler: logging.Handler | None = None

    @classmethod
    def start_in_process(cls, data_dir: Path, *extra: str, timeout: float = 60.0) -> InProcessServer:
        """Start the bundle on its thread; return once the API server listens and its admin
        kubeconfig is written. The first call in a process imports the API server (most of the
        time it takes); on failure everything started is stopped again and the error raised."""
        from kybernetes.cli import server_config

        data_dir.mkdir(parents=True, exist_ok=True)
        config = server_config(server_args(data_dir, *extra))
        config.child_launcher = guarded("-")
        watcher = subprocess.Popen(guarded(str(data_dir)), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        log_path = data_dir / "server.log"
        srv = cls(data_dir, 0, watcher, log_path, ["kyb", "server", "(in-process)", *server_args(data_dir, *extra)])
        srv.log_handler = logging.FileHandler(log_path)
        srv.log_handler.addFilter(_ServerThreadLog())
        srv.log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
        logging.getLogger().addHandler(srv.log_handler)
        listening = threading.Event()

        def on_ready(api: Any) -> None:
            srv.port = api.port
            listening.set()

        config.api.on_ready = on_ready
        srv.thread = threading.Thread(target=srv._serve, args=(config, listening), daemon=True,
                                      name=f"{THREAD_PREFIX}-{data_dir.name}")
        srv.thread.start()
        try:
            if not listening.wait(timeout):
                raise TimeoutError(f"in-process API server not listening after {timeout}s:\n{srv.log()}")
            if srv.error is not None:
                raise RuntimeError(f"in-process API server failed: {srv.error!r}\n{srv.log()}") from srv.error
        except BaseException:
            srv.stop(15.0)
            raise
        return srv

    def _serve(self, config: Any, listening: threading.Event) -> None:
        """The thread: the bundle on a loop of its own until ``stopping`` is set."""
        from kybernetes import aiorun, bundle

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix=THREAD_PREFIX))
            await bundle.run_server(config, self.stopping, announce=False)

        try:
            # asyncio.Runner installs no SIGINT handler off the main thread.
            with asyncio.Runner(loop_factory=aiorun.new_event_loop) as runner:
                runner.run(main())
        except BaseException as err:  # reported by start (before listening) or logged (after)
            self.error = err
            if listening.is_set():
                logging.getLogger(__name__).error("in-process API server stopped: %r", err)
        finally:
            listening.set()

    def wait_ready(self, timeout: float = 30.0, default_service_account: bool = False,
                   poll_interval: float = 0.1) -> None:
        raise NotImplementedError("an in-process server is ready when start_in_process returns")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Children, API server, thread, log handler, data dir, watcher: in that order (see the
        module docstring). The exit code is 0, or 1 if the thread did not end within ``timeout``
        or the server had failed."""
        deadline = time.monotonic() + timeout
        thread = self.thread
        while thread is not None and thread.is_alive() and self.loop is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread has not reached its loop yet
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.stopping.set)
            except RuntimeError:
                pass  # closed in between: the thread is ending
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        ended = thread is None or not thread.is_alive()
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()
            self.log_handler = None
        if ended:  # a thread still running holds files there: the watcher removes the dir at exit
            shutil.rmtree(self.data_dir, ignore_errors=True)
            stop_process(self.proc, 15.0)
        return 0 if ended and self.error is None else 1

    def kill(self) -> None:
        self.stop(15.0)
