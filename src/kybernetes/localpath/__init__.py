"""The local-path provisioner (`kyb local-path-provisioner`), k3s's local-path-provisioner for kybernetes.

It runs as the `local-storage` add-on (`kybernetes.addons`), a Deployment in kube-system, and gives
claims of the `local-path` StorageClass a directory on the node the scheduler chose:
`plan` decides, `provisioner` acts (helper pods, PVs, events), `cmd` is the command line.
"""
