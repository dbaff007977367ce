"""Settings every test shares. Import paths (the collection through .collections, scripts/, tests/) come
from pyproject.toml's [tool.pytest.ini_options] pythonpath."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
