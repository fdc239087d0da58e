"""Strict field checking: unknown-field paths, type errors and fieldValidation, worded as upstream."""
from __future__ import annotations

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver import decoding as s
from svcnet.apiserver import jsonbody, types

PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
NODES = lookup("", "v1", "nodes")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
assert None not in (PODS, SERVICES, DEPLOYMENTS, NODES, LEASES, SLICES)


def deployment(container: dict | None = None, **spec: object) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [container or {"name": "c", "image": "i"}]}},
                 **spec},
    }


def test_valid_deployment_has_no_findings() -> None:
    obj = deployment({"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                      "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                      "resources": {"limits": {"cpu": "100m", "memory": "1Gi"}},
                      "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}},
                     replicas=3, strategy={"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}})
    assert s.findings(DEPLOYMENTS, obj) == []


@pytest.mark.parametrize(("obj", "paths"), [
    ({"kind": "Pod", "bogus": 1}, ["bogus"]),
    ({"spec": {"containers": [{"name": "a"}, {"name": "b", "foo": 1}]}}, ["spec.containers[1].foo"]),
    ({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1, "hostport": 2}]}]}},
     ["spec.containers[0].ports[0].hostport"]),
    ({"metadata": {"Name": "x"}}, ["metadata.Name"]),  # keys are case-sensitive
    ({"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "size": 1}}]}},
     ["spec.volumes[0].emptyDir.size"]),
    ({"spec": {"containers": [{"name": "a", "foo": 1}]}, "zzz": 2},
     ["spec.containers[0].foo", "zzz"]),
])
def test_unknown_field_paths_on_pods(obj: dict, paths: list[str]) -> None:
    assert s.unknown_fields(PODS, obj) == paths


def test_unknown_field_path_through_deployment_template() -> None:
    obj = deployment({"name": "c", "image": "i", "foo": "bar"})
    assert s.unknown_fields(DEPLOYMENTS, obj) == ["spec.template.spec.containers[0].foo"]


def test_free_form_and_map_values_accept_any_keys() -> None:
    obj = {"metadata": {"labels": {"anything": "x"}, "annotations": {"a/b": "c"},
                        "managedFields": [{"fieldsV1": {"f:spec": {"f:whatever": {}}}}]}}
    assert s.unknown_fields(PODS, obj) == []


@pytest.mark.parametrize(("target", "obj", "message"), [
    (SERVICES, {"spec": {"ports": [{"port": "80"}]}},
     "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"),
    (DEPLOYMENTS, deployment({"name": "c", "env": [{"name": "A", "value": 1234}]}),
     "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value"
     " of type string"),
    (PODS, {"spec": {"containers": {"name": "c"}}},
     "json: cannot unmarshal object into Go struct field PodSpec.spec.containers of type []v1.Container"),
    (PODS, {"spec": {"containers": ["c"]}},
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type v1.Container"),
    (PODS, {"spec": "x"}, "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"),
    (PODS, {"metadata": {"labels": {"a": 1}}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    (PODS, {"spec": {"hostNetwork": "true"}},
     "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"),
    (PODS, {"spec": {"containers": [{"name": "c", "command": ["sh", 1]}]}},
     "json: cannot unmarshal number into Go struct field Container.spec.containers.command of type string"),
    (SERVICES, {"spec": {"ports": [{"port": 1.5}]}},
     "json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32"),
    (SERVICES, {"spec": {"ports": [{"port": 2**31}]}},
     "json: cannot unmarshal number 2147483648 into Go struct field ServicePort.spec.ports.port"
     " of type int32"),
    (SERVICES, {"spec": {"type": 1}},
     "json: cannot unmarshal number into Go struct field ServiceSpec.spec.type of type v1.ServiceType"),
    (SERVICES, {"spec": {"ports": [{"port": 80, "targetPort": True}]}},
     "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    (PODS, {"spec": {"nodeSelector": []}},
     "json: cannot unmarshal array into Go struct field PodSpec.spec.nodeSelector of type map[string]string"),
    (PODS, {"spec": {"containers": [{"name": "c", "resources": {"limits": "1"}}]}},
     "json: cannot unmarshal string into Go struct field ResourceRequirements.spec.containers.resources"
     ".limits of type v1.ResourceList"),
    (PODS, {"metadata": {"creationTimestamp": 5}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp"
     " of type string"),
    (PODS, {"kind": 1}, "json: cannot unmarshal number into Go struct field Pod.kind of type string"),
    (NODES, {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": "x"}}}},
     "json: cannot unmarshal string into Go struct field DaemonEndpoint.status.daemonEndpoints"
     ".kubeletEndpoint.Port of type int32"),
    (PODS, [], "json: cannot unmarshal array into Go value of type v1.Pod"),
])
def test_type_errors_are_worded_like_go_json(target, obj, message: str) -> None:
    assert s.type_errors(target, obj) == [message]


def test_null_values_are_accepted_everywhere() -> None:
    obj = deployment({"name": "c", "ports": None, "resources": {"limits": None}, "stdin": None},
                     replicas=None, strategy=None)
    obj["metadata"] = {"creationTimestamp": None, "labels": None}
    assert s.findings(DEPLOYMENTS, obj) == []


@pytest.mark.parametrize(("text", "error"), [
    ("100m", ""), ("1Gi", ""), ("2", ""), ("0", ""), ("1.5", ""), ("1e3", ""), ("-1", ""), ("1E-3", ""),
    (".5", ""), ("", s._QUANTITY_FORMAT_ERROR), ("abc", s._QUANTITY_FORMAT_ERROR),
    ("1 Gi", s._QUANTITY_FORMAT_ERROR), ("1Gb", s._QUANTITY_FORMAT_ERROR),
    ("1MiB", s._QUANTITY_FORMAT_ERROR), ("1iM", s._QUANTITY_SUFFIX_ERROR),
    ("5mm", s._QUANTITY_SUFFIX_ERROR), (".", s._QUANTITY_NUMERIC_ERROR),
])
def test_quantity_parse_errors(text: str, error: str) -> None:
    assert s.quantity_error(text) == error


def test_quantity_error_message_names_the_regular_expression() -> None:
    assert s._QUANTITY_FORMAT_ERROR == (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def test_quantities_accept_json_numbers_and_reject_objects() -> None:
    ok = {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": 0.5, "memory": 1024}}}]}}
    assert s.type_errors(PODS, ok) == []
    bad = {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": {"x": 1}}}}]}}
    assert s.type_errors(PODS, bad) == [s._QUANTITY_FORMAT_ERROR]


RFC = '"2006-01-02T15:04:05Z07:00"'


@pytest.mark.parametrize(("value", "micro", "error"), [
    ("2024-01-02T03:04:05Z", False, ""),
    ("2024-01-02T03:04:05.123456+01:00", False, ""),
    ("2024-02-29T00:00:00Z", False, ""),
    ("2024-1-02T03:04:05Z", False, f'parsing time "2024-1-02T03:04:05Z" as {RFC}: '
                                   'cannot parse "1-02T03:04:05Z" as "01"'),
    ("yesterday", False, f'parsing time "yesterday" as {RFC}: cannot parse "yesterday" as "2006"'),
    ("2024-01-02 03:04:05Z", False, f'parsing time "2024-01-02 03:04:05Z" as {RFC}: '
                                    'cannot parse " 03:04:05Z" as "T"'),
    ("2024-01-02T03:04:05", False, f'parsing time "2024-01-02T03:04:05" as {RFC}: '
                                   'cannot parse "" as "Z07:00"'),
    ("2024-13-02T03:04:05Z", False, 'parsing time "2024-13-02T03:04:05Z": month out of range'),
    ("2023-02-29T03:04:05Z", False, 'parsing time "2023-02-29T03:04:05Z": day out of range'),
    ("2024-01-02T03:04:05Zjunk", False, 'parsing time "2024-01-02T03:04:05Zjunk": extra text: "junk"'),
    ("2024-01-02T03:04:05.000000Z", True, ""),
    ("2024-01-02T03:04:05Z", True, 'parsing time "2024-01-02T03:04:05Z" as '
                                   '"2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"'),
])
def test_time_parse_errors_follow_go(value: str, micro: bool, error: str) -> None:
    assert s.time_parse_error(value, micro=micro) == error


def test_bad_time_string_is_reported_without_field_context() -> None:
    obj = {"spec": {"renewTime": "soon"}}
    assert s.type_errors(LEASES, obj) == [
        'parsing time "soon" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "soon" as "2006"']


def test_decode_error_prefers_errors_from_a_types_own_decoder() -> None:
    """Go stops at an IntOrString/Quantity/Time error even if a plain type error came first."""
    obj = {"spec": {"type": 1, "ports": [{"port": 80, "targetPort": 1.5}]}}
    errors = s.type_errors(SERVICES, obj)
    assert len(errors) == 2
    assert s.decode_error(SERVICES, obj) == errors[1]
    assert "targetPort of type int32" in errors[1]


def test_decode_error_is_first_plain_type_error_otherwise() -> None:
    obj = {"spec": {"type": 1, "clusterIP": 2}}
    assert s.decode_error(SERVICES, obj) == s.type_errors(SERVICES, obj)[0]
    assert s.decode_error(SERVICES, {"spec": {}}) is None


# Document order: the builder puts spec.template before spec.foo.
UNKNOWN = ['unknown field "spec.template.spec.containers[0].bar"', 'unknown field "spec.foo"']
STRICT_MSG = ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
              + ", ".join(UNKNOWN))


@pytest.mark.parametrize(("directive", "error", "warnings"), [
    ("Strict", STRICT_MSG, []),
    ("Warn", None, UNKNOWN),
    ("", None, UNKNOWN),
    ("Ignore", None, []),
])
def test_field_validation_directives(directive: str, error: str | None, warnings: list[str]) -> None:
    obj = deployment({"name": "c", "image": "i", "bar": 1}, foo=2)
    got_error, got_warnings = s.field_validation(DEPLOYMENTS, obj, directive)
    assert got_warnings == warnings
    if error is None:
        assert got_error is None
    else:
        assert got_error is not None
        status = got_error.status()
        assert (status["code"], status["reason"], status["message"]) == (400, "BadRequest", error)


@pytest.mark.parametrize("directive", ["Strict", "Warn", "Ignore"])
def test_type_errors_fail_whatever_the_directive(directive: str) -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": "80"}]}, "junk": 1}
    error, warnings = s.field_validation(SERVICES, obj, directive)
    assert warnings == []
    assert error is not None and error.code == 400
    assert error.message == (
        'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into '
        "Go struct field ServicePort.spec.ports.port of type int32")


def test_clean_body_passes_every_directive() -> None:
    for directive in ("Strict", "Warn", "Ignore", ""):
        assert s.field_validation(DEPLOYMENTS, deployment(), directive) == (None, [])


def test_scale_subresource_bodies_check_against_scale() -> None:
    body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2, "extra": 1}}
    assert s.unknown_fields(DEPLOYMENTS, body, subresource="scale") == ["spec.extra"]
    error, _ = s.field_validation(DEPLOYMENTS, body, "Strict", subresource="scale")
    assert error is not None
    assert error.message.startswith('Scale in version "v1" cannot be handled as a Scale: ')


def test_schema_name_targets_such_as_delete_options() -> None:
    body = {"kind": "DeleteOptions", "propagationPolicy": "Foreground", "gracePeriod": 3}
    assert s.unknown_fields("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", body) == ["gracePeriod"]


def test_load_json_strict_reports_duplicate_paths_and_keeps_the_last() -> None:
    text = ('{"metadata": {"name": "a", "name": "b", "labels": {"x": "1", "x": "2"}},'
            ' "spec": {"containers": [{"name": "c", "image": "i", "image": "j"}]}}')
    obj, duplicates = jsonbody.load_json_strict(text)
    assert duplicates == ["metadata.name", "metadata.labels.x", "spec.containers[0].image"]
    assert obj["metadata"]["name"] == "b" and obj["spec"]["containers"][0]["image"] == "j"


def test_duplicates_join_unknown_fields_in_the_strict_error() -> None:
    obj, duplicates = jsonbody.load_json_strict('{"kind": "Pod", "kind": "Pod", "oops": 1}')
    error, _ = s.field_validation(PODS, obj, "Strict", duplicates)
    assert error is not None
    assert error.message.endswith('strict decoding error: unknown field "oops", duplicate field "kind"')


def test_check_fields_returns_causes_with_strict_paths() -> None:
    causes = s.check_fields(SERVICES, {"spec": {"ports": [{"port": "x", "bad": 1}]}})
    assert [(c.field, c.reason) for c in causes] == [
        ("spec.ports[0].port", "FieldValueTypeInvalid"), ("spec.ports[0].bad", "FieldValueInvalid")]
    assert causes[1].message == 'unknown field "spec.ports[0].bad"'


def test_endpoint_slice_body() -> None:
    body = {"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.10"], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": "p"}, "nodeName": "n1"}],
            "ports": [{"name": "", "port": 9376, "protocol": "TCP"}]}
    assert s.findings(SLICES, body) == []


def test_every_group_version_kind_names_a_struct_of_that_kind() -> None:
    for (_group, _version, kind), name in types.gvk_schema_names().items():
        assert types.struct(name).short_name == kind
