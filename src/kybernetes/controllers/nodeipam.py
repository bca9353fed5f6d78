"""Node IPAM: give every node its own pod range (``spec.podCIDR``/``spec.podCIDRs``).

Kubernetes' range allocator (``pkg/controller/nodeipam/ipam/range_allocator.go``) in short:
the cluster CIDR (``cluster-cidr``, default ``10.42.0.0/16``) is cut into blocks of
``node-cidr-mask-size`` bits (default ``/24``); a bitmap says which blocks are taken.

* At start - after the node informer has synced, before any worker runs - the bitmap is rebuilt
  from the ranges nodes already have, so a restarted controller never hands a range out twice.
* A node without a range gets the next free block (searching round-robin from the last one given,
  so a just-freed block is not reused at once) written with one merge patch. The block is
  remembered for that node while the write is in flight: a second sync that still sees the old
  node in the cache reuses it instead of taking another block.
* A deleted node's block is released.

A full range is reported as a ``CIDRNotAvailable`` event on the node and retried later.
"""

from __future__ import annotations

import ipaddress
import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)


class CIDRSet:
    """The blocks of one cluster CIDR, as a set of taken indices."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen or mask_size > self.network.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit in cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self.block = 1 << (self.network.max_prefixlen - mask_size)
        self.size = 1 << (mask_size - self.network.prefixlen)
        self.taken: set[int] = set()
        self._next = 0

    def cidr(self, index: int) -> str:
        base = int(self.network.network_address) + index * self.block
        return f"{ipaddress.ip_address(base)}/{self.mask_size}"

    def index_of(self, cidr: str) -> int | None:
        """The block a CIDR is, or None when it is not one of ours."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size or not net.subnet_of(self.network):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self.block

    def occupy(self, cidr: str) -> bool:
        idx = self.index_of(cidr)
        if idx is None:
            return False
        self.taken.add(idx)
        return True

    def release(self, cidr: str) -> None:
        idx = self.index_of(cidr)
        if idx is not None:
            self.taken.discard(idx)

    def allocate(self) -> str | None:
        for step in range(self.size):
            idx = (self._next + step) % self.size
            if idx not in self.taken:
                self.taken.add(idx)
                self._next = (idx + 1) % self.size
                return self.cidr(idx)
        return None


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [c for c in spec.get("podCIDRs") or [] if isinstance(c, str)]
    if not cidrs and isinstance(spec.get("podCIDR"), str) and spec["podCIDR"]:
        cidrs = [spec["podCIDR"]]
    return cidrs


class NodeIPAMController(Controller):
    name = "node-ipam-controller"
    service_account = "node-controller"
    workers = 1  # allocation is cheap; one worker keeps the round-robin order simple

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cidrs = CIDRSet(str(ctx.option("cluster-cidr", "10.42.0.0/16")),
                             int(ctx.option("node-cidr-mask-size", 24)))
        self.retry_full = float(ctx.option("node-cidr-retry-period", 30.0))
        self.nodes = self.informer("v1", "nodes")
        self.nodes.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new),
                               on_delete=self._on_delete)
        self._pending: dict[str, str] = {}
        """Node name -> block handed out whose write the cache may not show yet."""

    def _on_delete(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        for c in node_cidrs(node):
            self.cidrs.release(c)
        pending = self._pending.pop(name, None)
        if pending:
            self.cidrs.release(pending)
        # Nodes waiting for a block (the range was full) may have one now.
        for other in self.nodes.store.list():
            if not node_cidrs(other) and other["metadata"]["name"] != name:
                self.enqueue(other)

    def rebuild(self) -> None:
        """Mark every range the nodes already have as taken (called once the cache is synced)."""
        for node in self.nodes.store.list():
            for c in node_cidrs(node):
                if not self.cidrs.occupy(c):
                    log.info("node %s has pod CIDR %s outside the cluster CIDR", node["metadata"]["name"], c)

    async def run(self) -> None:
        self.rebuild()
        await super().run()

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        node = self.nodes.store.get(key)
        if node is None:
            return
        have = node_cidrs(node)
        if have:
            for c in have:
                self.cidrs.occupy(c)
            self._pending.pop(name, None)
            return
        cidr = self._pending.get(name) or self.cidrs.allocate()
        if cidr is None:
            self.recorder.event(node, "Normal", "CIDRNotAvailable", f"Node {name} status is now: CIDRNotAvailable")
            self.queue.add_after(key, self.retry_full)
            return
        self._pending[name] = cidr
        try:
            await self.client.patch("v1", "nodes", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except errors.NotFound:
            self._pending.pop(name, None)
            self.cidrs.release(cidr)
            return
        except errors.Invalid:
            # Someone else set a range meanwhile (podCIDR is immutable once set): give ours back.
            self._pending.pop(name, None)
            self.cidrs.release(cidr)
            raise
        log.info("node %s: pod CIDR %s", name, cidr)


CONTROLLERS: list[type[Controller]] = [NodeIPAMController]
