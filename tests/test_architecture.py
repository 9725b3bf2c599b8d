"""The shape of the imports: no import cycle among mailhub's modules, no import inside
a function except the few listed below (an import inside a function is how a cycle hides),
and the import-linter contracts of pyproject.toml kept (layers: command line, service, apps,
core, store; apps independent; nothing imports the command line).

Run as a script for the numbers: `python tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mailhub"

# (module, what it imports inside a function): each for a reason other than a cycle.
ALLOWED_IN_FUNCTIONS = {
    # pypdf is large and only needed when a report carries a PDF.
    ("mailhub.conduct.reading", "pypdf"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def scan() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """(module → the mailhub modules it imports, at its top or inside a function, and every
    import inside a function as (module, line, what)). Imports under `if TYPE_CHECKING:` are not
    made at run time and are left out."""
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    inside: list[tuple[str, int, str]] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        in_function = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            for n in ast.walk(f)
        }
        type_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _base(module, path.name == "__init__.py", node)
                # `from mailhub.lists import posting` imports the module mailhub.lists.posting
                targets = sorted(
                    {
                        f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                        for a in node.names
                    }
                )
            for target in targets:
                if id(node) in in_function:
                    inside.append((module, node.lineno, target))
                # An import inside a function is an edge too: it only puts the cycle off.
                if target in modules and target != module:
                    graph[module].add(target)
    return graph, inside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a loop (strongly
    connected components of more than one module; Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_cycles():
    graph, _ = scan()
    assert cycles(graph) == []


def test_no_imports_inside_functions_but_the_listed_ones():
    _, inside = scan()
    unlisted = [
        f"{m}:{line} imports {t}" for m, line, t in inside if (m, t) not in ALLOWED_IN_FUNCTIONS
    ]
    assert unlisted == []


def test_errors_and_readers_import_nothing_from_mailhub():
    graph, _ = scan()
    assert graph["mailhub.errors"] == set()
    assert graph["mailhub.readers"] == {"mailhub.errors"}


def test_config_readers_import_nothing_from_the_apps_logic():
    graph, _ = scan()
    # addresses: the address spec, which imports nothing from mailhub either.
    assert not {m for m in graph["mailhub.addresses"] if m.startswith("mailhub")}
    # The core's config reads the core's sections only: the apps' parsers are handed to it.
    # ([web], [dkim] and [dns] are core sections read by their own modules, which import
    # nothing of the apps.)
    readers = {"mailhub.web.config", "mailhub.signing", "mailhub.resolver"}
    assert graph["mailhub.config"] <= {"mailhub.errors", "mailhub.readers"} | readers
    for module in ("mailhub.signing", "mailhub.resolver"):
        assert graph[module] <= {
            "mailhub.errors",
            "mailhub.readers",
            "mailhub.clock",
            "mailhub.logs",
        }
    assert graph["mailhub.web.config"] <= {"mailhub.errors", "mailhub.readers"}
    for module in ("mailhub.lists.config", "mailhub.conduct.config"):
        allowed = {"mailhub.errors", "mailhub.readers", "mailhub.addresses", "mailhub.config"}
        # The lists read [web] (a reader itself) for the List-Archive of their web archive.
        allowed |= {"mailhub.web.config"} if module == "mailhub.lists.config" else set()
        assert graph[module] <= allowed, module


def test_the_scheduler_does_not_know_the_apps():
    graph, _ = scan()
    assert not {m for m in graph["mailhub.scheduler"] if m.split(".")[1] in ("lists", "conduct")}


LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = (
    "Layers: command line, service, apps, core, store, readers, errors",
    "The apps are independent of each other",
    "Nothing imports the command line (but `python -m mailhub`)",
)


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter (the test extra installs it) with pyproject.toml's contracts on the
    mailhub package found in `package_parent`."""
    assert LINT_IMPORTS.exists(), "lint-imports is missing: pip install -e '.[test]'"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_linter_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


# (file, line added to it, the contract it breaks): each contract fails when it should.
BREAKS = [
    ("delivery.py", "from mailhub.lists import verp", CONTRACTS[0]),  # the core imports an app
    ("config.py", "from mailhub.conduct import config", CONTRACTS[0]),
    ("errors.py", "from mailhub import clock", CONTRACTS[0]),  # errors imports nothing
    ("readers.py", "from mailhub import addresses", CONTRACTS[0]),
    ("store/inbound.py", "from mailhub import context", CONTRACTS[0]),  # store under the core
    ("enquiries.py", "from mailhub.conduct import policy", CONTRACTS[1]),
    ("lists/handlers.py", "from mailhub.conduct import cases", CONTRACTS[1]),
    ("service.py", "from mailhub import cli", CONTRACTS[2]),
]


@pytest.mark.parametrize(("path", "line", "contract"), BREAKS)
def test_import_linter_finds_a_broken_contract(
    tmp_path: Path, path: str, line: str, contract: str
) -> None:
    copy = tmp_path / "mailhub"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    target = copy / path
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout


def test_a_new_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    copy = tmp_path / "mailhub"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    (copy / "newcomer.py").write_text('"""A module no layer names."""\n')
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "mailhub.newcomer" in result.stdout + result.stderr


if __name__ == "__main__":
    graph, inside = scan()
    groups = cycles(graph)
    print(f"modules: {len(graph)}")
    print(f"import cycles: {len(groups)}")
    for group in groups:
        print("  " + " <-> ".join(group))
    statements = sorted({(m, line) for m, line, _ in inside})
    print(f"imports inside functions: {len(statements)} statements")
    for m, line, t in sorted(inside):
        print(f"  {m}:{line} {t}")
