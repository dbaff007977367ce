"""Where things are in a checkout, and the defaults every subcommand shares."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ROOT / "inventories"
LAB_INVENTORY = INVENTORIES / "lab"
CACHE = Path(os.environ.get("TELESHIFT_CACHE", ROOT / ".cache"))
