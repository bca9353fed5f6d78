"""The checks of a conversion webhook's answer (apiextensions-apiserver's webhook_converter.go)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kybernetes.apiserver.crdconversion import (
    ConversionFailed,
    InvalidResponse,
    WebhookConverter,
    checked_object,
    converted_objects,
)

WHAT = "conv.example.com/v1, Kind=Widget"


def obj(version: str = "v1", **meta: Any) -> dict[str, Any]:
    m = {"name": "w", "namespace": "ns", "uid": "u-1", "resourceVersion": "7", **meta}
    return {"apiVersion": f"conv.example.com/{version}", "kind": "Widget", "metadata": m, "spec": {"a": 1}}


def answer(uid: str = "U", **response: Any) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": uid, "result": {"status": "Success"}, "convertedObjects": [], **response}}


@pytest.mark.parametrize(("reply", "message"), [
    ("nonsense", "Object 'Kind' is missing in '\"nonsense\"'"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
     "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got admission.k8s.io/v1, "
     "Kind=AdmissionReview"),
    ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"}, "no response provided"),
    (answer("other"), 'expected response.uid="U", got "other"'),
    (answer(result={"status": "Failure", "message": "cannot convert"}), "cannot convert"),
    (answer(result={"status": "Failure"}), "response.result.status was 'Failure', not 'Success'"),
    (answer(result={}), "response.result.status was '', not 'Success'"),
])
def test_a_malformed_or_failed_answer(reply: Any, message: str) -> None:
    with pytest.raises(InvalidResponse) as e:
        converted_objects("v1", "U", reply)
    assert str(e.value) == message


def test_v1beta1_answers_are_not_checked_for_kind_or_uid() -> None:
    reply = {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview",
             "response": {"uid": "whatever", "result": {"status": "Success"}, "convertedObjects": [obj("v2")]}}
    assert converted_objects("v1beta1", "U", reply) == [obj("v2")]


@pytest.mark.parametrize(("converted", "index", "message"), [
    (obj("v3"), None, f"conversion webhook for {WHAT} returned invalid object at index 0: invalid groupVersion "
                      "(expected conv.example.com/v2, received conv.example.com/v3)"),
    (obj("v3"), 0, f"conversion webhook for {WHAT} returned invalid converted object at index 1: invalid "
                   "groupVersion (expected conv.example.com/v2, received conv.example.com/v3)"),
    ({**obj("v2"), "kind": "Other"}, None, f"conversion webhook for {WHAT} returned invalid object at index 0: "
                                           "invalid kind (expected Widget, received Other)"),
    (obj("v2", name="x"), None, f"conversion webhook for {WHAT} returned invalid object: must have the same "
                                "name: w != x"),
    (obj("v2", uid="u-2"), 2, f"conversion webhook for {WHAT} returned invalid converted object at index 3: must "
                              "have the same UID: u-1 != u-2"),
    (obj("v2", namespace="b"), None, f"conversion webhook for {WHAT} returned invalid object: must have the same "
                                     "namespace: ns != b"),
    (obj("v2", labels={"bad key!": "v"}), None,
     f"conversion webhook for {WHAT} returned invalid metadata: metadata.labels: Invalid value: \"bad key!\": "
     "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
    (obj("v2", labels={"k": 1}), 0, f"conversion webhook for {WHAT} returned invalid metadata in object at "
                                    "index 1: metadata.labels[k] must be a string, but is float64 in converted "
                                    "object"),
    ({k: val for k, val in obj("v2").items() if k != "metadata"}, None,
     f"conversion webhook for {WHAT} returned invalid object: must have the same name: w != "),
])
def test_a_converted_object_that_breaks_the_rules(converted: Any, index: int | None, message: str) -> None:
    with pytest.raises(ConversionFailed) as e:
        checked_object(obj(), converted, "conv.example.com/v2", WHAT, index)
    assert e.value.message == message
    assert e.value.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": message, "code": 500}


def test_metadata_is_the_originals_but_labels_and_annotations() -> None:
    original = obj(labels={"a": "1"}, annotations={"keep": "me"}, generation=3)
    converted = obj("v2", labels={"a": "2", "b": "3"}, resourceVersion="999", generation=9)
    converted["spec"] = {"b": 1}
    got = checked_object(original, converted, "conv.example.com/v2", WHAT, None)
    assert got["spec"] == {"b": 1} and got["apiVersion"] == "conv.example.com/v2"
    # The webhook's labels stay; its other metadata changes do not; annotations it left out go.
    assert got["metadata"] == {"name": "w", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                               "generation": 3, "labels": {"a": "2", "b": "3"}}
    assert original["metadata"]["labels"] == {"a": "1"}  # the input is left as it was


class Answers:
    """The client's ``post`` answering with what a test gives (the HTTPS part runs in the
    integration tests); records each review."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.reviews: list[dict[str, Any]] = []

    async def post(self, cc: dict[str, Any], timeout: int, review: dict[str, Any]) -> Any:
        self.reviews.append(copy.deepcopy(review))
        assert timeout == 30
        return self.make(review["request"])


def converter(make: Any, versions: tuple[str, ...] = ("v1",)) -> tuple[WebhookConverter, Answers]:
    answers = Answers(make)
    crd = {"spec": {"conversion": {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": list(versions), "clientConfig": {"url": "https://127.0.0.1:1/c"}}}}}
    return WebhookConverter(crd, answers), answers  # type: ignore[arg-type]


def to_v2(request: dict[str, Any]) -> dict[str, Any]:
    out = [{**o, "apiVersion": request["desiredAPIVersion"]} for o in request["objects"]]
    return answer(request["uid"], convertedObjects=out)


def test_only_objects_in_another_version_are_sent_in_one_review() -> None:
    conv, answers = converter(to_v2, ("v9", "v1beta1", "v1"))
    items = [obj(name="a"), obj("v2", name="b"), obj(name="c")]
    got = asyncio.run(conv.convert(items, "conv.example.com/v2", as_list="WidgetList"))
    assert [o["metadata"]["name"] for o in got] == ["a", "b", "c"]
    assert {o["apiVersion"] for o in got} == {"conv.example.com/v2"}
    assert got[1] is items[1]
    assert len(answers.reviews) == 1
    review = answers.reviews[0]
    # The first review version this server speaks (v1beta1 answers are not uid-checked).
    assert review["apiVersion"] == "apiextensions.k8s.io/v1beta1"
    assert [o["metadata"]["name"] for o in review["request"]["objects"]] == ["a", "c"]
    # Nothing to convert: no call at all.
    asyncio.run(conv.convert([obj("v2")], "conv.example.com/v2"))
    assert len(answers.reviews) == 1


def test_a_wrong_number_of_objects() -> None:
    conv, _ = converter(lambda req: answer(req["uid"], convertedObjects=[]))
    with pytest.raises(ConversionFailed) as e:
        asyncio.run(conv.convert([obj()], "conv.example.com/v2"))
    assert e.value.message == f"conversion webhook for {WHAT} returned 0 objects, expected 1"


def test_a_failed_answer_names_the_input_kind() -> None:
    conv, _ = converter(lambda req: answer(req["uid"], result={"status": "Failure", "message": "nope"}))
    with pytest.raises(ConversionFailed) as e:
        asyncio.run(conv.convert([obj("v2")], "conv.example.com/v1"))
    assert e.value.message == "conversion webhook for conv.example.com/v2, Kind=Widget failed: nope"
    assert e.value.code == 500


def test_no_review_version_this_server_speaks() -> None:
    conv, answers = converter(to_v2, ("v9",))
    with pytest.raises(ConversionFailed) as e:
        asyncio.run(conv.convert([obj()], "conv.example.com/v2"))
    assert e.value.message == "no supported conversion review versions" and not answers.reviews
