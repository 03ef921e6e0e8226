"""pyproject.toml finds its packages: a built wheel carries every package and subpackage of the tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.support import ROOT


def test_the_wheel_carries_every_subpackage(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("memory_bridge-*.whl")
    shipped = {
        name.rsplit("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist() if name.endswith("/__init__.py")
    }
    expected = {
        str(init.parent.relative_to(top)).replace("\\", "/")
        for top in (ROOT / "layers" / "bridge", ROOT / "cli", ROOT / "dev")
        for init in top.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert {"memory_bridge/replay", "memory_bridge/domain", "memory_bridge/adapters"} <= expected
    assert expected - shipped == set()
