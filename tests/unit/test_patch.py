"""Tests for kybernetes.api.patch: RFC 6902, RFC 7386 and Kubernetes strategic merge patch.

Strategic merge patch cases run against Kubernetes 1.32's real schemas (Pod, Deployment), and
include the exact patch shapes kubectl sends for ``apply``, ``edit`` and ``label``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api import schema
from kybernetes.api.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    create_two_way_merge_patch,
    strategic_merge_patch_for_kind,
)

POD = schema.for_kind("", "v1", "Pod")
DEPLOYMENT = schema.for_kind("apps", "v1", "Deployment")


# =========================================================================================
# RFC 6902 (examples of the RFC's appendix A, plus failures)
# =========================================================================================


class TestJsonPatchRfcAppendix:
    def test_a1_add_object_member(self) -> None:
        assert apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {
            "foo": "bar",
            "baz": "qux",
        }

    def test_a2_add_array_element(self) -> None:
        doc = {"foo": ["bar", "baz"]}
        out = apply_json_patch(doc, [{"op": "add", "path": "/foo/1", "value": "qux"}])
        assert out == {"foo": ["bar", "qux", "baz"]}

    def test_a3_remove_object_member(self) -> None:
        out = apply_json_patch({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}])
        assert out == {"foo": "bar"}

    def test_a4_remove_array_element(self) -> None:
        out = apply_json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}])
        assert out == {"foo": ["bar", "baz"]}

    def test_a5_replace(self) -> None:
        out = apply_json_patch({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}])
        assert out == {"baz": "boo", "foo": "bar"}

    def test_a6_move_value(self) -> None:
        doc = {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}
        out = apply_json_patch(doc, [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}])
        assert out == {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}

    def test_a7_move_array_element(self) -> None:
        out = apply_json_patch(
            {"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]
        )
        assert out == {"foo": ["all", "cows", "eat", "grass"]}

    def test_a8_test_success(self) -> None:
        doc = {"baz": "qux", "foo": ["a", 2, "c"]}
        ops = [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]
        assert apply_json_patch(doc, ops) == doc

    def test_a9_test_error(self) -> None:
        with pytest.raises(errors.StatusError) as exc:
            apply_json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
        assert exc.value.code == 422
        assert exc.value.reason == "Invalid"

    def test_a10_add_nested_member_object(self) -> None:
        out = apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}])
        assert out == {"foo": "bar", "child": {"grandchild": {}}}

    def test_a11_ignore_unrecognized_members(self) -> None:
        out = apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}])
        assert out == {"foo": "bar", "baz": "qux"}

    def test_a12_add_to_nonexistent_target(self) -> None:
        with pytest.raises(errors.StatusError) as exc:
            apply_json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])
        assert exc.value.code == 422

    def test_a14_escape_ordering(self) -> None:
        doc = {"/": 9, "~1": 10}
        assert apply_json_patch(doc, [{"op": "test", "path": "/~01", "value": 10}]) == doc

    def test_a15_compare_string_and_number(self) -> None:
        with pytest.raises(errors.StatusError) as exc:
            apply_json_patch({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}])
        assert exc.value.code == 422

    def test_a16_add_array_value(self) -> None:
        out = apply_json_patch({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}])
        assert out == {"foo": ["bar", ["abc", "def"]]}


class TestJsonPatch:
    def test_escape_slash_and_tilde_in_keys(self) -> None:
        doc = {"metadata": {"annotations": {"example.com/a~b": "1"}}}
        ops = [
            {"op": "replace", "path": "/metadata/annotations/example.com~1a~0b", "value": "2"},
            {"op": "add", "path": "/metadata/annotations/x~1y", "value": "3"},
        ]
        out = apply_json_patch(doc, ops)
        assert out["metadata"]["annotations"] == {"example.com/a~b": "2", "x/y": "3"}

    def test_copy(self) -> None:
        doc = {"a": {"b": [1, 2]}}
        out = apply_json_patch(doc, [{"op": "copy", "from": "/a", "path": "/c"}])
        assert out == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}}
        # The copy is independent of its source.
        assert out["c"] is not out["a"] and out["c"]["b"] is not out["a"]["b"]

    def test_input_not_mutated(self) -> None:
        doc = {"spec": {"containers": [{"name": "a", "image": "x"}]}, "other": {"big": list(range(10))}}
        before = copy.deepcopy(doc)
        out = apply_json_patch(doc, [{"op": "replace", "path": "/spec/containers/0/image", "value": "y"}])
        assert doc == before
        assert out["spec"]["containers"][0]["image"] == "y"
        # Untouched subtrees are shared, not copied.
        assert out["other"] is doc["other"]

    def test_patch_values_not_aliased(self) -> None:
        value = {"k": [1]}
        out = apply_json_patch({}, [{"op": "add", "path": "/v", "value": value}])
        out["v"]["k"].append(2)
        assert value == {"k": [1]}

    def test_whole_document(self) -> None:
        assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}
        assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": [1]}]) == [1]

    def test_add_replaces_existing_member(self) -> None:
        assert apply_json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": 2}]) == {"a": 2}

    def test_add_at_end_index(self) -> None:
        assert apply_json_patch([1, 2], [{"op": "add", "path": "/2", "value": 3}]) == [1, 2, 3]

    def test_move_to_same_path_is_noop(self) -> None:
        assert apply_json_patch({"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": 1}

    def test_test_distinguishes_bool_and_number(self) -> None:
        with pytest.raises(errors.StatusError):
            apply_json_patch({"a": True}, [{"op": "test", "path": "/a", "value": 1}])
        assert apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}

    def test_test_then_replace_is_atomic_guard(self) -> None:
        # The optimistic-concurrency idiom: test resourceVersion, then change.
        doc: dict[str, Any] = {"metadata": {"resourceVersion": "5"}, "spec": {"replicas": 1}}
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "4"},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
        ]
        with pytest.raises(errors.StatusError) as exc:
            apply_json_patch(doc, ops)
        assert exc.value.code == 422
        assert doc["spec"]["replicas"] == 1

    @pytest.mark.parametrize(
        "ops",
        [
            [{"op": "remove", "path": "/missing"}],
            [{"op": "replace", "path": "/missing", "value": 1}],
            [{"op": "remove", "path": "/list/5"}],
            [{"op": "add", "path": "/list/5", "value": 1}],
            [{"op": "remove", "path": "/list/-"}],
            [{"op": "replace", "path": "/list/x", "value": 1}],
            [{"op": "add", "path": "/list/01", "value": 1}],
            [{"op": "add", "path": "/scalar/x", "value": 1}],
            [{"op": "move", "from": "/obj", "path": "/obj/inner"}],
            [{"op": "copy", "from": "/missing", "path": "/x"}],
            [{"op": "remove", "path": ""}],
        ],
    )
    def test_failed_application_is_422(self, ops: list[dict[str, Any]]) -> None:
        doc = {"list": [1, 2], "scalar": "s", "obj": {"a": 1}}
        with pytest.raises(errors.StatusError) as exc:
            apply_json_patch(doc, ops)
        assert exc.value.code == 422
        assert not isinstance(exc.value, errors.BadRequest)

    @pytest.mark.parametrize(
        "ops",
        [
            {"op": "add", "path": "/a", "value": 1},
            "nope",
            [1],
            [{"path": "/a", "value": 1}],
            [{"op": "frobnicate", "path": "/a"}],
            [{"op": "add", "value": 1}],
            [{"op": "add", "path": "/a"}],
            [{"op": "replace", "path": "/a"}],
            [{"op": "test", "path": "/a"}],
            [{"op": "move", "path": "/a"}],
            [{"op": "add", "path": "a", "value": 1}],
            [{"op": "add", "path": "/a~2", "value": 1}],
            [{"op": "add", "path": "/a~", "value": 1}],
            [{"op": "add", "path": 5, "value": 1}],
            [{"op": "copy", "from": "x", "path": "/a"}],
        ],
    )
    def test_malformed_patch_is_400(self, ops: Any) -> None:
        with pytest.raises(errors.BadRequest):
            apply_json_patch({"a": 0}, ops)

    def test_malformed_op_later_in_patch_rejected_before_applying(self) -> None:
        ops = [{"op": "remove", "path": "/missing"}, {"op": "bogus", "path": "/a"}]
        with pytest.raises(errors.BadRequest):
            apply_json_patch({"a": 1}, ops)

    def test_add_null_value_is_allowed(self) -> None:
        assert apply_json_patch({}, [{"op": "add", "path": "/a", "value": None}]) == {"a": None}


# =========================================================================================
# RFC 7386 (the RFC's appendix A table)
# =========================================================================================

RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


class TestMergePatch:
    @pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
    def test_rfc_examples(self, target: Any, patch: Any, expected: Any) -> None:
        before = copy.deepcopy(target)
        assert apply_merge_patch(target, patch) == expected
        assert target == before

    def test_rfc_section3_example(self) -> None:
        target = {
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged",
        }
        patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]}
        assert apply_merge_patch(target, patch) == {
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890",
        }

    def test_kubectl_label_merge_patch(self) -> None:
        # `kubectl label pod x a=b` sends this as application/merge-patch+json.
        pod = _pod()
        out = apply_merge_patch(pod, {"metadata": {"labels": {"a": "b"}}})
        assert out["metadata"]["labels"] == {"app": "web", "a": "b"}
        assert out["spec"] is pod["spec"]
        # `kubectl label pod x app-`
        out = apply_merge_patch(out, {"metadata": {"labels": {"app": None}}})
        assert out["metadata"]["labels"] == {"a": "b"}


# =========================================================================================
# Strategic merge patch on real schemas
# =========================================================================================


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "x",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"note": "hi"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "args": ["--a", "--b"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                },
                {"name": "sidecar", "image": "busybox", "command": ["sleep", "3600"]},
            ],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "conf"}},
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        },
    }


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "log", "image": "fluentbit:2"},
                    ]
                },
            },
        },
    }


def _smp_pod(patch: dict[str, Any], pod: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = pod if pod is not None else _pod()
    before = copy.deepcopy(pod)
    patch_before = copy.deepcopy(patch)
    out = apply_strategic_merge_patch(pod, patch, POD)
    assert pod == before, "the document must not be mutated"
    assert patch == patch_before, "the patch must not be mutated"
    return out


def _names(items: list[dict[str, Any]]) -> list[Any]:
    return [i["name"] for i in items]


class TestStrategicContainers:
    def test_update_image_of_one_container(self) -> None:
        out = _smp_pod({"spec": {"containers": [{"name": "sidecar", "image": "busybox:2"}]}})
        cs = out["spec"]["containers"]
        assert _names(cs) == ["web", "sidecar"]
        assert cs[1] == {"name": "sidecar", "image": "busybox:2", "command": ["sleep", "3600"]}
        assert cs[0] == _pod()["spec"]["containers"][0]

    def test_add_container_without_order_directive_goes_first(self) -> None:
        # Kubernetes places items the patch names before server-only items that it cannot
        # order against: a new item without $setElementOrder lands in front.
        out = _smp_pod({"spec": {"containers": [{"name": "new", "image": "alpine"}]}})
        assert _names(out["spec"]["containers"]) == ["new", "web", "sidecar"]

    def test_add_container_with_set_element_order_appends(self) -> None:
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "new"}],
                "containers": [{"name": "new", "image": "alpine"}],
            }
        }
        out = _smp_pod(patch)
        assert _names(out["spec"]["containers"]) == ["web", "sidecar", "new"]
        assert out["spec"]["containers"][2] == {"name": "new", "image": "alpine"}

    def test_delete_container(self) -> None:
        out = _smp_pod({"spec": {"containers": [{"$patch": "delete", "name": "web"}]}})
        assert _names(out["spec"]["containers"]) == ["sidecar"]

    def test_delete_missing_container_is_noop(self) -> None:
        out = _smp_pod({"spec": {"containers": [{"$patch": "delete", "name": "nope"}]}})
        assert _names(out["spec"]["containers"]) == ["web", "sidecar"]

    def test_delete_without_merge_key_rejected(self) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod({"spec": {"containers": [{"$patch": "delete"}]}})

    def test_item_without_merge_key_rejected(self) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod({"spec": {"containers": [{"image": "x"}]}})

    def test_set_element_order_reorders(self) -> None:
        patch = {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}}
        out = _smp_pod(patch)
        assert _names(out["spec"]["containers"]) == ["sidecar", "web"]

    def test_set_element_order_with_change_and_reorder(self) -> None:
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "nginx:1.27"}],
            }
        }
        out = _smp_pod(patch)
        assert _names(out["spec"]["containers"]) == ["sidecar", "web"]
        assert out["spec"]["containers"][1]["image"] == "nginx:1.27"
        assert out["spec"]["containers"][1]["args"] == ["--a", "--b"]

    def test_set_element_order_with_delete(self) -> None:
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}],
                "containers": [{"$patch": "delete", "name": "web"}],
            }
        }
        out = _smp_pod(patch)
        assert _names(out["spec"]["containers"]) == ["sidecar"]

    def test_set_element_order_mismatch_rejected(self) -> None:
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "a"}, {"name": "web", "image": "b"}],
            }
        }
        with pytest.raises(errors.BadRequest, match="doesn't match"):
            _smp_pod(patch)

    def test_set_element_order_must_be_list(self) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod({"spec": {"$setElementOrder/containers": {"name": "web"}}})

    def test_patch_item_order_kept_against_server_only_items(self) -> None:
        # An existing item named by the patch keeps its slot relative to server-only items.
        pod = _pod()
        pod["spec"]["containers"].append({"name": "third", "image": "t"})
        out = _smp_pod({"spec": {"containers": [{"name": "sidecar", "image": "s2"}]}}, pod)
        assert _names(out["spec"]["containers"]) == ["web", "sidecar", "third"]

    def test_replace_whole_list(self) -> None:
        patch = {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}
        out = _smp_pod(patch)
        assert out["spec"]["containers"] == [{"name": "only", "image": "x"}]

    def test_unknown_list_directive_rejected(self) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod({"spec": {"containers": [{"$patch": "frob", "name": "web"}]}})


class TestStrategicNestedLists:
    def test_env_merged_by_name(self) -> None:
        patch = {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "22"}]}]}}
        out = _smp_pod(patch)
        assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "22"}]

    def test_env_delete_and_null_field(self) -> None:
        patch = {
            "spec": {
                "containers": [
                    {"name": "web", "env": [{"name": "A", "$patch": "delete"}, {"name": "B", "value": None}]}
                ]
            }
        }
        out = _smp_pod(patch)
        assert out["spec"]["containers"][0]["env"] == [{"name": "B"}]

    def test_ports_merged_by_container_port(self) -> None:
        patch = {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443, "name": "https"}]}]}}
        out = _smp_pod(patch)
        assert out["spec"]["containers"][0]["ports"] == [
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 443, "protocol": "TCP", "name": "https"},
        ]

    def test_ports_match_float_and_int(self) -> None:
        # JSON numbers: 443.0 is 443.
        patch = {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443.0, "name": "https"}]}]}}
        out = _smp_pod(patch)
        assert len(out["spec"]["containers"][0]["ports"]) == 2

    def test_args_list_is_replaced(self) -> None:
        out = _smp_pod({"spec": {"containers": [{"name": "web", "args": ["--c"]}]}})
        assert out["spec"]["containers"][0]["args"] == ["--c"]

    def test_tolerations_atomic_list_replaced(self) -> None:
        out = _smp_pod({"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}})
        assert out["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]

    def test_volume_switch_with_retain_keys(self) -> None:
        # What kubectl apply sends when a volume changes from emptyDir to configMap.
        patch = {
            "spec": {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "conf"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "data-cm"}, "name": "data"}],
            }
        }
        out = _smp_pod(patch)
        assert out["spec"]["volumes"] == [
            {"name": "data", "configMap": {"name": "data-cm"}},
            {"name": "conf", "configMap": {"name": "conf"}},
        ]

    def test_volume_switch_without_retain_keys_keeps_both(self) -> None:
        patch = {"spec": {"volumes": [{"configMap": {"name": "data-cm"}, "name": "data"}]}}
        out = _smp_pod(patch)
        assert out["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}, "configMap": {"name": "data-cm"}}

    def test_retain_keys_contradicted_by_patch_is_422(self) -> None:
        patch = {"spec": {"volumes": [{"$retainKeys": ["name"], "configMap": {"name": "c"}, "name": "data"}]}}
        with pytest.raises(errors.StatusError) as exc:
            _smp_pod(patch)
        assert exc.value.code == 422

    def test_retain_keys_must_be_list(self) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod({"spec": {"volumes": [{"$retainKeys": "name", "name": "data"}]}})


class TestStrategicMetadata:
    def test_labels_add_and_delete(self) -> None:
        out = _smp_pod({"metadata": {"labels": {"tier": "fe", "app": None}, "annotations": {"x": "y"}}})
        assert out["metadata"]["labels"] == {"tier": "fe"}
        assert out["metadata"]["annotations"] == {"note": "hi", "x": "y"}

    def test_kubectl_label_patch_shares_untouched_subtrees(self) -> None:
        # `kubectl label pod x a=b` body; SMP and merge patch agree on it.
        pod = _pod()
        patch = {"metadata": {"labels": {"a": "b"}}}
        out = _smp_pod(patch, pod)
        assert out["metadata"]["labels"] == {"app": "web", "a": "b"}
        assert out == apply_merge_patch(pod, patch)
        assert out["spec"] is pod["spec"]
        assert out["metadata"]["annotations"] is pod["metadata"]["annotations"]

    def test_null_for_missing_key_is_ignored(self) -> None:
        out = _smp_pod({"metadata": {"labels": {"absent": None}, "ownerReferences": None}})
        assert out["metadata"]["labels"] == {"app": "web"}
        assert "ownerReferences" not in out["metadata"]

    def test_finalizers_union(self) -> None:
        out = _smp_pod({"metadata": {"finalizers": ["example.com/b", "example.com/c"]}})
        fs = out["metadata"]["finalizers"]
        assert sorted(fs) == ["example.com/a", "example.com/b", "example.com/c"]
        assert len(fs) == 3

    def test_finalizers_with_order_directive(self) -> None:
        patch = {
            "metadata": {
                "$setElementOrder/finalizers": ["example.com/a", "example.com/b", "example.com/c"],
                "finalizers": ["example.com/c"],
            }
        }
        out = _smp_pod(patch)
        assert out["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]

    def test_delete_from_primitive_list(self) -> None:
        out = _smp_pod({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}})
        assert out["metadata"]["finalizers"] == ["example.com/b"]

    def test_delete_from_primitive_list_with_order_and_add(self) -> None:
        patch = {
            "metadata": {
                "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                "finalizers": ["example.com/c"],
            }
        }
        out = _smp_pod(patch)
        assert out["metadata"]["finalizers"] == ["example.com/b", "example.com/c"]

    def test_delete_from_absent_primitive_list_is_noop(self) -> None:
        pod = _pod()
        del pod["metadata"]["finalizers"]
        out = _smp_pod({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, pod)
        assert "finalizers" not in out["metadata"]

    def test_replace_map_directive(self) -> None:
        out = _smp_pod({"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
        assert out["metadata"]["labels"] == {"only": "this"}

    def test_delete_map_directive(self) -> None:
        out = _smp_pod({"metadata": {"annotations": {"$patch": "delete"}}})
        assert "annotations" not in out["metadata"]
        assert out["metadata"]["labels"] == {"app": "web"}

    def test_whole_document_replace_and_delete(self) -> None:
        assert _smp_pod({"$patch": "replace", "kind": "Pod"}) == {"kind": "Pod"}
        assert _smp_pod({"$patch": "delete"}) == {}

    @pytest.mark.parametrize(
        "patch",
        [
            {"metadata": {"$frob": 1}},
            {"spec": {"containers": [{"name": "web", "$unknown": True}]}},
            {"metadata": {"labels": {"$patch": "merge"}}},
        ],
    )
    def test_unknown_directive_rejected(self, patch: dict[str, Any]) -> None:
        with pytest.raises(errors.BadRequest):
            _smp_pod(patch)

    def test_type_change_replaces(self) -> None:
        out = _smp_pod({"metadata": {"labels": ["weird"]}})
        assert out["metadata"]["labels"] == ["weird"]

    def test_new_subtree_is_cleaned_of_nulls_and_directives(self) -> None:
        pod = _pod()
        del pod["spec"]["containers"][0]["env"]
        patch = {
            "spec": {
                "securityContext": {"runAsUser": 1000, "fsGroup": None},
                "containers": [{"name": "web", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}],
            }
        }
        out = _smp_pod(patch, pod)
        assert out["spec"]["securityContext"] == {"runAsUser": 1000}
        assert out["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]


class TestStrategicDeployment:
    def test_kubectl_apply_changed_image(self) -> None:
        # Byte-for-byte the body kubectl 1.32 `apply` sends after an image change.
        last_applied = json.dumps(_deployment(), separators=(",", ":")) + "\n"
        patch = json.loads(
            '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":'
            + json.dumps(last_applied)
            + '}},"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"},{"name":"log"}],'
            '"containers":[{"image":"nginx:1.27","name":"web"}]}}}}'
        )
        dep = _deployment()
        before = copy.deepcopy(dep)
        out = strategic_merge_patch_for_kind(dep, patch, "apps", "v1", "Deployment")
        assert dep == before
        cs = out["spec"]["template"]["spec"]["containers"]
        assert _names(cs) == ["web", "log"]
        assert cs[0] == {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
        assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == last_applied
        assert out["spec"]["selector"] is dep["spec"]["selector"]

    def test_kubectl_edit_remove_and_reorder(self) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "log"}],
                        "containers": [{"$patch": "delete", "name": "web"}],
                    }
                }
            }
        }
        out = apply_strategic_merge_patch(_deployment(), patch, DEPLOYMENT)
        assert _names(out["spec"]["template"]["spec"]["containers"]) == ["log"]

    def test_strategy_switch_to_recreate_with_retain_keys(self) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
        out = apply_strategic_merge_patch(_deployment(), patch, DEPLOYMENT)
        assert out["spec"]["strategy"] == {"type": "Recreate"}

    def test_strategy_retain_keys_drops_even_without_null(self) -> None:
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
        out = apply_strategic_merge_patch(_deployment(), patch, DEPLOYMENT)
        assert out["spec"]["strategy"] == {"type": "Recreate"}

    def test_replicas_scalar(self) -> None:
        out = apply_strategic_merge_patch(_deployment(), {"spec": {"replicas": 5}}, DEPLOYMENT)
        assert out["spec"]["replicas"] == 5


class TestStrategicWithoutSchema:
    def test_lists_replaced_maps_merged(self) -> None:
        doc = {"a": {"b": 1, "c": 2}, "l": [{"name": "x"}, {"name": "y"}]}
        out = apply_strategic_merge_patch(doc, {"a": {"c": None, "d": 3}, "l": [{"name": "z"}]}, None)
        assert out == {"a": {"b": 1, "d": 3}, "l": [{"name": "z"}]}

    def test_unknown_field_in_known_kind_falls_back(self) -> None:
        pod = _pod()
        pod["spec"]["madeUp"] = [{"name": "a", "v": 1}]
        out = _smp_pod({"spec": {"madeUp": [{"name": "a", "v": 2}]}}, pod)
        assert out["spec"]["madeUp"] == [{"name": "a", "v": 2}]

    def test_patch_must_be_object(self) -> None:
        with pytest.raises(errors.BadRequest):
            apply_strategic_merge_patch({}, [], POD)  # type: ignore[arg-type]


# Vectors in the style of apimachinery's strategicpatch tests, run under the Pod schema.
class TestStrategicOrdering:
    def _run(self, live: list[str], patch: dict[str, Any]) -> list[Any]:
        pod = _pod()
        pod["spec"]["containers"] = [{"name": n} for n in live]
        out = _smp_pod({"spec": patch}, pod)
        return _names(out["spec"]["containers"])

    def test_patch_order_wins_for_named_items(self) -> None:
        patch = {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "image": "b"}]}
        assert self._run(["1", "2", "3"], patch) == ["3", "1", "2"]

    def test_server_only_items_interleave(self) -> None:
        patch = {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}
        assert self._run(["1", "2", "3"], patch) == ["2", "3", "1"]

    def test_set_element_order_naming_absent_items(self) -> None:
        patch = {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
        }
        assert self._run(["1", "3"], patch) == ["3", "1"]

    def test_set_element_order_keeps_unlisted_server_items(self) -> None:
        patch = {
            "$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "4", "image": "d"}, {"name": "3", "image": "c"}],
        }
        assert self._run(["1", "2"], patch) == ["4", "1", "2", "3"]


# =========================================================================================
# Two-way patch creation round trips
# =========================================================================================


class TestTwoWay:
    def test_image_change_has_kubectl_shape(self) -> None:
        dep = _deployment()
        mod = copy.deepcopy(dep)
        mod["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
        patch = create_two_way_merge_patch(dep, mod, DEPLOYMENT)
        assert patch == {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                        "containers": [{"image": "nginx:1.27", "name": "web"}],
                    }
                }
            }
        }

    def test_strategy_change_carries_retain_keys(self) -> None:
        dep = _deployment()
        mod = copy.deepcopy(dep)
        mod["spec"]["strategy"] = {"type": "Recreate"}
        patch = create_two_way_merge_patch(dep, mod, DEPLOYMENT)
        assert patch == {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}

    def test_no_change_is_empty(self) -> None:
        assert create_two_way_merge_patch(_pod(), _pod(), POD) == {}

    @pytest.mark.parametrize(
        "edit",
        [
            lambda p: p["metadata"]["labels"].update(new="1"),
            lambda p: p["metadata"]["labels"].pop("app"),
            lambda p: p["metadata"]["finalizers"].remove("example.com/a"),
            lambda p: p["metadata"]["finalizers"].append("example.com/z"),
            lambda p: p["spec"]["containers"].reverse(),
            lambda p: p["spec"]["containers"].pop(0),
            lambda p: p["spec"]["containers"].append({"name": "n", "image": "i"}),
            lambda p: p["spec"]["containers"][0]["env"].pop(0),
            lambda p: p["spec"]["containers"][0].update(args=["--z"]),
            lambda p: p["spec"]["volumes"].__setitem__(0, {"name": "data", "secret": {"secretName": "s"}}),
            lambda p: p["spec"].pop("tolerations"),
        ],
    )
    def test_round_trip(self, edit: Any) -> None:
        original = _pod()
        modified = copy.deepcopy(original)
        edit(modified)
        patch = create_two_way_merge_patch(original, modified, POD)
        assert apply_strategic_merge_patch(original, json.loads(json.dumps(patch)), POD) == modified


def test_large_pod_small_patch_touches_little() -> None:
    pod = _pod()
    pod["spec"]["containers"] = [
        {"name": f"c{i}", "image": "x", "env": [{"name": f"E{j}", "value": str(j)} for j in range(50)]}
        for i in range(50)
    ]
    out = apply_strategic_merge_patch(pod, {"metadata": {"labels": {"a": "b"}}}, POD)
    assert out["spec"] is pod["spec"]
    out = apply_strategic_merge_patch(pod, {"spec": {"containers": [{"name": "c7", "image": "y"}]}}, POD)
    assert out["spec"]["containers"][8] is pod["spec"]["containers"][8]
    assert out["spec"]["containers"][7]["env"] is pod["spec"]["containers"][7]["env"]


def test_nested_set_element_order_inside_container() -> None:
    # kubectl apply sends order directives at every level it touches.
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [
                {
                    "$setElementOrder/env": [{"name": "B"}, {"name": "C"}, {"name": "A"}],
                    "env": [{"name": "C", "value": "3"}],
                    "name": "web",
                }
            ],
        }
    }
    out = _smp_pod(patch)
    assert _names(out["spec"]["containers"][0]["env"]) == ["B", "C", "A"]


def test_primitive_set_element_order_without_list() -> None:
    patch = {"metadata": {"$setElementOrder/finalizers": ["example.com/b", "example.com/a"]}}
    out = _smp_pod(patch)
    assert out["metadata"]["finalizers"] == ["example.com/b", "example.com/a"]


def test_json_patch_copies_are_bounded_as_kube_bounds_them() -> None:
    """Thirty self-copies in a 3 KB patch would double a 1 KB value into a gigabyte (found probing the
    PATCHes the long fuzz run left unanswered: the server's loop hung, then it was killed). Kubernetes
    stops at 3 MiB of copied JSON (JSONPatchMaxCopyBytes) with json-patch's 422."""
    doc = {"metadata": {"annotations": {"a": "x" * 1000}}}
    bomb = [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/b{i}"} for i in range(30)]
    with pytest.raises(errors.StatusError) as err:
        apply_json_patch(doc, bomb)
    assert err.value.code == 422
    assert "Unable to complete the copy, the accumulated size increase of copy is" in str(err.value)
    assert str(err.value).endswith("exceeding the limit 3145728")
    # Copies under the limit still apply.
    out = apply_json_patch(doc, bomb[:5])
    assert len(json.dumps(out)) > 30_000


def test_json_patch_operations_are_bounded_as_kube_bounds_them() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * 10_001
    with pytest.raises(errors.StatusError) as err:
        apply_json_patch({"a": 1}, ops)
    assert err.value.code == 413
    assert str(err.value) == "The allowed maximum operations in a JSON patch is 10000, got 10001"
    assert apply_json_patch({"a": 1}, ops[:10_000]) == {"a": 1}
