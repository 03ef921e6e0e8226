"""The layer holds what Lambda runs and nothing that only people run; the CLI depends on it, not back."""

from __future__ import annotations

import ast

from tests.support import ROOT

LAYER = ROOT / "layers" / "bridge" / "memory_bridge"
CLI = ROOT / "cli" / "memory_bridge_cli"


def imported_modules(path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_layer_never_imports_the_cli_or_argparse():
    for path in LAYER.glob("*.py"):
        imports = imported_modules(path)
        assert not [m for m in imports if m.startswith(("memory_bridge_cli", "memory_bridge_dev"))], path.name
        assert "argparse" not in imports, path.name


def test_every_layer_module_is_reached_from_a_function():
    """A module no function imports (directly or through others) is CLI-only and belongs in cli/."""
    reached: set[str] = set()
    todo = [
        m
        for app in ("functions/webhook/app.py", "functions/replay/app.py")
        for m in imported_modules(ROOT / app)
        if m.startswith("memory_bridge.")
    ]
    while todo:
        module = todo.pop()
        if module in reached or not (LAYER / f"{module.split('.')[1]}.py").exists():
            continue
        reached.add(module)
        todo.extend(
            m
            for m in imported_modules(LAYER / f"{module.split('.')[1]}.py")
            if m.startswith("memory_bridge.")
        )
    shipped = {f"memory_bridge.{p.stem}" for p in LAYER.glob("*.py") if p.stem != "__init__"}
    assert shipped - reached == set()


def test_the_cli_modules_import_common_not_each_other():
    for path in CLI.glob("*.py"):
        if path.stem in ("main", "__init__"):
            continue
        siblings = {m for m in imported_modules(path) if m.startswith("memory_bridge_cli.")}
        assert siblings <= {
            "memory_bridge_cli.common",
            "memory_bridge_cli.stores",
            "memory_bridge_cli.queue_scan",
        }, (
            path.name,
            siblings,
        )
