"""The layout shows the architecture, and these tests keep it so.

  memory_bridge/domain/     pure values and rules: imports only itself (and the standard library)
  memory_bridge/ports.py    every Protocol the flows need, each with a fake in tests/fakes.py
  memory_bridge/adapters/   one module per outside system; never imported by a flow
  memory_bridge/deadlines.py  the one home of wall-clock deadlines
  memory_bridge/webhook/, memory_bridge/replay/   the two flows, in small modules
  memory_bridge/runtime.py  the composition root, for both functions and the CLI

Small rooms: no layer module over 300 lines, no class over 250, no function over 60 (ruff's C901
and PLR0915 in `make lint` hold the complexity). No import cycle, function-level imports included,
and no private name imported from another module. The layer holds what Lambda runs and nothing
that only people run; the CLI depends on it, not back.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from memory_bridge import ports
from tests.fakes import FAKES
from tests.support import ROOT

LAYER = ROOT / "layers" / "bridge" / "memory_bridge"
CLI = ROOT / "cli" / "memory_bridge_cli"
DEV = ROOT / "dev" / "memory_bridge_dev"
MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES = 300, 250, 60


def module_name(path: Path) -> str:
    for top in (
        ROOT / "layers" / "bridge",
        ROOT / "cli",
        ROOT / "dev",
        ROOT / "functions" / path.parent.name,
        ROOT,
    ):
        if path.is_relative_to(top):
            parts = path.relative_to(top).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise AssertionError(path)


def layer_modules() -> dict[str, Path]:
    return {module_name(p): p for p in LAYER.rglob("*.py") if "__pycache__" not in p.parts}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in the file, function-level ones included; relative
    imports resolved."""
    package = module_name(path).rsplit(".", 0 if path.stem == "__init__" else 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
    return found


def layer_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The layer modules a file imports (a `from package import module` counts as the module)."""
    out = set()
    for module, names in imports(path):
        if not module.startswith("memory_bridge") or module.startswith(
            ("memory_bridge_cli", "memory_bridge_dev")
        ):
            continue
        submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in modules}
        out |= submodules or {module}
    return out


def test_the_domain_imports_only_itself():
    for name, path in layer_modules().items():
        if not name.startswith("memory_bridge.domain"):
            continue
        for module, _ in imports(path):
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or module.startswith("memory_bridge.domain"), (name, module)


def test_the_flows_never_import_an_adapter():
    """The webhook and the replay depend on ports; only runtime.py wires adapters in."""
    modules = layer_modules()
    for name, path in modules.items():
        if name.startswith(("memory_bridge.webhook", "memory_bridge.replay", "memory_bridge.profiles")):
            adapters = {m for m in layer_imports(path, modules) if m.startswith("memory_bridge.adapters")}
            assert adapters == set(), (name, adapters)


def test_the_adapters_import_no_flow():
    modules = layer_modules()
    for name, path in modules.items():
        if name.startswith("memory_bridge.adapters"):
            flows = {
                m
                for m in layer_imports(path, modules)
                if m.startswith(("memory_bridge.webhook", "memory_bridge.replay"))
            }
            assert flows == set(), (name, flows)


def test_every_port_has_a_fake_with_its_methods():
    protocols = {
        name: cls
        for name, cls in vars(ports).items()
        if inspect.isclass(cls) and getattr(cls, "_is_protocol", False) and cls.__module__ == ports.__name__
    }
    assert set(protocols) == set(FAKES), "a port without a fake, or a fake without a port"
    for name, protocol in protocols.items():
        wanted = {m for m in dir(protocol) if not m.startswith("_") and callable(getattr(protocol, m, None))}
        missing = {m for m in wanted if not callable(getattr(FAKES[name], m, None))}
        assert missing == set(), (name, missing)


def test_deadlines_live_in_one_module():
    for name, path in layer_modules().items():
        if name == "memory_bridge.deadlines":
            continue
        tree = ast.parse(path.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef)}
        assert not defined & {"SocketWatchdog", "call_within", "Deadline", "RequestGuard"}, name
        assert "ThreadPoolExecutor" not in path.read_text(), name


@pytest.mark.parametrize("top", [LAYER], ids=["layer"])
def test_small_rooms(top):
    too_big = []
    for path in top.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                too_big.append(f"{path.relative_to(ROOT)}: class {node.name} {size} lines")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION_LINES:
                too_big.append(f"{path.relative_to(ROOT)}: {node.name}() {size} lines")
    assert too_big == []


def test_no_import_cycle_in_the_layer():
    modules = layer_modules()
    # A module that imports from its own package's __init__ while that __init__ imports the module
    # is a cycle too (it fails at import with "partially initialized module"): edges to a parent
    # package are kept.
    graph = {name: layer_imports(path, modules) & set(modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


OURS = ("memory_bridge", "memory_bridge_cli", "memory_bridge_dev", "tests")


def private_attributes(path: Path) -> list[str]:
    """`module._name` where `module` was imported from this project (import x.y as m, from x import m)."""
    tree = ast.parse(path.read_text())
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith(OURS)}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OURS):
            aliases |= {a.asname or a.name for a in node.names if a.name[:1].islower()}
    return [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for top in (LAYER, CLI, DEV, ROOT / "tests", ROOT / "functions"):
        for path in top.rglob("*.py"):
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in private_attributes(path)]
            for module, names in imports(path):
                hidden = [
                    part for part in module.split(".") if part.startswith("_") and not part.startswith("__")
                ]
                if hidden and module.startswith(OURS):
                    offenders.append(f"{path.relative_to(ROOT)}: {module}")
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                if private and module.split(".")[0] in (
                    "memory_bridge",
                    "memory_bridge_cli",
                    "memory_bridge_dev",
                    "tests",
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: {module} {private}")
    assert offenders == []


def test_the_layer_never_imports_the_cli_or_argparse():
    for path in LAYER.rglob("*.py"):
        names = {module for module, _ in imports(path)}
        assert not [m for m in names if m.startswith(("memory_bridge_cli", "memory_bridge_dev"))], path.name
        assert "argparse" not in names, path.name


def test_every_layer_module_is_reached_from_a_function():
    """A module no function imports (directly or through others) is CLI-only and belongs in cli/."""
    modules = layer_modules()
    todo = [
        m
        for app in ("functions/webhook/app.py", "functions/replay/app.py")
        for m in layer_imports(ROOT / app, modules)
    ]
    reached: set[str] = set()
    while todo:
        module = todo.pop()
        if module in reached or module not in modules:
            continue
        reached.add(module)
        todo.extend(layer_imports(modules[module], modules))
        parent = module.rsplit(".", 1)[0]
        if parent in modules:
            todo.append(parent)  # importing a submodule runs its package's __init__
    assert set(modules) - reached == set()


def test_what_the_webhook_imports_at_init_excludes_the_replay():
    """Run the webhook's app module in a fresh interpreter, as Lambda's init does."""
    script = (
        "import sys, runpy; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "runpy.run_path(sys.argv[3])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('memory_bridge'))\n"
        "print('\\n'.join(loaded))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(ROOT / "layers" / "bridge"),
            str(ROOT / "functions" / "webhook"),
            str(ROOT / "functions" / "webhook" / "app.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "POWERTOOLS_METRICS_NAMESPACE": "Test",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert "memory_bridge.webhook" in loaded and "memory_bridge.runtime" in loaded
    assert [m for m in loaded if m.startswith("memory_bridge.replay")] == []


def test_the_cli_modules_import_common_not_each_other():
    for path in CLI.glob("*.py"):
        if path.stem in ("main", "__init__"):
            continue
        siblings = {module for module, _ in imports(path) if module.startswith("memory_bridge_cli.")}
        assert siblings <= {
            "memory_bridge_cli.common",
            "memory_bridge_cli.stores",
            "memory_bridge_cli.queue_scan",
            "memory_bridge_cli.conversations",
        }, (path.name, siblings)
