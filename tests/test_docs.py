"""The documentation: reference pages generated from the code match it, every config key has a doc, the README
stays a landing page, and every page it links to and every page under docs/ is in the site."""
import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("reference_docs", ROOT / "scripts" / "reference_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_match_the_code():
    gen = _generator()
    for name, make in gen.PAGES.items():
        assert (ROOT / "docs" / "reference" / name).read_text() == make(), \
            f"docs/reference/{name} is stale: run python scripts/reference_docs.py"


def test_every_config_key_has_a_doc():
    assert _generator().undocumented() == []


def test_the_readme_is_a_landing_page_whose_links_resolve_and_every_page_is_in_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))["nav"]

    def pages(entry):
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [p for e in entry for p in pages(e)]
        return [p for v in entry.values() for p in pages(v)]

    listed = set(pages(nav))
    present = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert present == listed
