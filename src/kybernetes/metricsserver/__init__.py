"""metrics-server: ``metrics.k8s.io/v1beta1`` NodeMetrics and PodMetrics from the kubelets' ``/metrics/resource``.

``kyb metrics-server`` (run by the metrics-server add-on as Deployment ``kube-system/metrics-server``)
is an aggregated API server, as kubernetes-sigs/metrics-server is:

- ``decode``: a kubelet's ``/metrics/resource`` body -> one node point and its containers' points;
- ``storage``: the last two points of every node and container, usage as metrics-server computes it
  (CPU: the rate between the two cumulative samples, memory: the latest working set) and the
  NodeMetrics/PodMetrics objects, their lists and their tables;
- ``scraper``: every ``--metric-resolution``, every node's kubelet at once, each bounded by a timeout;
- ``server``: HTTPS on ``--secure-port``: discovery, get/list of ``nodes`` and ``pods`` (label and
  field selectors), the aggregator's front-proxy identity (request-header CA and allowed names from
  ``kube-system/extension-apiserver-authentication``) or a bearer token (TokenReview), then a
  SubjectAccessReview; ``/healthz``, ``/livez``, ``/readyz`` (ready once a node's metrics can be served);
- ``cmd``: the command line.
"""
