"""The cloud controllers (k8s.io/cloud-provider's ``controllers/``), each driving one provider capability."""
