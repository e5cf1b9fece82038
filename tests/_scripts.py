"""Load a maintenance script from scripts/ as a module, pointed at a repository copy."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str, root: Path = ROOT) -> ModuleType:
    """``scripts/<name>.py`` as a module whose ``ROOT`` is ``root`` (a copy in tmp_path, say)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root
    return module
