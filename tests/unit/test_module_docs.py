"""Every module, role and plugin documents itself in a form ansible-doc renders.

ansible-doc exits 0 even when a plugin fails to load (it only warns): these tests read what it prints."""
import ast
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
CONNECTIONS = sorted(p.stem for p in (ROOT / "plugins" / "connection").glob("*.py"))
RETURN_KEYS = {"description", "type", "returned", "elements", "sample", "contains", "version_added"}


def docs_of(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}


def ansible_doc(*args):
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-doc"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def fqcn(name):
    return f"teleshift.toolkit.{name}"


def title(kind, name):
    """ansible-doc's heading of one plugin (the name is bold, or *starred* without colours)."""
    return re.compile(rf"^> {kind} \W?{re.escape(fqcn(name))}\W? ", re.M)


def assert_no_complaint(proc):
    noise = [line for line in proc.stderr.splitlines() if "[WARNING]" in line or "ERROR" in line]
    assert not noise, "\n".join(noise)


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_documentation_parses(path):
    docs = docs_of(path)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, f"{path.name} lacks some of its docs"
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert documentation.get("short_description") and documentation.get("description")
    assert isinstance(yaml.safe_load(docs["EXAMPLES"]), list)
    returned = yaml.safe_load(docs["RETURN"]) or {}
    assert isinstance(returned, dict)
    for key, entry in returned.items():
        # a comma in a flow mapping's text makes a key of its own: {description: a, b, type: list}
        assert isinstance(entry, dict) and entry.get("description") and entry.get("type"), key
        assert set(entry) <= RETURN_KEYS and None not in entry.values(), f"RETURN.{key}: {entry}"


@pytest.fixture(scope="module")
def module_docs():
    """ansible-doc's JSON for every module (one process), and its stderr."""
    proc = ansible_doc("--json", *(fqcn(p.stem) for p in MODULES))
    return (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc


def test_ansible_doc_loads_every_module(module_docs):
    docs, proc = module_docs
    assert_no_complaint(proc)
    assert sorted(docs) == sorted(fqcn(p.stem) for p in MODULES)
    for name, doc in docs.items():
        assert doc["doc"]["module"] == name.rsplit(".", 1)[1]
        assert doc["doc"]["short_description"] and doc["doc"]["description"], name
        for key, entry in (doc.get("return") or {}).items():
            assert entry.get("description") and entry.get("type"), f"{name} RETURN.{key}"


def test_ansible_doc_renders_every_module_as_text():
    proc = ansible_doc(*(fqcn(p.stem) for p in MODULES))
    assert_no_complaint(proc)
    for path in MODULES:
        assert title("MODULE", path.stem).search(proc.stdout), path.stem


def test_ansible_doc_renders_every_role():
    assert ROLES
    proc = ansible_doc("-t", "role", "--json", *(fqcn(r) for r in ROLES))
    assert_no_complaint(proc)
    docs = json.loads(proc.stdout)
    text = ansible_doc("-t", "role", *(fqcn(r) for r in ROLES))
    assert_no_complaint(text)
    # each role's part of the text: from its heading to the next one (in ansible-doc's order)
    pieces = re.split(r"^> ROLE: \W?teleshift\.toolkit\.(\w+)\W? .*$", text.stdout, flags=re.M)[1:]
    parts = dict(zip(pieces[::2], pieces[1::2], strict=True))
    assert sorted(parts) == ROLES
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        options = spec["argument_specs"]["main"].get("options") or {}
        main = docs[fqcn(role)]["entry_points"]["main"]
        assert main["short_description"], role
        assert sorted(main.get("options") or {}) == sorted(options), role
        assert re.search(r"^ENTRY POINT: \W?main\W? - ", parts[role], re.M), role
        for option in options:
            assert re.search(rf"^\W*{option}\b", parts[role], re.M), f"{role}: {option}"


def test_ansible_doc_renders_every_connection_plugin():
    proc = ansible_doc("-t", "connection", *(fqcn(n) for n in CONNECTIONS))
    assert_no_complaint(proc)
    for name in CONNECTIONS:
        assert title("CONNECTION", name).search(proc.stdout), name
