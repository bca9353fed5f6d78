"""kube-apiserver's auditing: the audit.k8s.io/v1 policy (``policy``), events (``events``), the log
backend (``writer``) and the request path's side (``auditor``).

:func:`new_auditor` builds it from the flags: None when no policy file or no log path is given
(kube-apiserver audits nothing then); a bad policy file is :class:`~.policy.PolicyError` with
kube-apiserver's text, whether or not a log path is given (Kubernetes loads the policy either way).
"""

from __future__ import annotations

from kybernetes.apiserver.audit.auditor import Auditor
from kybernetes.apiserver.audit.policy import PolicyError, load_policy_file
from kybernetes.apiserver.audit.writer import LogBackend


def validate_log_flags(path: str, max_age: int, max_backups: int, max_size: int) -> list[str]:
    """``AuditLogOptions.Validate``: the log flags' errors (checked only when a log path is given)."""
    if not path:
        return []
    return [f"--audit-log-{name} {value} can't be a negative number"
            for name, value in (("maxage", max_age), ("maxbackup", max_backups), ("maxsize", max_size)) if value < 0]


def new_auditor(policy_file: str, log_path: str, max_size_mb: int = 0, max_backups: int = 0,
                max_age_days: int = 0) -> Auditor | None:
    """The auditor the flags ask for, its writer not started yet (:meth:`Auditor.start`); raises
    :class:`PolicyError` (kube-apiserver's text) for a bad policy file or log flag."""
    if problems := validate_log_flags(log_path, max_age_days, max_backups, max_size_mb):
        raise PolicyError("; ".join(problems))
    if not policy_file:
        return None
    policy = load_policy_file(policy_file)
    if not log_path:
        return None
    return Auditor(policy, LogBackend(log_path, max_size_mb, max_backups, max_age_days))


def check_flags(policy_file: str, log_path: str, max_size_mb: int = 0, max_backups: int = 0,
                max_age_days: int = 0) -> None:
    """What :func:`new_auditor` would refuse, checked without making anything (the CLI's flag check)."""
    if problems := validate_log_flags(log_path, max_age_days, max_backups, max_size_mb):
        raise PolicyError("; ".join(problems))
    if policy_file:
        load_policy_file(policy_file)


__all__ = ["Auditor", "LogBackend", "PolicyError", "check_flags", "load_policy_file", "new_auditor",
           "validate_log_flags"]
