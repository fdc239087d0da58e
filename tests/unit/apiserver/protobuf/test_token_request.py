"""The protobuf TokenRequest bodies kubectl 1.32 sent for `kubectl create token` (captured with a
recording middleware in front of svcnet's app) decode to the spec it asked for; the status it
sends (empty) is the server's to write and is not read."""
from __future__ import annotations

from svcnet.apiserver import protobuf

ENVELOPE = ("6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e52657175657374")
# kubectl create token bot
PLAIN = ENVELOPE + "121a0a100a0012001a0022002a0032003800420012001a040a0012001a002200"
# kubectl create token bot --audience=vault --audience=x --duration=10m --bound-object-kind=Pod
#   --bound-object-name=web
BOUND = (ENVELOPE + "12390a100a0012001a0022002a00320038004200121f0a057661756c740a01781a100a03506f6412027631"
         "1a03776562220020d8041a040a0012001a002200")


def test_a_plain_create_token_asks_for_the_defaults():
    assert protobuf.decode_object(bytes.fromhex(PLAIN)) == {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
        "spec": {}}


def test_audiences_duration_and_the_bound_pod_are_read():
    assert protobuf.decode_object(bytes.fromhex(BOUND))["spec"] == {
        "audiences": ["vault", "x"], "expirationSeconds": 600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}
