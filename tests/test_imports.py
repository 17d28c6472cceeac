"""The import graph of src/projlab: no circle between modules, and no import from a lower layer to a higher one.

The layers, lowest first (a module may import its own layer and those below it):

     1  ground      projlab (the package), errors, io, console, cli, run_lock, checks,
                            markdown
     2  records     results, run_folder                      (results.json and the run folder)
     3  parts       data/, projectors/                       (items, prompts, sources; the projectors)
     4  models      models/                                  (tower, LLM, MLLM, feature cache, presets)
     5  training    training/                                (LightningModule, DataModule, likelihood, strategy)
     6  config      schema, config                           (the rules read the parts' option lists)
     7  build       build                                    (config -> objects: the one assembly)
     8  evaluation  evaluation/                              (benchmarks, scoring, and the commands on a run)
     9  tools       analysis/, bench/                        (read results; time the parts built by build)
    10  sweeps      sweeps/                                  (launch `projlab.train` as a process, never import it)
    11  entry       train                                    (compose -> build -> fit -> test -> results)

Every import counts, a function's own included; only imports under `if TYPE_CHECKING:` are left out (they
are never executed: annotations only).
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("projlab", "projlab.errors", "projlab.io", "projlab.console", "projlab.cli", "projlab.run_lock",
                "projlab.checks", "projlab.markdown")),
    ("records", ("projlab.results", "projlab.run_folder")),
    ("parts", ("projlab.data", "projlab.projectors")),
    ("models", ("projlab.models",)),
    ("training", ("projlab.training",)),
    ("config", ("projlab.schema", "projlab.config")),
    ("build", ("projlab.build",)),
    ("evaluation", ("projlab.evaluation",)),
    ("tools", ("projlab.analysis", "projlab.bench")),
    ("sweeps", ("projlab.sweeps",)),
    ("entry", ("projlab.train",)),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "projlab").rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of `module`: its longest matching prefix's."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS (and to the docstring)"
    return rank


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _target(name: str) -> str | None:
    """The module of src/projlab an imported name is (or lives in), None outside projlab."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """The projlab modules `module` imports, at any depth of its code but under `if TYPE_CHECKING:`."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(t for a in node.names if (t := _target(a.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for a in node.names:  # `from pkg import mod` imports the module pkg.mod
                if (t := _target(f"{base}.{a.name}")) and t == f"{base}.{a.name}":
                    found.add(t)
                elif t := _target(base):
                    found.add(t)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = sorted(f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
                    for m, targets in GRAPH.items() for t in targets if layer(t) > layer(m))
    assert not upward, "imports running upward:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_no_circle_between_modules():
    cycles = _cycles(GRAPH)
    assert not cycles, "modules importing each other in a circle: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_walk_sees_imports_of_every_kind():
    """The walk itself: a function's own import counts, `from package import module` names the module."""
    assert "projlab.build" in GRAPH["projlab.train"]  # `from projlab import build`
    assert "projlab.build" in GRAPH["projlab.evaluation.checkpoint_eval"]
    assert "projlab.models.presets" in GRAPH["projlab.schema"]  # imported inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
