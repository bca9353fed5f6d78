"""``kyb agent``: join a machine to a cluster with a join token, then run its kubelet.

The package, by purpose:

- ``config``: :class:`AgentConfig` and the join errors;
- ``credentials``: the join itself (the pinned CA, the node's certificates and kubeconfigs, the
  server's node settings, certificate renewal): the client side of ``kybernetes.join``;
- ``loadbalancer``: the API server load balancer on 127.0.0.1 (k3s's, port 6444 by default) that
  the kubelet, kube-proxy and the node network reach the API servers through; it learns every
  server from the ``kubernetes`` Service's endpoints and fails over when one dies;
- ``inprocess``: the kubelet, kube-proxy and the node network in the agent's own process and event
  loop (the default, as k3s's agent);
- ``children``: their command lines, and with ``--split-node-components`` the same components as
  supervised child processes (``kyb kubelet``, ``kyb proxy``, ``kyb network``);
- ``cmd``: the command line and the agent's run.

On start: the balancer (seeded with ``--server`` and the servers a previous run learned), then the
join (see ``credentials``) through it, then the node's components, whose kubeconfigs name the
balancer. Running, the agent renews both certificates at client-go's jittered deadline and
restarts the kubelet and kube-proxy with them (:func:`renew_certificates`).

Restarts keep everything under ``DATA/agent`` and do not talk to the join endpoint while the
certificates are good. Renewals (a third of the lifetime left, a new node address) authenticate
with the node's still valid client certificate instead of the token, so a node comes back after
a reboot even if its token has since been revoked or expired, as with kubeadm and k3s (the token
is for joining, not for staying).

Errors: a refused token, a CA that does not match the token, or a CSR the server rejects end the
agent with a message and exit status 1. An unreachable server (or a 5xx) is retried with back-off,
so agents may start before their server.

Stopping: SIGTERM/SIGINT stop the kubelet (graceful node shutdown, drain-on-exit), kube-proxy and
the network, in the agent's process or as signals to its children; the agent waits for the kubelet
(``--stop-timeout``) before it exits. A component that ends on its own in the agent's process ends
the agent with exit status 1 (``inprocess``).
"""

from kybernetes.agent.children import kubelet_args, network_args, proxy_args, supervise
from kybernetes.agent.cmd import command, explicit_settings, main
from kybernetes.agent.config import AgentConfig, JoinError, NotServed, Unreachable
from kybernetes.agent.credentials import (
    SERVER_SETTINGS,
    Credentials,
    default_node_ip,
    ensure_credentials,
    fetch_ca,
    fetch_node_settings,
    join_with_retry,
    renew_certificates,
    renew_client_certificate,
    with_server_settings,
)

__all__ = [
    "SERVER_SETTINGS", "AgentConfig", "Credentials", "JoinError", "NotServed", "Unreachable", "command",
    "default_node_ip", "ensure_credentials", "explicit_settings", "fetch_ca", "fetch_node_settings",
    "join_with_retry", "kubelet_args", "main", "network_args", "proxy_args", "renew_certificates",
    "renew_client_certificate", "supervise", "with_server_settings",
]
