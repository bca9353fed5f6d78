"""CertificateSubjectRestriction (Kubernetes' ``plugin/pkg/admission/certificates/subjectrestriction``,
on by default; validating, CertificateSigningRequest CREATE).

Nobody may ask the ``kubernetes.io/kube-apiserver-client`` signer for a certificate in the
``system:masters`` group (403). It runs after validation, so a request that does not parse has
already been refused with 422.
"""

from __future__ import annotations

from kybernetes.api import certificates as certs
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit, forbidden

NAME = "CertificateSubjectRestriction"


class CertificateSubjectRestriction(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("certificates.k8s.io", "certificatesigningrequests")})

    async def validate(self, attrs: Attributes) -> None:
        spec = (attrs.object or {}).get("spec")
        if attrs.subresource or not isinstance(spec, dict) or spec.get("signerName") != certs.KUBE_APISERVER_CLIENT:
            return
        try:
            info = certs.parse_csr(certs.decode_bytes(spec.get("request")))
        except certs.CSRError:
            return  # validation has refused it already
        if "system:masters" in info.organizations:
            raise forbidden(attrs, f"use of {certs.KUBE_APISERVER_CLIENT} signer with system:masters group is "
                                   "not allowed")


def new(init: PluginInit) -> CertificateSubjectRestriction:
    return CertificateSubjectRestriction()
