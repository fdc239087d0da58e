"""The node agent (kubelet): node registration, the pod sync loop, pod networks and IPAM, DNS files,
environment, restart policy, probes and pod status. `daemon.py` is the `svcnet agent` process."""
