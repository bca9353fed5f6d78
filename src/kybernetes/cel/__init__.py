"""CEL, the Common Expression Language, as Kubernetes uses it (CRD validation rules,
ValidatingAdmissionPolicy, webhook matchConditions): the environments, Kubernetes' libraries and
type checking, pure (no server state), so that both the API server (which compiles and evaluates:
:mod:`kybernetes.apiserver.cel`) and the policy status controller (which type-checks policies
against the kinds they match: :mod:`.typecheck`) build on them.

Which implementation, and why
-----------------------------
Three maintained CEL implementations are on PyPI. Measured on this machine (Python 3.11, one core,
compile once, evaluate 10,000 times with ``self`` bound to a small object):

============================  ===========================  ========================  ============
                              ``self.replicas <=           ``self.name.startsWith(`  type checker
                              self.maxReplicas``           'web') && self.ports.all
                                                           (...) && size(...) < 64``
============================  ===========================  ========================  ============
cel-expr-python 0.1.3         7.4 us                       12.9 us                   yes
(Google's cel-cpp, C++)
common-expression-language    8.3 us                       18.7 us                   no
0.10.0 (cel-rust, Rust)
cel-python 0.5.0 (pure        156 us                       1,545 us                  no
Python)
============================  ===========================  ========================  ============

What Kubernetes' environment needs, by implementation (cel-expr-python / common-expression-language
/ cel-python):

- standard macros and ``has()``: yes / yes / yes;
- type checking at compile time, so that a CRD or policy with ``undeclared reference`` or a
  function applied to the wrong types is refused when it is written, in cel-go's words: yes
  (cel-cpp's checker prints the same issue text) / no (errors only when evaluated) / no;
- strings extension (``lowerAscii``, ``split``, ``join``, ``indexOf``, ``format``...): yes /
  no / partly;
- optional types (``self.?x.orValue(y)``): yes / no (parse error) / no;
- ``cel.bind``, math extension: yes / no / no;
- regex ``matches``: yes / yes / yes;
- custom functions as methods (``quantity('1Gi').isLessThan(...)``): yes, typed overloads /
  yes, untyped / yes;
- cost estimation and runtime cost limits: none of the three; see
  :mod:`kybernetes.apiserver.cel.cost` (runtime bounds) and :mod:`kybernetes.apiserver.cel.estimate`
  (static estimates when a CRD is written, on the tree :mod:`.ast` reads from a compiled expression).

Chosen: **cel-expr-python**, the fastest, the only one with a type checker, and the only one with
the extensions Kubernetes enables. Built here as custom functions: quantity, lists (``isSorted``,
``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``), regex (``find``, ``findAll``) in
:mod:`.library`; url, ip, cidr and sets in :mod:`.library_net`; format (``format.dns1123Label()``
..., ``format.named``, ``validate``, whose optional results come from a rewrite of the expression:
see :mod:`.library_format`) and semver in :mod:`.library_format`; authz (``authorizer``,
``authorizer.requestResource``) in :mod:`.library_authz`, whose ``check`` the API server supplies.
Not built yet: ``string()`` of an IP or CIDR, two-variable comprehensions, and Kubernetes' escapes
of property names that are not identifiers (``__dash__``...). The authz types are checked as
cel-go names them; quantities, formats and versions are maps of distinct types (the checker tells
them apart, but prints map types where cel-go prints ``kubernetes.Quantity``...; a version is a
list of one map, see :mod:`.library_format`), and
``list(A).indexOf(A)``'s type parameter is not checked (``list(dyn).indexOf(dyn)``:
``[1].indexOf('a')`` compiles). CRD rules are type-checked against the schema (:mod:`.schemaenv`:
``self.noSuchField`` is refused when the CRD is written, as in Kubernetes), except where the
schema leaves types open (unknown fields, int-or-string, property names that need escapes);
policies' ``object`` is ``dyn`` when they are written, and checked against the matched kinds'
OpenAPI schemas only for ``status.typeChecking`` warnings (:mod:`.typecheck`), as in Kubernetes.

The package: :mod:`.environment` (environments, checking in cel-go's words), :mod:`.library`,
:mod:`.library_net`, :mod:`.library_format`, :mod:`.library_authz`, :mod:`.schemaenv` (protobuf
types of a schema, for checking), :mod:`.typecheck` (policies against OpenAPI schemas) and
:mod:`.ast` (a compiled expression's tree). Importing the package itself loads no CEL
implementation: :class:`CompileError` is here so that a module can catch it without paying for
cel-expr-python's C extensions (~14 MB resident) before its first expression.
"""

from __future__ import annotations


class CompileError(Exception):
    """The expression does not compile; ``str()`` is cel-go's issue text (``ERROR: <input>:1:6: ...``)."""


__all__ = ["CompileError"]
