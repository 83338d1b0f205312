"""The package layout: imports run one way (docs/architecture.md), checked on the source.

Every import of a module under learning/ or environments/ counts, including imports inside
functions and under TYPE_CHECKING, so a circle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"run", "run_policy", "garage_experiments", "sweep"}
TABLE = "learning.experiment_table"
LAYERS = {
    # package -> the packages of the library it may import (besides itself); every layer of learning/
    # may read the experiment table, which imports nothing of the library
    "environments": set(),
    TABLE: set(),
    "learning.core": {"environments", TABLE},
    "learning.behaviour": {"environments", "learning.core", TABLE},
    "learning.baselines": {"environments", "learning.core", TABLE},
    "learning.training": {"environments", "learning.core", "learning.behaviour", TABLE},
    "learning.experiments": {"environments", "learning.core", "learning.behaviour", "learning.baselines",
                             "learning.training", TABLE},
    "learning.sweeps": {"learning.training", TABLE},
    "learning.analysis": {"environments", "learning.core", "learning.behaviour", "learning.baselines",
                          "learning.training", "learning.experiments", "learning.sweeps", TABLE},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def library_modules() -> dict[str, Path]:
    return {module_name(path): path for top in ("learning", "environments") for path in (ROOT / top).rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> str | None:
    for layer in sorted(LAYERS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    return {name: {imported for imported in imported_modules(path) if imported in modules and imported != name}
            for name, path in modules.items()}


def test_every_library_module_belongs_to_a_layer():
    assert [name for name in library_modules() if name != "learning" and layer_of(name) is None] == []


def test_no_library_module_imports_a_top_level_script():
    offenders = {name: sorted(imported_modules(path) & SCRIPTS) for name, path in library_modules().items()}
    assert {name: scripts for name, scripts in offenders.items() if scripts} == {}


def test_imports_follow_the_layers():
    wrong = []
    for module, imports in import_graph().items():
        layer = layer_of(module)
        if layer is None:
            continue
        for imported in imports:
            target = layer_of(imported)
            if target is not None and target != layer and target not in LAYERS[layer]:
                wrong.append(f"{module} -> {imported}")
    assert wrong == []


def test_no_import_circles():
    graph = import_graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == []


def test_learning_code_never_imports_a_concrete_environment():
    """learning/ sees environments only through the registry (``environments``) and ``environments.base``:
    arenas for plots and videos come from the task set, not from an environment module."""
    modules = library_modules()
    concrete = {name for name in modules if name.startswith("environments.")} - {"environments.base"}
    wrong = {name: sorted(imported_modules(path) & concrete) for name, path in modules.items()
             if name.startswith("learning")}
    assert {name: imports for name, imports in wrong.items() if imports} == {}


def test_the_training_loop_and_the_update_never_read_the_command_line_config():
    """The trainer, the sampler, the evaluation, the SAC update, the baselines' updates and the behaviour
    policies take their own settings (Budget, Schedule, SACSettings, option dataclasses); only the
    composition root (experiments.py), the logger (W&B records the whole configuration) and the memory
    estimate read ``Config``."""
    readers = {name for name, path in library_modules().items()
               if "learning.training.config" in imported_modules(path)}
    loop = {"learning.training.trainer", "learning.training.sampler", "learning.training.evaluation",
            "learning.core.sac", "learning.behaviour.qswitch", "learning.behaviour.ctpg",
            "learning.behaviour.ctpg_learner", *(f"learning.baselines.{name}" for name in
                                                 ("dnc", "data_sharing", "pcgrad", "mcal", "decaf"))}
    assert loop <= set(library_modules())
    assert readers & loop == set()
