"""Impersonation headers (apiserver/auth/impersonation.py) and anonymous authentication
(apiserver/auth/authenticator.py), as kube-apiserver reads them."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from kybernetes import errors
from kybernetes.apiserver.auth.authenticator import ANONYMOUS, Authenticator, TokenFile, bearer_token
from kybernetes.apiserver.auth.impersonation import Wanted, impersonate, split_service_account, wanted
from kybernetes.apiserver.authz.authorizer import (
    AlwaysDeny,
    Attributes,
    Chain,
    Decision,
    PrivilegedGroups,
)
from kybernetes.apiserver.registry.request import User

ADMIN = User("admin", ("system:masters", "system:authenticated"))
JANE = User("jane", ("devs", "system:authenticated"))
DENY_ALL = Chain([PrivilegedGroups(), AlwaysDeny()])


def _headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


def test_what_the_headers_ask_for_in_order() -> None:
    h = _headers(("Impersonate-User", "bob"), ("Impersonate-Group", "g1"), ("impersonate-group", "g2"),
                 ("Impersonate-Extra-Scopes", "a"), ("impersonate-extra-scopes", "b"),
                 ("Impersonate-Extra-Example.com%2Fteam", "x"), ("Impersonate-Uid", "u1"))
    assert wanted(h) == [
        Wanted("User", "bob"), Wanted("Group", "g1"), Wanted("Group", "g2"),
        Wanted("UserExtra", "a", api_version="authentication.k8s.io/v1", field_path="scopes"),
        Wanted("UserExtra", "b", api_version="authentication.k8s.io/v1", field_path="scopes"),
        Wanted("UserExtra", "x", api_version="authentication.k8s.io/v1", field_path="example.com/team"),
        Wanted("UID", "u1", api_version="authentication.k8s.io/v1"),
    ]


def test_service_account_names() -> None:
    assert split_service_account("system:serviceaccount:kube-system:default") == ("kube-system", "default")
    assert split_service_account("system:serviceaccount:Bad_NS:default") is None
    assert split_service_account("system:serviceaccount:a:b:c") is None
    assert wanted(_headers(("Impersonate-User", "system:serviceaccount:ns1:sa1"))) == [
        Wanted("ServiceAccount", "sa1", "ns1")]


def test_groups_without_a_user_are_a_400_in_kubernetes_words() -> None:
    with pytest.raises(errors.BadRequest) as err:
        wanted(_headers(("Impersonate-Group", "system:masters"), ("Impersonate-Uid", "7")))
    assert str(err.value) == ("requested [{Group  system:masters    } {UID  7  authentication.k8s.io/v1  }] "
                              "without impersonating a user")


def test_no_headers_no_impersonation() -> None:
    assert impersonate(_headers(("Authorization", "Bearer x")), JANE, DENY_ALL) is None


@pytest.mark.parametrize(("pairs", "user"), [
    ((("Impersonate-User", "bob"),), User("bob", ("system:authenticated",))),
    ((("Impersonate-User", "bob"), ("Impersonate-Group", "g")), User("bob", ("g", "system:authenticated"))),
    ((("Impersonate-User", "bob"), ("Impersonate-Group", "system:unauthenticated")),
     User("bob", ("system:unauthenticated",))),
    ((("Impersonate-User", "system:anonymous"),), User("system:anonymous", ("system:unauthenticated",))),
    ((("Impersonate-User", "system:serviceaccount:ns1:sa1"),),
     User("system:serviceaccount:ns1:sa1", ("system:serviceaccounts", "system:serviceaccounts:ns1",
                                            "system:authenticated"))),
    ((("Impersonate-User", "bob"), ("Impersonate-Uid", "u1"), ("Impersonate-Extra-Scopes", "s")),
     User("bob", ("system:authenticated",), "u1", {"scopes": ["s"]})),
])
def test_the_impersonated_user(pairs: tuple[tuple[str, str], ...], user: User) -> None:
    assert impersonate(_headers(*pairs), ADMIN, DENY_ALL) == user
    assert impersonate(_headers(*pairs), JANE, None) == user  # AlwaysAllow: no chain


class _Recorder:
    def __init__(self) -> None:
        self.asked: list[Attributes] = []

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        self.asked.append(attrs)
        return Decision.ALLOW, ""


def test_each_thing_is_authorized_with_the_impersonate_verb() -> None:
    rec = _Recorder()
    impersonate(_headers(("Impersonate-User", "system:serviceaccount:ns1:sa1"), ("Impersonate-Group", "g"),
                         ("Impersonate-Extra-Scopes", "s"), ("Impersonate-Uid", "u1")), JANE, Chain([rec]))
    assert rec.asked == [
        Attributes(JANE, "impersonate", True, "", "v1", "ns1", "serviceaccounts", name="sa1"),
        Attributes(JANE, "impersonate", True, "", "v1", "", "groups", name="g"),
        Attributes(JANE, "impersonate", True, "authentication.k8s.io", "v1", "", "userextras", "scopes", "s"),
        Attributes(JANE, "impersonate", True, "authentication.k8s.io", "v1", "", "uids", name="u1"),
    ]


def test_refused_impersonation_is_kubernetes_403() -> None:
    with pytest.raises(errors.Forbidden) as err:
        impersonate(_headers(("Impersonate-User", "bob")), JANE, DENY_ALL)
    assert str(err.value) == ('users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API '
                              'group "" at the cluster scope: Everything is forbidden.')
    with pytest.raises(errors.Forbidden) as err:
        impersonate(_headers(("Impersonate-User", "system:serviceaccount:ns1:sa1")), JANE, DENY_ALL)
    assert str(err.value).startswith('serviceaccounts "sa1" is forbidden: User "jane" cannot impersonate resource '
                                     '"serviceaccounts" in API group "" in the namespace "ns1"')


@pytest.mark.parametrize(("header", "token"), [
    (None, ""), ("", ""), ("Basic dXNlcjpwdw==", ""), ("Bearer", ""), ("Bearer  tok", ""),
    ("bearer tok", "tok"), ("Bearer tok trailing", "tok"), ("  Bearer tok  ", "tok"),
])
def test_bearer_token_as_kubernetes_reads_it(header: str | None, token: str) -> None:
    assert bearer_token(header) == token


def test_anonymous_only_without_credentials() -> None:
    authn = Authenticator(TokenFile(None))
    assert authn.authenticate(None, None, anonymous=True) == ANONYMOUS
    assert authn.authenticate(None, "Basic dXNlcjpwdw==", anonymous=True) == ANONYMOUS
    for anonymous in (True, False):
        with pytest.raises(errors.Unauthorized):
            authn.authenticate(None, "Bearer not-a-token", anonymous=anonymous)
    with pytest.raises(errors.Unauthorized):
        authn.authenticate(None, None)
