"""The printer of certificates.k8s.io CertificateSigningRequests (``printCertificateSigningRequest``).

Columns: NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION. The condition is
``Denied``, ``Approved`` or ``Pending`` (in that precedence), then ``,Failed`` and ``,Issued``
when those apply; a missing signer name or duration is ``<none>``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dstr,
    human_duration,
    name_col,
    name_of,
)


def csr_condition(csr: JSON) -> str:
    """``extractCSRStatus``: the CONDITION cell."""
    types = {c.get("type") for c in dig(csr, "status", "conditions") or [] if isinstance(c, dict)}
    text = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        text += ",Failed"
    if dig(csr, "status", "certificate"):
        text += ",Issued"
    return text


def _csr_cells(csr: JSON, now: datetime) -> Cells:
    seconds = dig(csr, "spec", "expirationSeconds")
    duration = human_duration(timedelta(seconds=seconds)) if isinstance(seconds, int) else "<none>"
    return [name_of(csr), age(csr, now), dstr(csr, "spec", "signerName") or "<none>",
            dstr(csr, "spec", "username"), duration, csr_condition(csr)]


CERTIFICATE_SIGNING_REQUEST = Printer(
    (
        name_col(),
        age_col(),
        col("SignerName", description="The signer the request is addressed to."),
        col("Requestor", description="The user who created the request."),
        col("RequestedDuration", description="The validity the request asked for (spec.expirationSeconds)."),
        col("Condition", description="Approved, Denied or Pending, and whether it Failed or was Issued."),
    ),
    _csr_cells,
)

BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("certificates.k8s.io", "CertificateSigningRequest"): CERTIFICATE_SIGNING_REQUEST,
}
