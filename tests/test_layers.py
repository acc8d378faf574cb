"""The package's layers import only downward: a module may import from its own layer or any layer
below it, never from one above; and no module imports itself back through others (no import cycle).
Both checks see every import, lazy ones inside functions included. The order is written once, here;
a new top-level module or package must be placed in it."""

import ast
from pathlib import Path

import pytest

import cenn

#: The package root: it re-exports names of lower layers lazily (``cenn._LAZY``), so it sits on top,
#: and no module of the package imports it (``__version__`` comes from ``cenn._version``).
ROOT = "cenn"
#: Low to high. A module belongs to the first entry that is its name or a parent package of it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cenn._version", "cenn.config", "cenn.checksums", "cenn.registry", "cenn.runtime", "cenn.outputs",
     "cenn.io"),
    ("cenn.sky",),
    ("cenn.data",),
    ("cenn.separation",),
    ("cenn.pretrained", "cenn.model"),
    ("cenn.train",),
    ("cenn.baselines",),
    ("cenn.predict",),
    ("cenn.separators",),
    ("cenn.healpix",),
    ("cenn.evaluate",),
    ("cenn.experiment", "cenn.demo"),
    ("cenn.cli", "cenn.__main__"),
    (ROOT,),
)
SRC = Path(cenn.__file__).parent


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of a ``cenn`` module (its own name or its nearest listed parent; the
    root only by its own name)."""
    for index, names in enumerate(LAYERS):
        if any(module == name or (name != ROOT and module.startswith(name + ".")) for name in names):
            return index
    raise LookupError(f"{module} is in no layer of tests/test_layers.py: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = ("cenn", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of the source tree."""
    path = SRC.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> set[str]:
    """The ``cenn`` modules a source file imports (anywhere in it, lazy imports included): ``from
    package import module`` names the module, ``from module import name`` the module; the root adds
    the modules of its lazy names."""
    found = set(cenn._LAZY.values()) if module_name(path) == ROOT else set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cenn"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports (from cenn.… import …)"
            if (node.module or "").split(".")[0] == "cenn":
                found |= {f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module
                          for a in node.names}
    return found


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path):
    module = module_name(path)
    own = layer_of(module)
    upward = sorted(m for m in imported(path) if layer_of(m) > own)
    assert not upward, (f"{module} (layer {own}: {LAYERS[own]}) imports from layers above it: "
                        + ", ".join(f"{m} (layer {layer_of(m)})" for m in upward))


def test_the_check_sees_imports_and_layers():
    assert layer_of("cenn.sky.flat.geometry") < layer_of("cenn.evaluate.report") == layer_of("cenn.evaluate")
    assert "cenn.sky.flat.geometry" in imported(SRC / "model" / "hybrid.py")
    assert module_name(SRC / "sky" / "components" / "__init__.py") == "cenn.sky.components"
    with pytest.raises(LookupError, match="add it to LAYERS"):
        layer_of("cenn.nowhere")
