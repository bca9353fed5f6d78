"""TokenReview and SelfSubjectReview (apiserver/auth/reviews.py): what each create answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.apiserver.auth.reviews import SelfSubjectReviewREST, TokenReviewREST
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.rest import SubresourceCall

JANE = User("jane", ("dev", "system:authenticated"), "u-1", {"scopes": ["a"]})


def _call(body: Any, namespace: str = "", user: User = JANE) -> SubresourceCall:
    async def read_body(_into: str) -> Any:
        return body

    return SubresourceCall(method="POST", namespace=namespace, name="", ctx=RequestContext(user=user),
                           read_body=read_body)


def _token_file_reviewer(token: str, audiences: Any) -> tuple[User | None, list[str], str]:
    """Accepts one token for any audience; says a second one was revoked."""
    if token == "good":
        return JANE, list(audiences), ""
    return None, [], "service account token has been invalidated" if token == "revoked" else ""


def _review(body: Any, namespace: str = "") -> Any:
    rest = TokenReviewREST(_token_file_reviewer, ("https://kubernetes.default.svc.cluster.local",))
    return asyncio.run(rest.serve(None, _call(body, namespace)))  # type: ignore[arg-type]


def _tr(spec: Any) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


def test_token_review_of_a_good_token() -> None:
    reply = _review(_tr({"token": "good", "audiences": ["vault"]}))
    assert reply.status == 201
    assert reply.obj["metadata"] == {"creationTimestamp": None}
    assert reply.obj["spec"] == {"token": "good", "audiences": ["vault"]}
    assert reply.obj["status"] == {"authenticated": True, "audiences": ["vault"], "user": {
        "username": "jane", "uid": "u-1", "groups": ["dev", "system:authenticated"], "extra": {"scopes": ["a"]}}}


def test_token_review_errors_read_as_kubernetes_writes_them() -> None:
    assert _review(_tr({"token": "junk"})).obj["status"] == {"user": {}, "error": "invalid bearer token"}
    assert _review(_tr({"token": "revoked"})).obj["status"] == {
        "user": {}, "error": "[invalid bearer token, service account token has been invalidated]"}


@pytest.mark.parametrize(("body", "namespace", "message"), [
    (_tr({}), "", "token is required for TokenReview in authentication"),
    (_tr({"token": ""}), "", "token is required for TokenReview in authentication"),
    (_tr({"token": "good"}), "default", "namespace is not allowed on this type: default"),
    ({"kind": "Pod"}, "", "not a TokenReview: {'kind': 'Pod'}"),
])
def test_token_review_bad_requests(body: Any, namespace: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as e:
        _review(body, namespace)
    assert str(e.value.message) == message


def test_self_subject_review_is_the_requester() -> None:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}
    reply = asyncio.run(SelfSubjectReviewREST().serve(None, _call(body)))  # type: ignore[arg-type]
    assert reply.status == 201
    assert reply.obj == {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                         "metadata": {"creationTimestamp": None}, "status": {"userInfo": {
                             "username": "jane", "uid": "u-1", "groups": ["dev", "system:authenticated"],
                             "extra": {"scopes": ["a"]}}}}


def test_discovery_lists_reviews_as_kube_apiserver() -> None:
    """As kube-apiserver 1.32's /apis/authentication.k8s.io/v1: create only, and no
    storageVersionHash (nothing is stored)."""
    from kybernetes.api.resources import Catalogue
    from kybernetes.apiserver.transport import discovery

    doc = discovery.resource_list(Catalogue.builtin(), "authentication.k8s.io", "v1")
    assert doc["resources"] == [
        {"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": False,
         "kind": "SelfSubjectReview", "verbs": ["create"]},
        {"name": "tokenreviews", "singularName": "tokenreview", "namespaced": False, "kind": "TokenReview",
         "verbs": ["create"]},
    ]


def test_user_info_extra_keys_sorted_as_a_go_map() -> None:
    from kybernetes.apiserver.auth.reviews import user_info

    info = user_info(User("sa", (), "", {"z": ["1"], "a": ["2"]}))
    assert list(info["extra"]) == ["a", "z"] and "uid" not in info and "groups" not in info


def test_authenticator_reviews_token_file_tokens_for_any_audience(tmp_path: Any) -> None:
    """Token-file tokens are audience-agnostic (Kubernetes wraps them so): good for the audiences
    asked; a token no authenticator knows reports no error of its own."""
    from kybernetes.apiserver.auth.authenticator import Authenticator, TokenFile

    path = tmp_path / "tokens.csv"
    path.write_text('s3cret,jane,u-1,"dev,ops"\n')
    authn = Authenticator(TokenFile(path))
    user, audiences, error = authn.review_token("s3cret", ["vault"])
    assert user is not None and (user.name, user.uid) == ("jane", "u-1")
    assert user.groups == ("dev", "ops", "system:authenticated")
    assert (audiences, error) == (["vault"], "")
    assert authn.review_token("other", ["vault"]) == (None, [], "")
