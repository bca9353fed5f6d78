"""``/livez``, ``/readyz`` and ``/healthz``: named checks, answered as kube-apiserver's healthz package does.

The generic endpoint (named checks, ``?verbose``, ``?exclude``, ``/readyz/NAME``) is
:mod:`kybernetes.httpserver.healthz`, which every component serves too; this module adds the API
server's checks:

- The ``etcd`` check asks the store for its revision within :data:`PROBE_TIMEOUT` seconds: it
  fails while the datastore is unreachable and passes again, without a restart, once it is back.
"""

from __future__ import annotations

from kybernetes.aiorun import wait_for
from kybernetes.httpserver.healthz import Check, ping, serve
from kybernetes.storage.interface import Store

__all__ = ["PROBE_TIMEOUT", "Check", "checks_for", "serve", "store_check"]

PROBE_TIMEOUT = 2.0
"""Seconds the store has to answer the ``etcd`` check (a probe must never hang)."""


def store_check(store: Store) -> Check:
    async def etcd() -> None:
        try:
            await wait_for(store.current_revision(), PROBE_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"the datastore did not answer within {PROBE_TIMEOUT:g}s") from None

    return etcd


def checks_for(store: Store) -> dict[str, Check]:
    """The checks of ``/livez`` and ``/readyz``, in the order they are listed."""
    return {"ping": ping, "log": ping, "etcd": store_check(store)}
