"""API Priority and Fairness (kube-apiserver's ``util/flowcontrol``).

* :mod:`.bootstrap` -- the mandatory and suggested FlowSchemas and priority levels, and the
  ensurer's rules for keeping them;
* :mod:`.classifier` -- requests to FlowSchemas, precompiled;
* :mod:`.queueset` -- a priority level's seats and fair queues (injectable clock);
* :mod:`.dropped` -- ``Retry-After`` of rejected requests;
* :mod:`.controller` -- :class:`FlowControl`: the configuration controller and the request gate.
"""

from __future__ import annotations

from kybernetes.apiserver.flowcontrol.controller import FlowControl

__all__ = ["FlowControl"]
