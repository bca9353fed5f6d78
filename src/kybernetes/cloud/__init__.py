"""The cloud-controller-manager (``kyb cloud-controller-manager``) and its providers.

``provider.py`` is the contract a cloud provider implements (k8s.io/cloud-provider's ``cloud.go``);
``registry.py`` finds a provider by name (``--cloud-provider``); ``local/`` is the default provider,
the machines that joined with ``kyb agent``; ``controllers/`` drive a provider (cloud node, node
lifecycle, service, route), and ``manager.py`` runs them under leader election.
"""
