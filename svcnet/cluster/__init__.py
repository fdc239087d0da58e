"""`svcnet up` and `svcnet down`: a whole cluster on one machine.

up.py is the one list of what `up` starts; lifecycle.py the cluster network,
the readiness gate and teardown; supervisor.py the per-node agent and proxy
processes; topology.py and egress.py the cluster network; addons.py cluster
DNS; spec.py cluster.json and the data dir; status.py, walkthrough.py and
exec_cli.py the user commands over a running cluster.
"""
