"""Make the collection (through .collections) and the CLI package importable in tests."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / ".collections", ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
