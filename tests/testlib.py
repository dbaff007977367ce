"""Helpers shared by the unit tests."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def with_lab_people(people):
    """A synthetic roster usable with the lab inventory, whose PBX settings name lab people (queue agents)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster
    from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import merge_people

    return merge_people(people, load_roster(ROOT / "inventories" / "lab" / "roster.csv").people)
