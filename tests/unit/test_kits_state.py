"""Kit files keep secrets private and stable; state files are atomic and reviewable."""
import stat

from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import kept_secret, write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state, save_state


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_private_and_not_rotated(tmp_path):
    first = kept_secret(tmp_path, "amartin", "desktop", "password")
    assert len(first) >= 16
    assert kept_secret(tmp_path, "amartin", "desktop", "password") == first
    assert kept_secret(tmp_path, "amartin", "desktop", "password", rotate=True) != first
    assert mode(tmp_path / "amartin" / "desktop" / "password") == 0o600
    assert mode(tmp_path / "amartin") == 0o700 and mode(tmp_path / "amartin" / "desktop") == 0o700


def test_kit_file_reports_change_only_when_content_changes(tmp_path):
    assert write_kit_file(tmp_path, "a", "vpn", "wg.conf", "x") is True
    assert write_kit_file(tmp_path, "a", "vpn", "wg.conf", "x") is False
    assert write_kit_file(tmp_path, "a", "vpn", "wg.conf", "y") is True


def test_state_round_trip_is_sorted_and_idempotent(tmp_path):
    path = tmp_path / "state" / "vpn.yml"
    assert save_state(path, {"peers": {"zoe": "10.0.0.3", "anais": "10.0.0.2"}}) is True
    text = path.read_text()
    assert text.index("anais") < text.index("zoe") and text.startswith("#")
    assert save_state(path, {"peers": {"anais": "10.0.0.2", "zoe": "10.0.0.3"}}) is False
    assert load_state(path)["peers"]["zoe"] == "10.0.0.3"
    assert load_state(tmp_path / "missing.yml") == {}


def test_inventory_dir_prefers_the_source_with_group_vars(tmp_path):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir

    ephemeral = tmp_path / "molecule" / "inventory"
    ephemeral.mkdir(parents=True)
    ours = tmp_path / "inv"
    (ours / "group_vars" / "all").mkdir(parents=True)
    sources = [str(ephemeral), str(ours / "hosts.yml")]
    assert inventory_dir({"ansible_inventory_sources": sources}) == str(ours)
    assert inventory_dir({"inventory_dir": "/x", "ansible_inventory_sources": sources}) == "/x"
    assert inventory_dir({"ansible_inventory_sources": [str(ephemeral)]}) == str(ephemeral)
