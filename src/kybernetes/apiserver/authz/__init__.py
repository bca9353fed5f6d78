"""Authorization: may this user do this? (Kubernetes' ``k8s.io/apiserver/pkg/authorization`` and
``plugin/pkg/auth/authorizer``.) The contract is :mod:`.authorizer`; RBAC's rule matching is
:mod:`.rules`."""
