"""Request bodies kubectl 1.32 sent for its RBAC generators and `auth` commands
(application/vnd.kubernetes.protobuf), as hex, with the JSON `kubectl create ... --dry-run=client
-o json` printed for the same generator; the auth commands have no dry run, so their JSON is the
decoded review, checked field by field against authorization/v1's and authentication/v1's
generated.proto.

Captured from the real kubectl against svcnet's app with a recording middleware.
"""
from __future__ import annotations

from typing import Any

KUBECTL_RBAC_BODIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    'create_role_pod_reader': (
        'create role pod-reader --verb=get,list --resource=pods',
        ('6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512310a1a0a0a'
         '706f642d72656164657212001a0022002a0032003800420012130a036765740a046c69737412001a04706f64731a0022'
         '00'),
        {'apiVersion': 'rbac.authorization.k8s.io/v1',
         'kind': 'Role',
         'metadata': {'creationTimestamp': None, 'name': 'pod-reader'},
         'rules': [{'apiGroups': [''], 'resources': ['pods'], 'verbs': ['get', 'list']}]},
    ),
    'create_rolebinding_rb': (
        'create rolebinding rb --role=pod-reader --serviceaccount=default:default',
        ('6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c6542696e64696e'
         '6712690a120a02726212001a0022002a0032003800420012240a0e536572766963654163636f756e7412001a07646566'
         '61756c74220764656661756c741a2d0a19726261632e617574686f72697a6174696f6e2e6b38732e696f1204526f6c65'
         '1a0a706f642d7265616465721a002200'),
        {'apiVersion': 'rbac.authorization.k8s.io/v1',
         'kind': 'RoleBinding',
         'metadata': {'creationTimestamp': None, 'name': 'rb'},
         'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Role', 'name': 'pod-reader'},
         'subjects': [{'kind': 'ServiceAccount', 'name': 'default', 'namespace': 'default'}]},
    ),
    'create_clusterrole_cr': (
        'create clusterrole cr --verb=get --resource=pods --resource-name=web',
        ('6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c'
         '6512280a120a02637212001a0022002a0032003800420012120a0367657412001a04706f647322037765621a002200'),
        {'apiVersion': 'rbac.authorization.k8s.io/v1',
         'kind': 'ClusterRole',
         'metadata': {'creationTimestamp': None, 'name': 'cr'},
         'rules': [{'apiGroups': [''], 'resourceNames': ['web'], 'resources': ['pods'], 'verbs': ['get']}]},
    ),
    'create_clusterrolebinding_crb': (
        'create clusterrolebinding crb --clusterrole=cr --user=bob --group=devs',
        ('6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c7573746572526f6c'
         '6542696e64696e671299010a130a0363726212001a0022002a0032003800420012280a04557365721219726261632e61'
         '7574686f72697a6174696f6e2e6b38732e696f1a03626f622200122a0a0547726f75701219726261632e617574686f72'
         '697a6174696f6e2e6b38732e696f1a046465767322001a2c0a19726261632e617574686f72697a6174696f6e2e6b3873'
         '2e696f120b436c7573746572526f6c651a0263721a002200'),
        {'apiVersion': 'rbac.authorization.k8s.io/v1',
         'kind': 'ClusterRoleBinding',
         'metadata': {'creationTimestamp': None, 'name': 'crb'},
         'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'cr'},
         'subjects': [{'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'User', 'name': 'bob'},
                      {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Group', 'name': 'devs'}]},
    ),
    'auth_can_i_get': (
        'auth can-i get pods/log',
        ('6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a65637441636365'
         '7373526576696577123f0a100a0012001a0022002a0032003800420012210a1f0a0764656661756c7412036765741a00'
         '22002a04706f647332003a036c6f671a08080012001a0020001a002200'),
        {'apiVersion': 'authorization.k8s.io/v1',
         'kind': 'SelfSubjectAccessReview',
         'metadata': {'creationTimestamp': None},
         'spec': {'resourceAttributes': {'name': 'log',
                                         'namespace': 'default',
                                         'resource': 'pods',
                                         'verb': 'get'}}},
    ),
    'auth_whoami': (
        'auth whoami',
        ('6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631121153656c665375626a656374526576'
         '696577121a0a100a0012001a0022002a0032003800420012060a040a0012001a002200'),
        {'apiVersion': 'authentication.k8s.io/v1',
         'kind': 'SelfSubjectReview',
         'metadata': {'creationTimestamp': None}},
    ),
    'auth_can_i___list': (
        'auth can-i --list',
        ('6b3873000a310a17617574686f72697a6174696f6e2e6b38732e696f2f7631121653656c665375626a65637452756c65'
         '7352657669657712230a100a0012001a0022002a0032003800420012090a0764656661756c741a04180022001a002200'),
        {'apiVersion': 'authorization.k8s.io/v1',
         'kind': 'SelfSubjectRulesReview',
         'metadata': {'creationTimestamp': None},
         'spec': {'namespace': 'default'}},
    ),
}
