"""Request bodies kubectl 1.32 sent (application/vnd.kubernetes.protobuf), as hex,
with the JSON that `kubectl create ... --dry-run=client -o json` printed for the same command.

Captured from the real kubectl against a recording server; the generator gives a container
created with --port a random name suffix, so the JSON here carries the name from the body.
"""
from __future__ import annotations

from typing import Any

KUBECTL_BODIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "create_namespace": (
        "kubectl create namespace x",
        ("6b3873000a0f0a02763112094e616d65737061636512190a110a017812001a0022002a0032003800420012001a020a00"
         "1a002200"),
        {'kind': 'Namespace',
         'apiVersion': 'v1',
         'metadata': {'name': 'x', 'creationTimestamp': None},
         'spec': {},
         'status': {}},
    ),
    "create_deployment_with_port": (
        "kubectl create deployment web --image=k8s.gcr.io/serve_hostname --replicas=3 --port=9376",
        ("6b3873000a150a07617070732f7631120a4465706c6f796d656e7412dd010a1f0a0377656212001a0022002a00320038"
         "0042005a0a0a03617070120377656212ab010803120c0a0a0a0361707012037765621a90010a1c0a0012001a0022002a"
         "003200380042005a0a0a036170701203776562127012520a1473657276652d686f73746e616d652d34356a6e6c12196b"
         "38732e6763722e696f2f73657276655f686f73746e616d652a00320b0a00100018a04922002a0042006a007200800100"
         "880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c08"
         "00100018002000280038001a002200"),
        {'kind': 'Deployment',
         'apiVersion': 'apps/v1',
         'metadata': {'name': 'web', 'creationTimestamp': None, 'labels': {'app': 'web'}},
         'spec': {'replicas': 3,
                  'selector': {'matchLabels': {'app': 'web'}},
                  'template': {'metadata': {'creationTimestamp': None, 'labels': {'app': 'web'}},
                               'spec': {'containers': [{'name': 'serve-hostname-45jnl',
                                                        'image': 'k8s.gcr.io/serve_hostname',
                                                        'ports': [{'containerPort': 9376}],
                                                        'resources': {}}]}},
                  'strategy': {}},
         'status': {}},
    ),
    "create_service_clusterip": (
        "kubectl create service clusterip cip --tcp=80:9376",
        ("6b3873000a0d0a02763112075365727669636512690a1f0a0363697012001a0022002a003200380042005a0a0a036170"
         "70120363697012420a1b0a0738302d39333736120354435018502207080010a0491a002800120a0a0361707012036369"
         "701a002209436c757374657249503a00420052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'cip', 'creationTimestamp': None, 'labels': {'app': 'cip'}},
         'spec': {'ports': [{'name': '80-9376', 'protocol': 'TCP', 'port': 80, 'targetPort': 9376}],
                  'selector': {'app': 'cip'},
                  'type': 'ClusterIP'},
         'status': {'loadBalancer': {}}},
    ),
    "create_service_nodeport": (
        "kubectl create service nodeport np --tcp=80:9376 --node-port=30080",
        ("6b3873000a0d0a02763112075365727669636512670a1d0a026e7012001a0022002a003200380042005a090a03617070"
         "12026e7012420a1d0a0738302d39333736120354435018502207080010a0491a002880eb0112090a0361707012026e70"
         "1a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'np', 'creationTimestamp': None, 'labels': {'app': 'np'}},
         'spec': {'ports': [{'name': '80-9376',
                             'protocol': 'TCP',
                             'port': 80,
                             'targetPort': 9376,
                             'nodePort': 30080}],
                  'selector': {'app': 'np'},
                  'type': 'NodePort'},
         'status': {'loadBalancer': {}}},
    ),
    "create_service_loadbalancer": (
        "kubectl create service loadbalancer lb --tcp=80:9376",
        ("6b3873000a0d0a02763112075365727669636512690a1d0a026c6212001a0022002a003200380042005a090a03617070"
         "12026c6212440a1b0a0738302d39333736120354435018502207080010a0491a00280012090a0361707012026c621a00"
         "220c4c6f616442616c616e6365723a00420052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'lb', 'creationTimestamp': None, 'labels': {'app': 'lb'}},
         'spec': {'ports': [{'name': '80-9376', 'protocol': 'TCP', 'port': 80, 'targetPort': 9376}],
                  'selector': {'app': 'lb'},
                  'type': 'LoadBalancer'},
         'status': {'loadBalancer': {}}},
    ),
    "create_service_externalname": (
        "kubectl create service externalname en --external-name=example.com",
        ("6b3873000a0d0a02763112075365727669636512570a1d0a02656e12001a0022002a003200380042005a090a03617070"
         "1202656e123212090a036170701202656e1a00220c45787465726e616c4e616d653a004200520b6578616d706c652e63"
         "6f6d5a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'en', 'creationTimestamp': None, 'labels': {'app': 'en'}},
         'spec': {'selector': {'app': 'en'}, 'type': 'ExternalName', 'externalName': 'example.com'},
         'status': {'loadBalancer': {}}},
    ),
    "create_service_headless": (
        "kubectl create service clusterip headless --clusterip=None",
        ("6b3873000a0d0a027631120753657276696365125f0a290a08686561646c65737312001a0022002a003200380042005a"
         "0f0a036170701208686561646c657373122e120f0a036170701208686561646c6573731a044e6f6e652209436c757374"
         "657249503a00420052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'headless', 'creationTimestamp': None, 'labels': {'app': 'headless'}},
         'spec': {'selector': {'app': 'headless'}, 'clusterIP': 'None', 'type': 'ClusterIP'},
         'status': {'loadBalancer': {}}},
    ),
    "create_deployment_two_images": (
        "kubectl create deployment multi --image=busybox --image=nginx",
        ("6b3873000a150a07617070732f7631120a4465706c6f796d656e7412dd010a230a056d756c746912001a0022002a0032"
         "00380042005a0c0a0361707012056d756c746912a7010801120e0a0c0a0361707012056d756c74691a8a010a1e0a0012"
         "001a0022002a003200380042005a0c0a0361707012056d756c7469126812260a0762757379626f78120762757379626f"
         "782a0042006a007200800100880100900100a2010012220a056e67696e7812056e67696e782a0042006a007200800100"
         "880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c08"
         "00100018002000280038001a002200"),
        {'kind': 'Deployment',
         'apiVersion': 'apps/v1',
         'metadata': {'name': 'multi', 'creationTimestamp': None, 'labels': {'app': 'multi'}},
         'spec': {'replicas': 1,
                  'selector': {'matchLabels': {'app': 'multi'}},
                  'template': {'metadata': {'creationTimestamp': None, 'labels': {'app': 'multi'}},
                               'spec': {'containers': [{'name': 'busybox',
                                                        'image': 'busybox',
                                                        'resources': {}},
                                                       {'name': 'nginx',
                                                        'image': 'nginx',
                                                        'resources': {}}]}},
                  'strategy': {}},
         'status': {}},
    ),
    "create_deployment_with_command": (
        "kubectl create deployment cmd --image=busybox -- sleep 3600",
        ("6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bd010a1f0a03636d6412001a0022002a00320038"
         "0042005a0a0a036170701203636d64128b010801120c0a0a0a036170701203636d641a710a1c0a0012001a0022002a00"
         "3200380042005a0a0a036170701203636d64125112330a0762757379626f78120762757379626f781a05736c6565701a"
         "04333630302a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a"
         "0100c2010022020a00280038001a0c0800100018002000280038001a002200"),
        {'kind': 'Deployment',
         'apiVersion': 'apps/v1',
         'metadata': {'name': 'cmd', 'creationTimestamp': None, 'labels': {'app': 'cmd'}},
         'spec': {'replicas': 1,
                  'selector': {'matchLabels': {'app': 'cmd'}},
                  'template': {'metadata': {'creationTimestamp': None, 'labels': {'app': 'cmd'}},
                               'spec': {'containers': [{'name': 'busybox',
                                                        'image': 'busybox',
                                                        'command': ['sleep', '3600'],
                                                        'resources': {}}]}},
                  'strategy': {}},
         'status': {}},
    ),
    "create_service_two_ports": (
        "kubectl create service nodeport np2 --tcp=80:9376,443:8443",
        ("6b3873000a0d0a0276311207536572766963651287010a1f0a036e703212001a0022002a003200380042005a0a0a0361"
         "707012036e703212600a1b0a0738302d39333736120354435018502207080010a0491a0028000a1d0a083434332d3834"
         "3433120354435018bb032207080010fb411a002800120a0a0361707012036e70321a0022084e6f6465506f72743a0042"
         "0052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'np2', 'creationTimestamp': None, 'labels': {'app': 'np2'}},
         'spec': {'ports': [{'name': '80-9376', 'protocol': 'TCP', 'port': 80, 'targetPort': 9376},
                            {'name': '443-8443', 'protocol': 'TCP', 'port': 443, 'targetPort': 8443}],
                  'selector': {'app': 'np2'},
                  'type': 'NodePort'},
         'status': {'loadBalancer': {}}},
    ),
    "create_deployment_default_replicas": (
        "kubectl create deployment dr --image=busybox",
        ("6b3873000a150a07617070732f7631120a4465706c6f796d656e7412ab010a1d0a02647212001a0022002a0032003800"
         "42005a090a0361707012026472127c0801120b0a090a03617070120264721a630a1b0a0012001a0022002a0032003800"
         "42005a090a0361707012026472124412260a0762757379626f78120762757379626f782a0042006a0072008001008801"
         "00900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c080010"
         "0018002000280038001a002200"),
        {'kind': 'Deployment',
         'apiVersion': 'apps/v1',
         'metadata': {'name': 'dr', 'creationTimestamp': None, 'labels': {'app': 'dr'}},
         'spec': {'replicas': 1,
                  'selector': {'matchLabels': {'app': 'dr'}},
                  'template': {'metadata': {'creationTimestamp': None, 'labels': {'app': 'dr'}},
                               'spec': {'containers': [{'name': 'busybox',
                                                        'image': 'busybox',
                                                        'resources': {}}]}},
                  'strategy': {}},
         'status': {}},
    ),
    "create_deployment_zero_replicas": (
        "kubectl create deployment web2 --image=busybox --replicas=0",
        ("6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b4010a210a047765623212001a0022002a003200"
         "380042005a0b0a036170701204776562321280010800120d0a0b0a036170701204776562321a650a1d0a0012001a0022"
         "002a003200380042005a0b0a03617070120477656232124412260a0762757379626f78120762757379626f782a004200"
         "6a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00"
         "280038001a0c0800100018002000280038001a002200"),
        {'kind': 'Deployment',
         'apiVersion': 'apps/v1',
         'metadata': {'name': 'web2', 'creationTimestamp': None, 'labels': {'app': 'web2'}},
         'spec': {'replicas': 0,
                  'selector': {'matchLabels': {'app': 'web2'}},
                  'template': {'metadata': {'creationTimestamp': None, 'labels': {'app': 'web2'}},
                               'spec': {'containers': [{'name': 'busybox',
                                                        'image': 'busybox',
                                                        'resources': {}}]}},
                  'strategy': {}},
         'status': {}},
    ),
    "create_service_named_target_port": (
        "kubectl create service clusterip named --tcp=80:http",
        ("6b3873000a0d0a02763112075365727669636512720a230a056e616d656412001a0022002a003200380042005a0c0a03"
         "61707012056e616d656412470a1e0a0738302d6874747012035443501850220a080110001a04687474702800120c0a03"
         "61707012056e616d65641a002209436c757374657249503a00420052005a00600068001a020a001a002200"),
        {'kind': 'Service',
         'apiVersion': 'v1',
         'metadata': {'name': 'named', 'creationTimestamp': None, 'labels': {'app': 'named'}},
         'spec': {'ports': [{'name': '80-http', 'protocol': 'TCP', 'port': 80, 'targetPort': 'http'}],
                  'selector': {'app': 'named'},
                  'type': 'ClusterIP'},
         'status': {'loadBalancer': {}}},
    ),
    "create_configmap": (
        "kubectl create configmap x --from-literal=a=b",
        ("6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a017812001a0022002a0032003800420012060a016112"
         "01621a002200"),
        {'kind': 'ConfigMap',
         'apiVersion': 'v1',
         'metadata': {'name': 'x', 'creationTimestamp': None},
         'data': {'a': 'b'}},
    ),
    "create_secret_generic": (
        "kubectl create secret generic s --from-literal=user=admin",
        ("6b3873000a0c0a027631120653656372657412240a110a017312001a0022002a00320038004200120d0a047573657212"
         "0561646d696e1a001a002200"),
        {'kind': 'Secret',
         'apiVersion': 'v1',
         'metadata': {'name': 's', 'creationTimestamp': None},
         'data': {'user': 'YWRtaW4='}},
    ),
    "create_secret_docker_registry": (
        "kubectl create secret docker-registry d --docker-server=r.example --docker-username=u --docker-password=p",
        ("6b3873000a0c0a0276311206536563726574128f010a110a016412001a0022002a00320038004200125a0a112e646f63"
         "6b6572636f6e6669676a736f6e12457b226175746873223a7b22722e6578616d706c65223a7b22757365726e616d6522"
         "3a2275222c2270617373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b756265726e65746573"
         "2e696f2f646f636b6572636f6e6669676a736f6e1a002200"),
        {'kind': 'Secret',
         'apiVersion': 'v1',
         'metadata': {'name': 'd', 'creationTimestamp': None},
         'data': {'.dockerconfigjson': 'eyJhdXRocyI6eyJyLmV4YW1wbGUiOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwIiwiYXV0aCI6ImRUcHcifX19'},
         'type': 'kubernetes.io/dockerconfigjson'},
    ),
    "create_serviceaccount": (
        "kubectl create serviceaccount bot",
        ("6b3873000a140a027631120e536572766963654163636f756e7412150a130a03626f7412001a0022002a003200380042"
         "001a002200"),
        {'kind': 'ServiceAccount',
         'apiVersion': 'v1',
         'metadata': {'name': 'bot', 'creationTimestamp': None}},
    ),
}
