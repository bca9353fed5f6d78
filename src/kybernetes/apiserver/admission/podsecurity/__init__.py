"""PodSecurity admission (Kubernetes 1.32's ``k8s.io/pod-security-admission``).

``levels`` (levels, versions, a namespace's policy from its labels), ``policy`` (what a check is
and answers), ``checks_baseline`` / ``checks_restricted`` (every check with its ID and versions),
``evaluator`` (which checks a level:version runs, in order), ``namespaces`` (warnings about a
namespace's existing pods), ``admission`` (the plugin).
"""
