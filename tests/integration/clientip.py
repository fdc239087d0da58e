"""The client-IP pod behind a NodePort Service, for tests that ask which source address a pod sees.

The pod runs the tour's CLIENT_IP_SERVER: every GET is answered with the address the connection came from.
"""
from __future__ import annotations

from svcnet.cluster.tour_services import CLIENT_IP_CONTAINERS


def client_ip_pod_and_node_port(node: str) -> str:
    """A `clientip` pod on node (Ready once it listens on 8080) and a NodePort Service `clientip` (80 -> 8080)."""
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: clientip, labels: {{app: clientip}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers: {CLIENT_IP_CONTAINERS}
---
apiVersion: v1
kind: Service
metadata: {{name: clientip}}
spec:
  type: NodePort
  selector: {{app: clientip}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
