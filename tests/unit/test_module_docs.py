"""Every module documents itself in a form ansible-doc can read (DOCUMENTATION, EXAMPLES, RETURN)."""
import ast
from pathlib import Path

import pytest
import yaml

MODULES = sorted((Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py"))


def docs_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_documentation_parses(path):
    docs = docs_of(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, f"{path.name} lacks some of its docs"
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert documentation.get("short_description") and documentation.get("description")
    assert isinstance(yaml.safe_load(docs["EXAMPLES"]), list)
    returned = yaml.safe_load(docs["RETURN"])
    assert returned is None or isinstance(returned, dict)
