"""The node agent's kubelet and its runtime layer.

`cri` is the CRI (runtime.v1) gRPC client the kubelet drives containers with; `containerd`
supervises the node's own containerd; `cni` writes the pod network configuration containerd's CRI
plugin hands to the CNI plugins.
"""
