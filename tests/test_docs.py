"""The documentation site builds strictly: every page, link, anchor, included example file
and API reference object resolves (``mkdocs build --strict``, as CI runs it)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ADAPTERS = ROOT / "src" / "conveyor" / "adapters"

pytestmark = pytest.mark.processes


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    proc = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr
    # The reference documents every public name of conveyor and conveyor.testing
    for module, page in (("conveyor", "conveyor"), ("conveyor.testing", "testing")):
        html = (tmp_path / "site" / "reference" / page / "index.html").read_text()
        names = importlib.import_module(module).__all__
        missing = [n for n in names if f'id="{module}.{n}"' not in html]
        assert not missing, f"{module} names missing from the reference: {missing}"


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    # Given the site's own validation settings on a page with a dead anchor and a dead link
    text = (ROOT / "mkdocs.yml").read_text()
    validation = text[text.index("\nvalidation:\n") : text.index("\nmarkdown_extensions:")]
    for case, link in (("anchor", "other.md#nowhere"), ("link", "missing.md")):
        folder = tmp_path / case
        (folder / "docs").mkdir(parents=True)
        (folder / "docs" / "index.md").write_text(f"# Home\n\nSee [there]({link}).\n")
        (folder / "docs" / "other.md").write_text("# Other\n")
        config = f"site_name: t\n{validation}\nnav: [index.md, other.md]\n"
        (folder / "mkdocs.yml").write_text(config)
        # When it is built strictly, then it fails and names the link
        proc = _mkdocs(folder / "mkdocs.yml", folder / "site")
        assert proc.returncode != 0, case
        assert link.split("#")[-1] in proc.stderr


def test_every_adapter_package_has_a_reference_page() -> None:
    packages = sorted(p.name for p in ADAPTERS.iterdir() if (p / "__init__.py").exists())
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in packages:
        page = DOCS / "reference" / "adapters" / f"{name}.md"
        assert page.exists(), f"conveyor.adapters.{name} has no reference page"
        assert f"::: conveyor.adapters.{name}" in page.read_text()
        assert f"reference/adapters/{name}.md" in nav


def test_every_example_has_a_page_that_includes_it() -> None:
    pages = "\n".join(p.read_text() for p in (DOCS / "examples").glob("*.md"))
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.name in ("timeouts_and_schedules.py", "connectors_and_metrics.py"):
            assert example.name in pages  # named on the examples index
            continue
        assert f'--8<-- "examples/{example.name}"' in pages, example.name
