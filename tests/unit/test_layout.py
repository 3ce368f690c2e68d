"""The package's shape: one folder per stage of the data path, imports running one way, the facade pinned.

The stages, earliest first (a module may import its own stage and earlier ones, never a later one):

    base       _errors, _version, _csvcell, _settings, attributes, testing
    _pricing   price tables, resolution, the LiteLLM importer
    _capture   what runs inside the user's TracerProvider
    _ledger    the embedded store, OTLP decoding, ingest
    _analysis  rollups, chains, economics, ClickHouse
    _finance   FOCUS, reconciliation, budgets
    _report    table / CSV / JSON / HTML rendering
    _serve     the OTLP/HTTP service (beside analysis: it needs capture and the ledger only)
    top        the facade, configure(), the CLI, the demo: they wire every stage

The walk reads every ``import`` statement, including those inside functions (lazy imports are still edges).
"""

from __future__ import annotations

import ast
from pathlib import Path

import otel_costattr

PKG = Path(otel_costattr.__file__).parent

RANK = {"base": 0, "_pricing": 1, "_capture": 2, "_ledger": 3, "_analysis": 4, "_finance": 5, "_report": 6,
        "_serve": 4, "top": 9}
BASE = {"_errors", "_version", "_csvcell", "_settings", "attributes", "testing"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    path = PKG.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    head = parts[1]
    if head in RANK:
        return head
    if head in BASE:
        return "base"
    return "top"


def _edges() -> list[tuple[str, str]]:
    edges = []
    for path in sorted(PKG.rglob("*.py")):
        mod = _module_name(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                if not root.startswith("otel_costattr"):
                    continue
                # `from . import attributes` names a module (an edge to it, not to the package);
                # `from .x import name` names something in module x
                subs = [f"{root}.{a.name}" for a in node.names if _is_module(f"{root}.{a.name}")]
                targets += subs
                if len(subs) < len(node.names):
                    targets.append(root)
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names if a.name.startswith("otel_costattr")]
            edges += [(mod, t) for t in targets if t != mod]
    return edges


def test_every_import_runs_from_a_later_stage_to_an_earlier_one():
    backward = []
    for src, dst in _edges():
        s, d = _stage(src), _stage(dst)
        if dst == "otel_costattr" and s != "top":
            backward.append(f"{src} imports the facade")
        elif s != d and (RANK[d] >= RANK[s]):
            backward.append(f"{src} ({s}) imports {dst} ({d})")
    assert not backward, "imports against the stage order:\n" + "\n".join(sorted(set(backward)))


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p) for p in PKG.rglob("*.py")}
    for src, dst in _edges():
        # `from .x import name` may name the package x/__init__ or the module; keep real modules only
        if dst in modules:
            graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # the facade and its lazy __getattr__ are allowed to name anything; every other cycle is a bug
    cycles = [c for c in cycles if not c.startswith("otel_costattr -> ")]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_walk_sees_the_stages():
    # guards the two tests above against passing vacuously (e.g. a parser that found no edges)
    stages = {(_stage(s), _stage(d)) for s, d in _edges()}
    assert ("_capture", "_pricing") in stages
    assert ("_analysis", "_ledger") in stages
    assert ("_report", "_finance") in stages
    assert ("top", "_capture") in stages


def test_every_stage_folder_is_private_and_imports_nothing_on_its_own():
    # `import otel_costattr._capture` must not pull in the stage: the facade decides what loads, and when
    for folder in PKG.iterdir():
        if folder.is_dir() and folder.name in RANK:
            init = ast.parse((folder / "__init__.py").read_text())
            assert not [n for n in ast.walk(init) if isinstance(n, (ast.Import, ast.ImportFrom))], folder.name


FACADE = [
    "AttributionBaggageProcessor", "Chain", "ConfigurationError", "Cost", "CostAwareSampler", "CostSpanExporter",
    "CostSpanProcessor", "OtelCostattrError", "Pipeline", "PriceBook", "PricingError", "__version__",
    "attribution", "attribution_keys", "attempt", "attributes", "baggage_processor", "build_chains", "configure",
    "default_book", "format_money", "memory", "price", "propagator", "set_attribution_keys", "set_memory_rule",
    "strip_attribution", "token_layers",
]


def test_the_public_facade_is_pinned_and_every_name_resolves():
    assert sorted(otel_costattr.__all__) == sorted(FACADE)
    for name in FACADE:
        value = getattr(otel_costattr, name)
        if callable(value):
            assert value.__module__ == "otel_costattr", name
