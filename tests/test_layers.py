"""Layers that point one way: no module of `ddro` imports from a layer above its own.

The imports are read from the source (every `import` statement, those inside functions too), so a
lazy import counts like a top-level one.
"""

import ast
from pathlib import Path

import ddro

PACKAGE = Path(ddro.__file__).resolve().parent

# Lowest first. An entry covers the module of that name and everything below it; a module takes
# its longest entry (`ddro.collections.textio` is below the rest of `ddro.collections`).
LAYERS = [
    ["ddro.errors", "ddro.leniency", "ddro.logs", "ddro.registry", "ddro.devices", "ddro.precision", "ddro.distributed",
     "ddro.outputs", "ddro.runs", "ddro.collections.textio", "ddro.texts", "ddro.manifest"],
    ["ddro.collections", "ddro.docids", "ddro.decoding", "ddro.span_ranking", "ddro.batching", "ddro.scoring"],
    ["ddro.models", "ddro.bm25", "ddro.dense", "ddro.evaluation"],
    ["ddro.retrieval", "ddro.released", "ddro.querysets", "ddro.teacher"],
    ["ddro.training"],
    ["ddro.recipes", "ddro.pipeline", "ddro.corpus_change", "ddro.serving", "ddro.pyterrier"],
    ["ddro.cli"],
]
# The one module of training that searches (validation, model negatives).
TRAINING_SEARCH = "ddro.training.selection"


def layer_of(module: str) -> int | None:
    """The layer of a module, None when no entry covers it."""
    matches = [(len(entry), layer) for layer, entries in enumerate(LAYERS) for entry in entries
               if module == entry or module.startswith(entry + ".")]
    return max(matches)[1] if matches else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(source: str, module: str, is_package: bool, known) -> list[tuple[str, int]]:
    """`(imported ddro module, line)` for every import in `source`, wherever it stands.

    `from M import name` imports `M.name` when that is a module (`known`), else `M`; a name the
    top-level package only forwards (`ddro._LAZY`) is imported from the module that defines it."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    found.append((target, node.lineno))
                elif base == "ddro" and alias.name in ddro._LAZY:
                    found.append((ddro._LAZY[alias.name], node.lineno))
                else:
                    found.append((base, node.lineno))
    return [(name, line) for name, line in found if name == "ddro" or name.startswith("ddro.")]


def dependencies() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {name: imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known)
            for name, path in known.items()}


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if name != "ddro" and layer_of(name) is None]
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for name, imported in dependencies().items():
        if name == "ddro":  # the package forwards names lazily from every layer
            continue
        for target, line in imported:
            # `import ddro` itself loads only its light top (errors, version).
            target_layer = 0 if target == "ddro" else layer_of(target)
            if target_layer is None or target_layer > layer_of(name):
                upward.append(f"{name} (layer {layer_of(name)}) -> {target} (layer {target_layer}), line {line}")
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


def test_training_reaches_retrieval_only_through_its_search():
    searching = sorted({name for name, imported in dependencies().items() if name.startswith("ddro.training.")
                        for target, _ in imported if target == "ddro.retrieval"})
    assert searching == [TRAINING_SEARCH]


def test_lazy_relative_and_forwarded_imports_are_read():
    known = {"ddro.docids", "ddro.docids.text", "ddro.training", "ddro.training.sft"}
    source = ("import torch\nfrom ddro.errors import DdroError\n\n"
              "def f():\n    from ddro.training.sft import train_sft\n    from . import text\n"
              "    from ..training import sft\n    from ddro import GenerativeRetriever\n")
    assert imports_of(source, "ddro.docids.schemes", False, known) == [
        ("ddro.errors", 2), ("ddro.training.sft", 5), ("ddro.docids.text", 6), ("ddro.training.sft", 7),
        ("ddro.retrieval", 8)]
    assert layer_of("ddro.collections.textio") == 0 and layer_of("ddro.collections.beir") == 1
    assert layer_of("ddro.training.selection") == 4 and layer_of("ddro.unplaced") is None
