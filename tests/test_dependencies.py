"""Every third-party module the code imports comes from a declared dependency, so a fresh install
(``pip install torch==2.13.0 -e .``) has it: the imports under ``src/cenn`` (inside functions too)
from ``[project.dependencies]``, or from an optional extra behind a lazy import whose ImportError
names the extra (``pip install 'cenn[camb]'``); the tests' imports from the dependencies and the
``test`` extra. Read from the installed distribution's metadata (module → distribution through
``importlib.metadata.packages_distributions``, names compared normalised as in PEP 503)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

import cenn

PACKAGE = Path(cenn.__file__).parent
TESTS = Path(__file__).parent
PYPROJECT = PACKAGE.parent.parent / "pyproject.toml"  # the checkout's, when cenn is installed from one
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> dict[str, set[str | None]]:
    """``{distribution: {extra, ...}}`` from ``Requires-Dist`` lines; ``None`` for a core dependency."""
    out: dict[str, set[str | None]] = {}
    for line in requirements:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line).group(1)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        out.setdefault(normalize(name), set()).add(normalize(extra.group(1)) if extra else None)
    return out


@dataclass(frozen=True)
class Import:
    module: str  # top-level name
    where: str  # file:line
    lazy: bool  # inside a function
    message: str | None  # the strings of an enclosing ``except ImportError`` that raises


def _message_of(handler: ast.ExceptHandler) -> str | None:
    """The string constants of an ``except ImportError`` handler that raises, or None."""
    caught = handler.type
    names = {n.id for n in ast.walk(caught) if isinstance(n, ast.Name)} if caught else set()
    if not names & IMPORT_ERRORS or not any(isinstance(n, ast.Raise) for n in ast.walk(handler)):
        return None
    return " ".join(n.value for n in ast.walk(handler)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str))


def imports(root: Path) -> list[Import]:
    """Every absolute import under ``root``, module-level or not, with where it stands."""
    found = []

    def visit(node: ast.AST, path: Path, lazy: bool, message: str | None) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if node.module and not node.level else []
            found.extend(Import(n.split(".")[0], f"{path}:{node.lineno}", lazy, message) for n in names)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lazy = True
        if isinstance(node, ast.Try | ast.TryStar):
            messages = [m for m in map(_message_of, node.handlers) if m is not None]
            for child in node.body:
                visit(child, path, lazy, " ".join(messages) or message)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, path, lazy, message)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, path, lazy, message)

    for path in sorted(root.rglob("*.py")):
        visit(ast.parse(path.read_text(), str(path)), path.relative_to(root.parent), False, None)
    return found


def problems(found: list[Import], own: set[str], requirements: dict[str, set[str | None]],
             allowed_extras: set[str]) -> list[str]:
    """What a fresh install would lack: modules from no declared distribution, or from an optional
    one (not in ``allowed_extras``) imported at module level or without an error naming its extra."""
    providers = packages_distributions()
    out = []
    for imp in found:
        if imp.module in own or imp.module in sys.stdlib_module_names:
            continue
        # a module no installed distribution provides is looked up under its own name
        dists = {normalize(d) for d in providers.get(imp.module, [imp.module])}
        extras = set().union(*(requirements.get(d, set()) for d in dists))
        if None in extras or extras & allowed_extras:
            continue
        if not extras:
            out.append(f"{imp.where}: `{imp.module}` (distribution {', '.join(sorted(dists))}) is not "
                       "declared in pyproject.toml: add it to [project.dependencies], or to an extra "
                       "and import it lazily")
        elif not imp.lazy:
            out.append(f"{imp.where}: `{imp.module}` comes only with the optional extra(s) "
                       f"{sorted(extras)} but is imported at module level: import it inside the "
                       "function that needs it")
        elif not any(f"cenn[{e}]" in (imp.message or "") for e in extras):
            out.append(f"{imp.where}: `{imp.module}` comes only with the optional extra(s) "
                       f"{sorted(extras)}: catch its ImportError and raise one that says "
                       f"pip install 'cenn[{sorted(extras)[0]}]'")
    return out


REQUIREMENTS = declared(requires("cenn") or [])


def test_every_import_under_src_is_a_declared_dependency():
    found = problems(imports(PACKAGE), {"cenn"}, REQUIREMENTS, set())
    assert not found, "a fresh install would lack:\n" + "\n".join(found)


def test_the_tests_need_only_the_dependencies_and_the_test_extra():
    own = {"cenn"} | {p.stem for p in TESTS.rglob("*.py")}  # conftest, test modules
    found = problems(imports(TESTS), own, REQUIREMENTS, {"test"})
    assert not found, "a fresh install with [test] would lack:\n" + "\n".join(found)
    # modules a test only runs with (pytest.importorskip) belong to some extra
    skipped = [c.args[0].value for p in TESTS.rglob("*.py") for c in ast.walk(ast.parse(p.read_text()))
               if isinstance(c, ast.Call) and getattr(c.func, "attr", None) == "importorskip"
               and c.args and isinstance(c.args[0], ast.Constant)]
    assert "pymaster" in skipped
    providers = packages_distributions()
    for module in skipped:
        assert any(normalize(d) in REQUIREMENTS for d in providers.get(module, [module])), module


def test_an_undeclared_or_eager_optional_import_is_caught(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "eager.py").write_text("import yaml\nimport camb\nimport numpy\n")
    (root / "lazy.py").write_text(
        "def f():\n"
        "    import camb\n"
        "def g():\n"
        "    try:\n"
        "        import camb\n"
        "    except ImportError as err:\n"
        "        raise ImportError(\"needs CAMB: pip install 'cenn[camb]'\") from err\n"
        "    from hopefully_nobody_ships_this import x\n")
    found = problems(imports(root), {"pkg"}, REQUIREMENTS, set())
    assert [f.split(": ")[0] for f in found] == ["pkg/eager.py:1", "pkg/eager.py:2", "pkg/lazy.py:2",
                                                 "pkg/lazy.py:8"]
    assert "`yaml` (distribution pyyaml) is not declared" in found[0]
    assert "imported at module level" in found[1] and "pip install 'cenn[camb]'" in found[2]


def test_the_installed_metadata_is_this_checkout_s_pyproject():
    """A stale install would judge the imports against old requirements: reinstall (pip install -e .)."""
    if not PYPROJECT.exists():
        pytest.skip("cenn is not installed from a checkout")
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"]) + [f'{r}; extra == "{e}"' for e, reqs in
                                             project["optional-dependencies"].items() for r in reqs]
    assert REQUIREMENTS == declared(lines), "the installed cenn is stale: pip install -e ."
