"""The dependency rule, checked on the source (docs/architecture.md).

Read from the AST of every module under src/feecenter: no import cycles; domain
packages never import an adapter; adapters never import each other except at
the composition roots; funds never imports accounts' service, resources never
imports orders; only the fast paths import db.precompiled and db.sending; and
no function-level import of another domain package hides a cycle in the
packages that once had them. Each rule is also shown failing on a small tree
that breaks it, so the check cannot pass by reading nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ADAPTERS = ("api", "compat", "cli", "console", "simulation")  # simulation: a driver
KERNEL = ("money", "clock", "errors", "config", "inputs", "periods", "workdays", "runtime",
          "db", "present")
# adapter -> adapter imports allowed: the composition roots and the shared request plumbing
COMPOSITION = {("api.app", "compat.endpoint"), ("api.app", "console.web"), ("compat.endpoint", "api.deps"),
               ("cli.main", "api.app"), ("cli.simulate", "simulation.driver"),
               ("cli.simulate", "simulation.shrink")}
FAST_DB = ("db.precompiled", "db.sending")
FAST_DB_USERS = ("db", "ledger", "funds", "orders", "resources", "settlement.posting")
NO_LAZY_DOMAIN_IMPORTS = ("funds", "catalog", "resources", "settlement", "orders")


def imports_of(root: Path, package: str = "feecenter") -> dict[str, list[tuple[str, bool]]]:
    """module -> [(imported feecenter module, imported inside a function?)], names
    relative to ``package`` ("orders.service")."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root / package).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__") or "__init__"
        found[name] = list(_imports(ast.parse(path.read_text()), name, package,
                                    path.name == "__init__.py"))
    return found


def _imports(tree: ast.Module, module: str, package: str, is_init: bool):
    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield from _local(alias.name, package, nested)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, package, is_init)
                for alias in child.names:
                    yield from _local(f"{base}.{alias.name}", package, nested)
            else:
                yield from visit(child, nested)
    yield from visit(tree, False)


def _absolute(node: ast.ImportFrom, module: str, package: str, is_init: bool) -> str:
    if not node.level:
        return node.module or ""
    here = [package, *module.split(".")][: None if is_init else -1]
    here = here[: len(here) - (node.level - 1)]
    return ".".join(here + ([node.module] if node.module else []))


def _local(name: str, package: str, in_function: bool):
    """A name under ``package`` relative to it: ``orders.service`` for ``from
    feecenter.orders import service``, ``orders.service.pay`` for ``from
    feecenter.orders.service import pay`` (``_resolve`` walks that up to its module)."""
    if name.split(".")[0] == package:
        yield name.split(".", 1)[1] if "." in name else "__init__", in_function


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(graph: dict[str, list[tuple[str, bool]]]) -> list[str]:
    modules = set(graph)
    edges = {m: {_resolve(t, modules) for t, _ in targets} - {None} for m, targets in
             graph.items()}
    found = [f"import cycle: {' -> '.join(c)}" for c in _cycles(
        {m: {_resolve(t, modules) for t, lazy in ts if not lazy} - {None}
         for m, ts in graph.items()})]
    for source, targets in edges.items():
        for target in targets:
            found += [f"{source} -> {target}: {why}" for why in _broken(source, target)]
    for source, targets in graph.items():
        for target, lazy in targets:
            if (lazy and _within(source, NO_LAZY_DOMAIN_IMPORTS)
                    and _top(target) != _top(source) and not _within(target, KERNEL)):
                found.append(f"{source} -> {target}: function-level import of another domain")
    return found


def _resolve(target: str, modules: set[str]) -> str | None:
    """The module an import names: itself, or the package for a name it defines."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _broken(source: str, target: str):
    src, dst = _top(source), _top(target)
    if src == dst:
        return
    if dst in ADAPTERS and src not in ADAPTERS:
        yield "a domain or kernel module imports an adapter"
    if src in ADAPTERS and dst in ADAPTERS and (source, target) not in COMPOSITION:
        yield "an adapter imports another adapter"
    if src == "funds" and _within(target, ("accounts.service",)):
        yield "funds imports accounts' service"
    if src == "resources" and dst == "orders":
        yield "resources imports orders"
    if _within(target, FAST_DB) and not _within(source, FAST_DB_USERS):
        yield "only the fast paths may use db.precompiled and db.sending"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def strongconnect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    return found


def test_the_source_keeps_the_dependency_rule():
    assert violations(imports_of(SRC)) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "feecenter" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in (tmp_path / "feecenter").rglob("*"):
        if directory.is_dir():
            (directory / "__init__.py").touch()
    (tmp_path / "feecenter" / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    ({"orders/service.py": "from feecenter.funds import service\n",
      "funds/service.py": "from feecenter.orders.service import pay\n"}, "import cycle"),
    ({"orders/service.py": "from feecenter.api.orders import order_json\n",
      "api/orders.py": ""}, "imports an adapter"),
    ({"cli/orders.py": "from feecenter.api.orders import order_json\n",
      "api/orders.py": ""}, "another adapter"),
    ({"compat/actions.py": "def f():\n    from feecenter.api import orders\n",
      "api/orders.py": ""}, "another adapter"),
    ({"funds/service.py": "from feecenter.accounts import service\n",
      "accounts/service.py": ""}, "funds imports accounts' service"),
    ({"resources/postpaid.py": "from feecenter.orders.service import purchase_gate\n",
      "orders/service.py": ""}, "resources imports orders"),
    ({"coupons/service.py": "from feecenter.db import sending\n", "db/sending.py": ""},
     "only the fast paths"),
    ({"catalog/service.py": "def f():\n    from feecenter.accounts.service import x\n",
      "accounts/service.py": ""}, "function-level import of another domain"),
])
def test_each_rule_fails_a_tree_that_breaks_it(tmp_path, files, expected):
    found = violations(imports_of(_tree(tmp_path, files)))
    assert any(expected in v for v in found), found


def test_allowed_imports_pass(tmp_path):
    files = {"api/app.py": "from feecenter.compat import endpoint\n",
             "compat/endpoint.py": "from feecenter.api.deps import runtime\n",
             "api/deps.py": "", "orders/service.py": "from feecenter.db import sending\n"
             "from feecenter.funds import service\n", "funds/service.py": "",
             "db/sending.py": "", "settlement/service.py": "",
             "settlement/jobs.py": "def f():\n    import feecenter.settlement.service\n"}
    assert violations(imports_of(_tree(tmp_path, files))) == []
