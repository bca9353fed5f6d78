"""Per-domain sums over every node, kept current between cycles instead of recomputed per pod.

PodTopologySpread's and InterPodAffinity's PreFilter count matching pods per topology domain
over the whole cluster for every pod (kube-scheduler does the same walk with 16 goroutines). In
one Python thread at 5,000 nodes that walk was the largest part of their cycle, while between two
cycles usually one node changed: the one the previous pod was assumed on.

:class:`NodeSums` holds such a count for one question (e.g. "pods of namespace ``bench`` matching
``app=x``, by zone"): a per-node *contribution* function gives ``(key, n)`` pairs for a node, and
:meth:`NodeSums.refresh` brings the sums up to date by re-reading only the nodes named in the
snapshot's change log since the last refresh (taking off each one's old contribution and adding
its new one). The result is, by construction, what a fresh walk over ``snapshot.node_list`` would
sum; a snapshot without a change log (preemption's what-if copies) cannot be followed, and the
plugins walk it as before.

A contribution must depend only on the node (its labels and pods) and on the question's key,
never on other state that can change without a node changing (namespace labels, for one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from kybernetes.scheduler.framework import Snapshot
from kybernetes.scheduler.nodeinfo import NodeInfo

Contribution = tuple[tuple[tuple[Hashable, Hashable], int], ...]
"""``((group, key), n)`` pairs: e.g. group a topology key, key one of its values."""


class NodeSums:
    """``sums[group][key]``: the total of ``n`` over the listed nodes' contributions;
    ``nodes[group][key]``: how many listed nodes contributed under it (a contribution of 0 still
    counts a node, which is how a topology domain without matching pods is known to exist). A key
    no node contributes to any more is removed, and so is a group left empty: a contribution made
    only of positive ``n`` makes ``sums[group]`` the set of keys with a positive total.

    The dicts are updated in place by the next :meth:`refresh`: a cycle may use them, unchanged,
    until its plugins' next PreFilter."""

    __slots__ = ("_by_node", "_pos", "contribution", "nodes", "snapshot", "sums")

    def __init__(self, contribution: Callable[[NodeInfo], Contribution]) -> None:
        self.contribution = contribution
        self.sums: dict[Any, dict[Any, int]] = {}
        self.nodes: dict[Any, dict[Any, int]] = {}
        self._by_node: dict[str, Contribution] = {}
        self._pos = -1
        self.snapshot: Snapshot | None = None

    def refresh(self, snap: Snapshot) -> None:
        """Bring the sums up to date with ``snap`` (which must have a change log)."""
        log = snap.log
        assert log is not None, "NodeSums needs a snapshot with a change log"
        if snap is not self.snapshot or self._pos < snap.log_start:
            self._rebuild(snap)
        else:
            changed = log[self._pos - snap.log_start:]
            if changed:
                nodes = snap.nodes
                for name in dict.fromkeys(changed):
                    self._take(name)
                    ni = nodes.get(name)
                    if ni is not None:
                        self._put(ni)
        self._pos = snap.log_start + len(log)

    def _rebuild(self, snap: Snapshot) -> None:
        self.sums.clear()
        self.nodes.clear()
        self._by_node.clear()
        self.snapshot = snap
        for ni in snap.node_list:
            self._put(ni)

    def _put(self, ni: NodeInfo) -> None:
        parts = self.contribution(ni)
        if not parts:
            return
        self._by_node[ni.name] = parts
        sums, nodes = self.sums, self.nodes
        for (g, k), n in parts:
            gs = sums.get(g)
            if gs is None:
                gs = sums[g] = {}
                nodes[g] = {}
            gn = nodes[g]
            gs[k] = gs.get(k, 0) + n
            gn[k] = gn.get(k, 0) + 1

    def _take(self, name: str) -> None:
        parts = self._by_node.pop(name, None)
        if not parts:
            return
        sums, nodes = self.sums, self.nodes
        for (g, k), n in parts:
            gs, gn = sums[g], nodes[g]
            left = gn[k] - 1
            if left:
                gn[k] = left
                gs[k] -= n
            else:
                del gn[k], gs[k]
                if not gn:
                    del nodes[g], sums[g]


class SumsCache:
    """The :class:`NodeSums` of the most recently asked questions (at most ``size``).

    A NodeSums holds one entry per contributing node (for a spread constraint: every node with the
    topology key, about 1 MB at 5,000 nodes), so the cache keeps the questions of the workloads
    being scheduled now, not every one ever asked; an evicted question is rebuilt by one walk.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, NodeSums] = OrderedDict()

    def get(self, key: Hashable, snap: Snapshot, contribution: Callable[[], Callable[[NodeInfo], Contribution]]
            ) -> NodeSums:
        """The refreshed sums for ``key``; ``contribution()`` makes the function when ``key`` is new."""
        s = self._items.get(key)
        if s is None:
            s = self._items[key] = NodeSums(contribution())
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        s.refresh(snap)
        return s

    def discard(self, key: Hashable) -> None:
        """Forget ``key``'s sums (their refresh failed part way)."""
        self._items.pop(key, None)
