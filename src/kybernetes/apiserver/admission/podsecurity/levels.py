"""Pod Security levels, versions, and a namespace's policy read from its labels.

``k8s.io/pod-security-admission/api`` (``constants.go``, ``helpers.go``) of Kubernetes 1.32:

* three levels, ``privileged`` < ``baseline`` < ``restricted``;
* a version is ``latest`` or ``v1.N`` (``latest`` is newer than every ``v1.N``);
* a namespace's labels ``pod-security.kubernetes.io/<mode>`` and ``<mode>-version`` for the modes
  enforce, audit and warn set its :class:`Policy` on top of the defaults
  (:func:`policy_to_evaluate`). A bad enforce level fails closed (``restricted``), a bad audit or
  warn level fails open (``privileged``), a bad version reads as ``latest``; each bad value is
  also reported as a field error (``metadata.labels[<label>]: Invalid value``). Setting only an
  enforce level raises an unset warn level to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kybernetes.api.validation import FieldError, Path, invalid

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
"""In increasing strictness (``validLevels``)."""

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LEVEL_LABEL = LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL = LABEL_PREFIX + "enforce-version"
AUDIT_LEVEL_LABEL = LABEL_PREFIX + "audit"
AUDIT_VERSION_LABEL = LABEL_PREFIX + "audit-version"
WARN_LEVEL_LABEL = LABEL_PREFIX + "warn"
WARN_VERSION_LABEL = LABEL_PREFIX + "warn-version"

AUDIT_ANNOTATION_PREFIX = LABEL_PREFIX
"""Audit annotations are ``pod-security.kubernetes.io/<key>`` (``AuditAnnotationPrefix``)."""
EXEMPTION_REASON_ANNOTATION = "exempt"
AUDIT_VIOLATIONS_ANNOTATION = "audit-violations"
ENFORCED_POLICY_ANNOTATION = "enforce-policy"

_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")
_LABELS_PATH = Path("metadata", "labels")


@dataclass(frozen=True, order=True)
class Version:
    """``v<major>.<minor>``, or ``latest`` (which sorts after every numbered version)."""

    latest: bool = False
    major: int = 0
    minor: int = 0

    def __str__(self) -> str:
        return "latest" if self.latest else f"v{self.major}.{self.minor}"

    def older(self, other: Version) -> bool:
        """``Version.Older``: strictly older; ``latest`` is never older than anything."""
        if self.latest:
            return False
        return other.latest or (self.major, self.minor) < (other.major, other.minor)


LATEST = Version(latest=True)


def v1(minor: int) -> Version:
    """``api.MajorMinorVersion(1, minor)``."""
    return Version(major=1, minor=minor)


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: Version

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        """Two privileged ones are equivalent whatever their versions."""
        return (self.level == PRIVILEGED and other.level == PRIVILEGED) or self == other


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def fully_privileged(self) -> bool:
        return self.enforce.level == PRIVILEGED and self.audit.level == PRIVILEGED and self.warn.level == PRIVILEGED

    def equivalent(self, other: Policy) -> bool:
        return (self.enforce.equivalent(other.enforce) and self.audit.equivalent(other.audit)
                and self.warn.equivalent(other.warn))


PRIVILEGED_LATEST = LevelVersion(PRIVILEGED, LATEST)
DEFAULT_POLICY = Policy(PRIVILEGED_LATEST, PRIVILEGED_LATEST, PRIVILEGED_LATEST)
"""kube-apiserver's default PodSecurityConfiguration: every mode ``privileged:latest``."""


def parse_level(value: str) -> tuple[str, str | None]:
    """``ParseLevel``: (level, error); a bad value reads as ``restricted``."""
    if value in LEVELS:
        return value, None
    return RESTRICTED, "must be one of " + ", ".join(LEVELS)


def parse_version(value: str) -> tuple[Version, str | None]:
    """``ParseVersion``: (version, error); a bad value reads as ``latest``."""
    if value == "latest":
        return LATEST, None
    match = _VERSION.match(value)
    if match is None:
        return LATEST, 'must be "latest" or "v1.x"'
    return v1(int(match.group(1))), None


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as level ``a`` is less strict than, as strict as or stricter than ``b``."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


def _mode(labels: dict[str, str], level_label: str, version_label: str, default: LevelVersion,
          bad_level: str | None, errs: list[FieldError]) -> tuple[LevelVersion, bool]:
    """One mode's level and version; whether its level label was given and valid."""
    level, version, level_ok = default.level, default.version, False
    if level_label in labels:
        value = labels[level_label]
        level, err = parse_level(value)
        if err is not None:
            errs.append(invalid(_LABELS_PATH.key(level_label), value, err))
            level = bad_level or level
        level_ok = err is None
    if version_label in labels:
        value = labels[version_label]
        version, err = parse_version(value)
        if err is not None:
            errs.append(invalid(_LABELS_PATH.key(version_label), value, err))
    return LevelVersion(level, version), level_ok


def policy_to_evaluate(labels: dict[str, str] | None, defaults: Policy = DEFAULT_POLICY) -> tuple[Policy, list[FieldError]]:
    """``PolicyToEvaluate``: the namespace's policy from its labels over ``defaults``, and the
    field errors for the labels that do not parse (the policy then fails as described above)."""
    if not labels:
        return defaults, []
    errs: list[FieldError] = []
    enforce, has_enforce = _mode(labels, ENFORCE_LEVEL_LABEL, ENFORCE_VERSION_LABEL, defaults.enforce, None, errs)
    audit, _ = _mode(labels, AUDIT_LEVEL_LABEL, AUDIT_VERSION_LABEL, defaults.audit, PRIVILEGED, errs)
    warn, _ = _mode(labels, WARN_LEVEL_LABEL, WARN_VERSION_LABEL, defaults.warn, PRIVILEGED, errs)
    if WARN_LEVEL_LABEL not in labels and has_enforce and compare_levels(enforce.level, warn.level) > 0:
        # Setting only an enforce level warns at it too (so clients see what would be refused).
        version = warn.version if WARN_VERSION_LABEL in labels else enforce.version
        warn = LevelVersion(enforce.level, version)
    return Policy(enforce, audit, warn), errs
