"""CEL, the Common Expression Language, as kube-apiserver uses it (CRD validation rules,
ValidatingAdmissionPolicy, webhook matchConditions).

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
- cost estimation and runtime cost limits: none of the three; see :mod:`.cost`.

Chosen: **cel-expr-python**, the fastest, the only one with a type checker, and the only one with
the extensions Kubernetes enables. Built here as custom functions (:mod:`.library`): quantity, lists
(``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``), regex (``find``,
``findAll``) in :mod:`.library`; url, ip, cidr and sets in :mod:`.library_net`; authz
(``authorizer``, ``authorizer.requestResource``) in :mod:`.library_authz`. Not built yet: format
(``format.dns1123Label()``...: its ``validate`` returns an optional, which a cel-expr-python
function cannot declare), semver, ``string()`` of an IP or CIDR, two-variable comprehensions, and
Kubernetes' escapes of property names that are not identifiers (``__dash__``...). The authz types
are checked as cel-go names them, but ``list(A).indexOf(A)``'s type parameter is not
(``list(dyn).indexOf(dyn)``: ``[1].indexOf('a')`` compiles). CRD rules are type-checked against the
schema (:mod:`.schemaenv`: ``self.noSuchField`` is refused when the CRD is written, as in
Kubernetes), except where the schema leaves types open (unknown fields, int-or-string, property
names that need escapes); policies' ``object`` is ``dyn`` (Kubernetes checks them against the
matched kinds' OpenAPI only for ``status.typeChecking`` warnings). Cost is bounded before evaluation
(:mod:`.cost`), not counted during it, and there is no static cost estimate when a CRD or policy is
written.

The package: :mod:`.env` (environments, compilation cached per expression, evaluation),
:mod:`.library`, :mod:`.library_net`, :mod:`.cost`, :mod:`.admission` (the policy environment), and
:mod:`.crdrules` (``x-kubernetes-validations``) with :mod:`.schematypes` (values) and
:mod:`.schemaenv` (types).
"""

from __future__ import annotations

from kybernetes.apiserver.cel.cost import (
    BUDGET_EXCEEDED,
    PER_CALL_EXCEEDED,
    PER_CALL_LIMIT,
    RUNTIME_COST_BUDGET,
)
from kybernetes.apiserver.cel.env import CompileError, EvalError, Program, compile_expression

__all__ = [
    "BUDGET_EXCEEDED",
    "PER_CALL_EXCEEDED",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "CompileError",
    "EvalError",
    "Program",
    "compile_expression",
]
