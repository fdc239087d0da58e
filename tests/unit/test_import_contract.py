"""The import contract in .importlinter holds for the tree, and breaks on each kind of forbidden import.

The second half is the proof that the contract is not decorative: a copy of the package with one
forbidden import added must fail `lint-imports`, naming the contract it breaks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([str(LINT_IMPORTS), str(CONFIG), "--no-cache"], cwd=package_parent, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_the_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("contract")
    shutil.copytree(ROOT / "svcnet", parent / "svcnet", ignore=shutil.ignore_patterns("__pycache__"))
    return parent


# (module that gains the import, the import line, words of the contract it must break)
FORBIDDEN = [
    ("svcnet/core/allocator.py", "import subprocess", "Pure cores"),
    ("svcnet/api/meta.py", "import socket", "Pure cores"),
    ("svcnet/api/meta.py", "import svcnet.storage.base", "Layers"),
    ("svcnet/apiserver/http.py", "import svcnet.runtime.sandbox", "The API server reaches nodes"),
    ("svcnet/controllers/scheduler.py", "import svcnet.storage.memory", "Controllers act only through the API"),
    ("svcnet/proxy/plan.py", "import svcnet.dns.names", "Layers"),
    ("svcnet/proxy/plan.py", "import svcnet.testing", "Layers"),
]


@pytest.mark.parametrize(("path", "line", "contract"), FORBIDDEN, ids=[f"{p}:{line}" for p, line, _ in FORBIDDEN])
def test_a_forbidden_import_breaks_the_contract(package_copy: Path, path: str, line: str, contract: str) -> None:
    target = package_copy / path
    original = target.read_text()
    target.write_text(original + f"\n{line}  # added by the contract test\n")
    try:
        result = lint_imports(package_copy)
    finally:
        target.write_text(original)
    assert result.returncode != 0, f"{line} in {path} was not caught"
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, broken[-3000:]
    assert path.removesuffix(".py").replace("/", ".") in broken
