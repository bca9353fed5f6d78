"""The volume controllers of kube-controller-manager (``pkg/controller/volume``): the PV
controller (``binder``, its decisions in ``binder_plan``) and the ephemeral volume controller
(``ephemeral``). The pvc/pv protection controllers are :mod:`kybernetes.controllers.volumeprotection`.
"""
