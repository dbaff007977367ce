"""Settings every test shares. Import paths (the collection through .collections, scripts/, tests/) come
from pyproject.toml's [tool.pytest.ini_options] pythonpath."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))

# The parsed-file cache (plugins/module_utils/cache.py) of this test process: a private directory of its
# own, never the user's ~/.cache/teleshift, whose row memo a test's small roster would otherwise replace
# (the next 50,000-person run then parsed everyone again). A test that sets its own keeps it.
if "TELESHIFT_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _CACHE = tempfile.mkdtemp(prefix="teleshift-test-cache-")  # 0700, the user's own
    os.environ["TELESHIFT_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
