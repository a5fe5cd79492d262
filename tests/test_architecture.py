"""The layout shows the architecture, and imports only run downwards:

    radfeat_cli (app layer)  →  models  →  radfeat  (→ radfeat.utils)

``radfeat`` never imports ``models`` or the CLI; ``models`` never imports the CLI; nobody imports
another package's private (underscore) modules or names; feature maths (``radfeat.features``) does not
import the orchestration (providers, runner, extraction, CLI).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [alias.name for alias in node.names]))
    return out


def _files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("radfeat", ("models", "radfeat_cli")),
        ("models", ("radfeat_cli",)),
        ("radfeat/features", ("radfeat.providers", "radfeat.runner", "radfeat.extract", "radfeat.case")),
        ("radfeat/utils", ("radfeat.case", "radfeat.providers", "radfeat.runner", "radfeat.habitats")),
    ],
)
def test_imports_run_downwards(package, forbidden):
    bad = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in _files(package)
        for module, _ in _imports(path)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]
    assert not bad, bad


def test_no_private_imports_across_packages():
    bad = []
    for package in ("radfeat", "models", "radfeat_cli"):
        for path in _files(package):
            for module, names in _imports(path):
                top = module.split(".")[0]
                if top not in ("radfeat", "models", "radfeat_cli") or top == package:
                    continue
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                if any(part.startswith("_") for part in module.split(".")[1:]) or private:
                    bad.append(f"{path.relative_to(REPO)}: from {module} import {names}")
    assert not bad, bad


def test_one_habitats_package_and_one_case_loader():
    assert not (REPO / "radfeat" / "features" / "habitats.py").exists()
    assert not (REPO / "radfeat" / "habitats.py").exists()
    readers = []
    for package in ("radfeat", "models"):
        for path in _files(package):
            text = path.read_text()
            if path.name in ("io.py", "case.py", "manifest.py", "filecheck.py"):
                continue
            if "read_mask(" in text or "read_pet_suv(" in text:
                readers.append(str(path.relative_to(REPO)))
    assert not readers, f"cases must be read through radfeat.case.load_case: {readers}"


def test_readme_and_docs_links_resolve_in_a_clone():
    import re

    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
        assert "../shared/docs" not in page.read_text(), f"{page.name} points outside the repository"
