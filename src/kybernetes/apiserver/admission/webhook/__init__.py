"""Admission webhooks: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins.

kube-apiserver's ``k8s.io/apiserver/pkg/admission/plugin/webhook`` in Python, one module per concern:

* :mod:`.source`: the webhook configurations, listed and watched from the registry, kept compiled
  and ordered as Kubernetes orders them (configurations by name, webhooks in their order);
* :mod:`.rules`: a rule against a request (operations, groups, versions, resources with
  subresources and ``*``, scope);
* :mod:`.matching`: whether to call a webhook (namespaceSelector, objectSelector, rules, matchPolicy
  Equivalent through the catalogue, matchConditions) and with which resource and kind;
* :mod:`.conditions`: CEL matchConditions (on the CEL layer, ``apiserver/cel``);
* :mod:`.review`: the AdmissionReview v1 request as Kubernetes fills it, and its response checked;
* :mod:`.client`: the HTTPS call (``url``, or ``service`` resolved by the API server itself to a
  ready endpoint), TLS verified against ``caBundle``, ``timeoutSeconds``;
* :mod:`.dispatch`: the two dispatchers (mutating in order with JSON patches and reinvocation;
  validating concurrently), failure policies, dry-run and side effects, warnings, denials;
* :mod:`.plugin`: what both plugins share (source, matcher, client; started with the chain);
* :mod:`.mutating` and :mod:`.validating`: the two plugins as the admission chain builds them.
"""
