"""kube-controller-manager: one module per controller, run by ``manager.py``."""
