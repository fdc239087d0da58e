"""The node agent: the cluster network, pod sandboxes, and (later) processes, probes and status."""
