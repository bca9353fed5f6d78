"""Which checks a level and version run, in what order (``pod-security-admission/policy/registry.go``).

For ``baseline:vX`` the baseline checks, each in the version of it that applies at vX (the one
with the greatest minimum version not newer than vX; a check newer than vX does not run); for
``restricted:vX`` those plus the restricted checks, less the baseline checks a restricted one
applying at vX replaces. Versions newer than the newest check version (and ``latest``) run as the
newest. Results come in check-ID order, baseline checks first (the order of the reasons in every
message). ``privileged`` runs nothing.
"""

from __future__ import annotations

from functools import cache

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.podsecurity.checks_baseline import BASELINE_CHECKS
from kybernetes.apiserver.admission.podsecurity.checks_restricted import RESTRICTED_CHECKS
from kybernetes.apiserver.admission.podsecurity.levels import BASELINE, PRIVILEGED, LevelVersion, Version
from kybernetes.apiserver.admission.podsecurity.policy import (
    AggregateResult,
    Check,
    CheckFn,
    CheckResult,
    VersionedCheck,
    aggregate,
)

DEFAULT_CHECKS: tuple[Check, ...] = BASELINE_CHECKS + RESTRICTED_CHECKS

MAX_VERSION: Version = max(c.versions[-1].minimum_version for c in DEFAULT_CHECKS)
"""The newest version any check changes at (v1.32)."""


def _applying(check: Check, version: Version) -> VersionedCheck | None:
    found = None
    for versioned in check.versions:
        if not version.older(versioned.minimum_version):
            found = versioned
    return found


@cache
def checks_for(level: str, version: Version) -> tuple[CheckFn, ...]:
    """The check functions ``level:version`` runs, in order (empty for privileged)."""
    if level == PRIVILEGED:
        return ()
    if MAX_VERSION.older(version):
        version = MAX_VERSION
    baseline = {c.id: v for c in BASELINE_CHECKS if (v := _applying(c, version)) is not None}
    chosen = dict(baseline)
    if level != BASELINE:
        restricted = {c.id: v for c in RESTRICTED_CHECKS if (v := _applying(c, version)) is not None}
        for versioned in restricted.values():
            for overridden in versioned.override_check_ids:
                chosen.pop(overridden, None)
        chosen.update(restricted)
    order = sorted(c.id for c in BASELINE_CHECKS) + sorted(c.id for c in RESTRICTED_CHECKS)
    return tuple(chosen[check_id].check_pod for check_id in order if check_id in chosen)


def evaluate_pod(lv: LevelVersion, meta: Obj, spec: Obj) -> list[CheckResult]:
    """``Evaluator.EvaluatePod``: every check's result for the pod metadata and spec."""
    return [check(meta, spec) for check in checks_for(lv.level, lv.version)]


def evaluate(lv: LevelVersion, meta: Obj, spec: Obj) -> AggregateResult:
    """The aggregate of :func:`evaluate_pod`."""
    return aggregate(evaluate_pod(lv, meta, spec))
