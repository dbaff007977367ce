"""Code that runs on managed hosts imports the standard library and host-side module_utils only: never
the roster, the registry, the front door, the cache or anything else of the controller (a module's
payload carries whatever it imports, and a PBX or gateway has no business reading the roster)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible_collections.teleshift.toolkit.plugins.module_utils."
# modules that run on the controller (connection: local) by design
CONTROLLER_MODULES = {"cme_forwarding"}
CONTROLLER_ONLY = {"roster", "roster_files", "registry", "inputs", "cache", "state", "kits", "settings", "telephony",
                   "capacity", "wireguard_plan", "desktop"}


def imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module[len(PACKAGE):])
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE.rstrip("."):
            found.update(alias.name for alias in node.names)
    return found


def closure(names):
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += imports(ROOT / "plugins" / "module_utils" / f"{name}.py")
    return seen


def test_host_modules_import_no_controller_code():
    checked = 0
    for module in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        if module.stem in CONTROLLER_MODULES or not imports(module):
            continue
        used = closure(imports(module))
        assert not used & CONTROLLER_ONLY, f"{module.name} pulls {sorted(used & CONTROLLER_ONLY)} onto the host"
        checked += 1
    assert checked >= 4  # wireguard_peers, desktop_accounts, asterisk_config, asterisk_forwarding
