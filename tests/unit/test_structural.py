"""Custom resource schemas: validation, defaulting, pruning, and CRD validation and strategy."""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import structural
from kybernetes.api.validation import Path
from kybernetes.apiserver.registry.crds import STRATEGIES, crd_strategy

CRON_PATTERN = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"
CRONTAB: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": CRON_PATTERN},
                "image": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            },
        }
    },
}


def ct(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"}, "spec": spec}


def msgs(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


# --- validation ----------------------------------------------------------------------------------


def test_crontab_valid() -> None:
    assert structural.validate_custom_object(ct({"cronSpec": "* * * * */5", "image": "img", "replicas": 3}), CRONTAB) == []


def test_crontab_errors_like_kubernetes() -> None:
    errs = structural.validate_custom_object(ct({"cronSpec": "* * * *", "replicas": 15}), CRONTAB)
    assert msgs(errs) == [
        r'spec.cronSpec: Invalid value: "* * * *": spec.cronSpec in body should match '
        r"'^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'",
        "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10",
    ]
    assert errs[0].cause()["reason"] == "FieldValueInvalid"


def test_type_and_required() -> None:
    errs = structural.validate_custom_object(ct({"replicas": "three"}), CRONTAB)
    assert msgs(errs) == [
        "spec.cronSpec: Required value",
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
    ]
    assert errs[1].type == "FieldValueTypeInvalid"
    low = structural.validate_custom_object(ct({"cronSpec": "* * * * *", "replicas": 0}), CRONTAB)
    assert msgs(low) == ["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]


def test_root_metadata_skipped_and_integral_float() -> None:
    obj = ct({"cronSpec": "* * * * *", "replicas": 2.0})
    obj["metadata"] = {"whatever": 1}
    assert structural.validate_custom_object(obj, CRONTAB) == []


def test_enum_and_nullable() -> None:
    schema = {"type": "object", "properties": {
        "mode": {"type": "string", "enum": ["a", "b"]},
        "opt": {"type": "string", "nullable": True},
        "req": {"type": "string"},
    }}
    errs = structural.validate_custom_object({"mode": "x", "opt": None, "req": None}, schema, Path())
    assert msgs(errs) == [
        'mode: Unsupported value: "x": supported values: "a", "b"',
        'req: Invalid value: "null": req in body must be of type string: "null"',
    ]


def test_string_number_array_object_constraints() -> None:
    schema = {"type": "object", "properties": {
        "s": {"type": "string", "minLength": 2, "maxLength": 3, "format": "date-time"},
        "n": {"type": "number", "maximum": 5, "exclusiveMaximum": True, "minimum": 1, "exclusiveMinimum": True},
        "a": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3, "uniqueItems": True},
        "m": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
        "i32": {"type": "integer", "format": "int32"},
        "b": {"type": "string", "format": "byte"},
    }}
    ok = {"s": "2024-01-02T03:04:05Z", "n": 3, "a": [1, 2], "m": {"k": "v"}, "i32": 5, "b": "aGk="}
    ok["s"] = "2024-01-02T03:04:05Z"
    schema_no_len = copy.deepcopy(schema)
    del schema_no_len["properties"]["s"]["maxLength"]
    assert structural.validate_custom_object(ok, schema_no_len, Path()) == []
    bad = {"s": "x", "n": 5, "a": [1, 1, "z", 4], "m": {"a": "1", "b": 2}, "i32": 2**40, "b": "!!"}
    out = msgs(structural.validate_custom_object(bad, schema, Path()))
    assert 's: Invalid value: "x": s in body should be at least 2 chars long' in out
    assert 's: Invalid value: "x": s in body must be of type date-time: "x"' in out
    assert "n: Invalid value: 5: n in body should be less than 5" in out
    assert "a: Too many: must have at most 3 items" in out
    assert "a[1]: Duplicate value: 1" in out
    assert 'a[2]: Invalid value: "string": a[2] in body must be of type integer: "string"' in out
    assert "m: Too many: must have at most 1 items" in out
    assert 'm.b: Invalid value: "integer": m.b in body must be of type string: "integer"' in out
    assert any(m.startswith("i32: Invalid value: 1099511627776") for m in out)
    assert 'b: Invalid value: "!!": b in body must be of type byte: "!!"' in out
    too_long = msgs(structural.validate_custom_object({"s": "2024-01-02T03:04:05Z"}, schema, Path()))
    assert too_long == ["s: Too long: must have at most 3 bytes"]


def test_nested_arrays_of_objects_and_list_types() -> None:
    schema = {"type": "object", "properties": {"ports": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "port": {"type": "integer", "maximum": 65535},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        }},
    }}}
    obj = {"ports": [
        {"name": "a", "port": 80, "tags": ["x", "x"]},
        {"name": "a", "port": 70000},
        {"port": 1},
    ]}
    out = msgs(structural.validate_custom_object(obj, schema, Path("spec")))
    assert "spec.ports[1]: Duplicate value: {...}" in out
    assert 'spec.ports[0].tags[1]: Duplicate value: "x"' in out
    assert "spec.ports[1].port: Invalid value: 70000: spec.ports[1].port in body should be less than or equal to 65535" in out
    assert "spec.ports[2].name: Required value" in out


def test_int_or_string_and_preserve_unknown() -> None:
    schema = {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "any": {"x-kubernetes-preserve-unknown-fields": True},
    }}
    for port in (8080, "http"):
        obj = {"port": port, "free": {"a": {"b": [1]}}, "any": [1, "x"]}
        assert structural.validate_custom_object(obj, schema, Path()) == []
    out = msgs(structural.validate_custom_object({"port": True}, schema, Path()))
    assert out == ['port: Invalid value: "boolean": port in body must be of type integer,string: "boolean"']


def test_embedded_resource_and_junctors() -> None:
    schema = {"type": "object", "properties": {
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "x-kubernetes-preserve-unknown-fields": True},
        "choice": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        "neg": {"type": "string", "not": {"enum": ["bad"]}},
    }}
    good = {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "choice": {"a": "1"}, "neg": "ok"}
    assert structural.validate_custom_object(good, schema, Path()) == []
    bad = {"template": {"metadata": {"name": "Bad_Name"}}, "choice": {"a": "1", "b": "2"}, "neg": "bad"}
    out = msgs(structural.validate_custom_object(bad, schema, Path()))
    assert "template.apiVersion: Required value: must not be empty" in out
    assert "template.kind: Required value: must not be empty" in out
    assert any(m.startswith('template.metadata.name: Invalid value: "Bad_Name"') for m in out)
    assert "choice: Invalid value: {...}: choice in body must validate one and only one schema (oneOf)" in out
    assert 'neg: Invalid value: "bad": neg in body must not validate the schema (not)' in out


# --- defaulting ----------------------------------------------------------------------------------


def test_defaults_applied() -> None:
    schema = {"type": "object", "properties": {"spec": {
        "type": "object",
        "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "image": {"type": "string", "default": "nginx"},
            "opt": {"type": "string", "nullable": True, "default": "d"},
            "gone": {"type": "string"},
            "containers": {"type": "array", "items": {"type": "object", "properties": {
                "pull": {"type": "string", "default": "IfNotPresent"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
            }}},
            "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "weight": {"type": "integer", "default": 5}}}},
        },
    }}}
    empty: dict[str, Any] = {"metadata": {"name": "x"}}
    structural.default_custom_object(empty, schema)
    assert empty["spec"] == {"replicas": 1, "image": "nginx", "opt": "d"}

    obj: dict[str, Any] = {"spec": {
        "replicas": 3, "image": None, "opt": None, "gone": None,
        "containers": [{"ports": [{}, {"protocol": "UDP"}]}, {"pull": "Always"}],
        "labels": {"a": {}},
    }}
    structural.default_custom_object(obj, schema)
    spec = obj["spec"]
    assert spec["replicas"] == 3
    assert spec["image"] == "nginx"  # null but not nullable: defaulted
    assert spec["opt"] is None  # nullable null is kept
    assert "gone" not in spec  # non-nullable null without default is dropped
    assert spec["containers"] == [
        {"pull": "IfNotPresent", "ports": [{"protocol": "TCP"}, {"protocol": "UDP"}]},
        {"pull": "Always"},
    ]
    assert spec["labels"] == {"a": {"weight": 5}}
    # Defaults are copies, not shared with the schema.
    spec["containers"][0]["ports"][0]["protocol"] = "SCTP"
    assert schema["properties"]["spec"]["properties"]["containers"]["items"]["properties"]["ports"]["items"][
        "properties"]["protocol"]["default"] == "TCP"


# --- pruning -------------------------------------------------------------------------------------


def test_prune_unknown_fields() -> None:
    obj = ct({"cronSpec": "* * * * *", "foo": 1, "bar": {"x": 1}})
    obj["status"] = {"a": 1}
    obj["extra"] = True
    pruned = structural.prune_custom_object(obj, CRONTAB)
    assert sorted(pruned) == ["extra", "spec.bar", "spec.foo", "status"]
    assert obj == ct({"cronSpec": "* * * * *"})


def test_prune_preserve_and_nested() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "integer"}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"spec": {"type": "object"}}},
    }}}}
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "anything": 1}, "spec": {
        "free": {"whatever": {"deep": 1}, "known": {"a": "1", "b": 2}},
        "items": [{"name": "a", "junk": 1}, {"name": "b"}],
        "map": {"k": {"v": 1, "w": 2}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "zzz": 1},
    }}
    pruned = structural.prune_custom_object(obj, schema)
    assert sorted(pruned) == ["spec.free.known.b", "spec.items[0].junk", "spec.map.k.w", "spec.template.zzz"]
    assert obj["spec"]["free"] == {"whatever": {"deep": 1}, "known": {"a": "1"}}
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert obj["metadata"] == {"name": "n", "anything": 1}


def test_prune_root_preserve() -> None:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {}, "spec": {"a": 1}}
    assert structural.prune_custom_object(obj, schema) == []
    assert obj["spec"] == {"a": 1}


# --- CustomResourceDefinition ----------------------------------------------------------------------


def crd(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": copy.deepcopy(CRONTAB)}}],
        },
    }
    out["spec"].update(over)
    return out


def test_crd_valid_and_defaults() -> None:
    c = crd()
    structural.default_crd(c)
    assert c["spec"]["names"]["singular"] == "crontab"
    assert c["spec"]["names"]["listKind"] == "CronTabList"
    assert c["spec"]["conversion"] == {"strategy": "None"}
    assert structural.validate_crd(c) == []


def test_crd_name_mismatch() -> None:
    c = crd()
    c["metadata"]["name"] = "crontab.stable.example.com"
    structural.default_crd(c)
    assert msgs(structural.validate_crd(c)) == [
        'metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group'
    ]


def test_crd_two_storage_versions_and_duplicates() -> None:
    v1 = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
    c = crd(versions=[v1, dict(v1), {**v1, "name": "V2"}])
    structural.default_crd(c)
    out = msgs(structural.validate_crd(c))
    assert "spec.versions: Invalid value: [...]: must contain unique version names" in out
    assert "spec.versions: Invalid value: [...]: must have exactly one version marked as storage version" in out
    assert any(m.startswith('spec.versions[2].name: Invalid value: "V2": a DNS-1035 label') for m in out)
    none_served = crd(versions=[{**v1, "served": False}])
    structural.default_crd(none_served)
    assert msgs(structural.validate_crd(none_served)) == [
        "spec.versions: Invalid value: [...]: must have at least one version marked as served"]


def test_crd_group_scope_names() -> None:
    c = crd(group="example", scope="Global", names={"plural": "CronTabs", "kind": "Cron_Tab"})
    c["metadata"]["name"] = "CronTabs.example"
    structural.default_crd(c)
    out = msgs(structural.validate_crd(c))
    assert 'spec.group: Invalid value: "example": should be a domain with at least one dot' in out
    assert 'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"' in out
    assert any(m.startswith('spec.names.plural: Invalid value: "CronTabs"') for m in out)
    assert any(m.startswith('spec.names.kind: Invalid value: "Cron_Tab": may have mixed case') for m in out)


def test_crd_non_structural_schema() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"properties": {"a": {"type": "string"}}},
        "list": {"type": "array"},
        "either": {"type": "object", "anyOf": [{"type": "string"}]},
        "both": {"type": "object", "properties": {"x": {"type": "string"}},
                 "additionalProperties": {"type": "string"}},
    }}
    c = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}])
    structural.default_crd(c)
    out = msgs(structural.validate_crd(c))
    base = "spec.versions[0].schema.openAPIV3Schema"
    assert f"{base}.properties[spec].type: Required value: must not be empty for specified object fields" in out
    assert f"{base}.properties[list].items: Required value: must be specified" in out
    assert f"{base}.properties[either].anyOf[0].type: Forbidden: must be empty to be structural" in out
    assert (f"{base}.properties[both].additionalProperties: Forbidden: additionalProperties and properties "
            "are mutual exclusive") in out
    root = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "string"}}}])
    structural.default_crd(root)
    assert msgs(structural.validate_crd(root)) == [f'{base}.type: Invalid value: "string": must be object at the root']
    missing = crd(versions=[{"name": "v1", "served": True, "storage": True}])
    structural.default_crd(missing)
    assert msgs(structural.validate_crd(missing)) == [f"{base}: Required value: schemas are required"]
    # int-or-string and preserve-unknown-fields nodes need no type.
    ok = {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"x-kubernetes-preserve-unknown-fields": True},
    }}
    good = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": ok}}])
    structural.default_crd(good)
    assert structural.validate_crd(good) == []


def test_crd_subresources_and_columns() -> None:
    ver = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}},
           "subresources": {"status": {}, "scale": {"specReplicasPath": ".status.replicas",
                                                   "statusReplicasPath": ".status.replicas"}},
           "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                                        {"type": "text"}]}
    c = crd(versions=[ver])
    structural.default_crd(c)
    out = msgs(structural.validate_crd(c))
    p = "spec.versions[0]"
    assert f'{p}.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec' in out
    assert f"{p}.additionalPrinterColumns[1].name: Required value" in out
    assert f'{p}.additionalPrinterColumns[1].type: Unsupported value: "text": supported values: "boolean", "date", "integer", "number", "string"' in out
    assert f"{p}.additionalPrinterColumns[1].jsonPath: Required value" in out
    assert len(out) == 4


def test_crd_strategy_sets_status_and_guards_updates() -> None:
    assert STRATEGIES[("apiextensions.k8s.io", "CustomResourceDefinition")] is crd_strategy
    assert crd_strategy.has_status
    c = crd()
    c["status"] = {"bogus": True}
    crd_strategy.prepare_for_create(c)
    crd_strategy.default(c)
    assert crd_strategy.validate(c) == []
    status = c["status"]
    assert "bogus" not in status
    assert status["acceptedNames"]["listKind"] == "CronTabList"
    assert status["storedVersions"] == ["v1"]
    conds = {x["type"]: x for x in status["conditions"]}
    assert conds["Established"]["status"] == "True" and conds["NamesAccepted"]["status"] == "True"

    new = copy.deepcopy(c)
    new["status"] = {}
    v2 = {"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
    new["spec"]["versions"][0]["storage"] = False
    new["spec"]["versions"].append(v2)
    new["spec"]["names"]["shortNames"] = ["ct", "cts"]
    crd_strategy.prepare_for_update(new, c)
    assert new["status"]["storedVersions"] == ["v1", "v2"]
    assert new["status"]["acceptedNames"]["shortNames"] == ["ct", "cts"]
    assert new["status"]["conditions"][1]["lastTransitionTime"] == conds["Established"]["lastTransitionTime"]
    assert crd_strategy.validate_update(new, c) == []

    moved = copy.deepcopy(new)
    moved["spec"]["scope"] = "Cluster"
    moved["spec"]["group"] = "other.example.com"
    moved["metadata"]["name"] = "crontabs.other.example.com"
    out = msgs(crd_strategy.validate_update(moved, c))
    assert 'spec.group: Invalid value: "other.example.com": field is immutable' in out
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in out
