"""Cluster DNS (``kyb dns``): the Kubernetes DNS specification served from informers, like CoreDNS.

``records`` (objects -> records, pure), ``zone`` (the records in memory, answers precomputed on
every event), ``wire`` (the hot path: parse a query, assemble an answer from bytes), ``forward``
(upstreams from resolv.conf, with a cache), ``server`` (UDP/TCP and the per-query steps),
``daemon`` (informers, health and readiness), ``cmd`` (the command line).
"""
