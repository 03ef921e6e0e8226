"""Where the project's aws-sam-cli lives and the environment it needs (dev-only).

`sam build` for the python3.13 runtime without Docker needs a python3.13 on PATH; pyenv keeps one
under /root/.pyenv/versions on these machines. aws-sam-cli itself sits in .tools/sam (`make tools`).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAM = PROJECT_ROOT / ".tools" / "sam" / "bin" / "sam"
PYENV_VERSIONS = Path("/root/.pyenv/versions")


def python313_dirs() -> list[Path]:
    return sorted(PYENV_VERSIONS.glob("3.13*/bin")) if PYENV_VERSIONS.exists() else []


def sam_environment() -> dict[str, str]:
    """This process's environment for sam: no telemetry, a region, python3.13 first on PATH, and no
    AWS_ENDPOINT_URL (which points at moto in the tests and would mislead sam)."""
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "PATH": os.pathsep.join([*map(str, python313_dirs()), os.environ.get("PATH", "")]),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    return env
