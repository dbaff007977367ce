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


def test_kit_files_are_0600_whatever_the_umask_leave_no_temporary_file_and_replace_a_link(tmp_path):
    import os

    old = os.umask(0o000)
    try:
        write_kit_file(tmp_path, "a", "vpn", "wg.conf", "x")
    finally:
        os.umask(old)
    folder = tmp_path / "a" / "vpn"
    assert mode(folder / "wg.conf") == 0o600
    target = tmp_path / "elsewhere"
    target.write_text("not a kit")
    (folder / "qr.svg").symlink_to(target)  # a link where a kit file goes: replaced, never written through
    assert write_kit_file(tmp_path, "a", "vpn", "qr.svg", "<svg/>") is True
    assert target.read_text() == "not a kit" and not (folder / "qr.svg").is_symlink()
    assert (folder / "qr.svg").read_text() == "<svg/>" and mode(folder / "qr.svg") == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["qr.svg", "wg.conf"]  # no temporary file left
    # a new file is created in place: a dangling link at its name is replaced too, never followed
    (folder / "qr.png").symlink_to(tmp_path / "nowhere")
    assert write_kit_file(tmp_path, "a", "vpn", "qr.png", b"png") is True
    assert not (tmp_path / "nowhere").exists() and not (folder / "qr.png").is_symlink()
    old = os.umask(0o277)  # a umask narrower than 0600 does not leave a new file unreadable to its owner
    try:
        write_kit_file(tmp_path, "b", "vpn", "wg.conf", "y")
    finally:
        os.umask(old)
    assert mode(tmp_path / "b" / "vpn" / "wg.conf") == 0o600 and mode(tmp_path / "b") == 0o700


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


def test_state_written_is_remembered_parsed_and_equal_to_a_fresh_parse(tmp_path, monkeypatch):
    """save_state keeps the parsed form of what it wrote: the next load does not parse the file, and
    what it returns is what parsing the file gives."""
    import yaml

    from ansible_collections.teleshift.toolkit.plugins.module_utils import state as st

    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(tmp_path / "cache"))
    data = {"people": {f"p{i}": {"address": f"10.100.{i // 250}.{i % 250 + 2}", "gateway": "gw1", "n": i,
                                 "flag": i % 2 == 0, "tags": ["yes", "10", "on"]} for i in range(300)}}
    path = tmp_path / "state.yml"
    assert st.save_state(path, data)
    monkeypatch.setattr(yaml, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("parsed again")))
    assert st.load_state(path) == data
    monkeypatch.undo()
    monkeypatch.setenv("TELESHIFT_CACHE", "0")
    assert st.load_state(path) == data  # a real parse of the file gives the same
    assert not st.save_state(path, data)


def test_state_text_reads_back_as_the_same_data_whatever_the_strings():
    """dump_state writes YAML by hand (fast): every value must read back identical, including
    strings YAML 1.1 would take for something else."""
    import yaml
    from hypothesis import given, settings, strategies as st_

    from ansible_collections.teleshift.toolkit.plugins.module_utils import state as st

    tricky = ["yes", "No", "on", "OFF", "null", "~", "1:20", "0x1F", "1_000", "1e5", ".5", "10.100.0.2",
              "10.89.250.10:51820", "+Pz26/4Q=", "-x", "a: b", "#c", " lead", "trail ", "", "é ü", "[x]", "{y}",
              "*ref", "&a", "!tag", "%p", "@at", "`b", "'q'", '"d"', "multi\nline", "tab\there", "a,b"]
    scalars = st_.one_of(st_.sampled_from(tricky), st_.text(max_size=12), st_.integers(), st_.booleans())
    keys = st_.one_of(st_.sampled_from(tricky), st_.text(min_size=1, max_size=8))
    values = st_.recursive(scalars | st_.lists(scalars, max_size=3),
                           lambda inner: st_.dictionaries(keys, inner, max_size=4), max_leaves=12)

    @settings(max_examples=300, deadline=None)
    @given(st_.dictionaries(keys, values, max_size=5))
    def round_trip(data):
        assert yaml.safe_load(st.dump_state(data)) == (data or {})

    round_trip()


def test_kit_directories_are_made_private_even_when_they_existed(tmp_path):
    import os
    import stat as st

    from ansible_collections.teleshift.toolkit.plugins.module_utils import kits

    root = tmp_path / "kits-open"
    (root / "amartin" / "vpn").mkdir(parents=True)
    for path in (root, root / "amartin", root / "amartin" / "vpn"):
        os.chmod(path, 0o755)  # noqa: S103 - the permissive kits the test wants closed
    kits._PRIVATE.clear()
    assert kits.write_kit_file(root, "amartin", "vpn", "profile.conf", "x\n")
    for path in (root, root / "amartin", root / "amartin" / "vpn"):
        assert st.S_IMODE(path.stat().st_mode) == 0o700, path
    assert st.S_IMODE((root / "amartin" / "vpn" / "profile.conf").stat().st_mode) == 0o600


def test_ids_and_names_that_would_leave_the_kits_root_are_refused(tmp_path):
    import pytest

    from ansible_collections.teleshift.toolkit.plugins.module_utils import kits

    for pid, cap, name in (("../outside", "vpn", "x"), ("/etc", "vpn", "x"), ("amartin", "..", "x"),
                           ("amartin", "vpn", "../../x"), ("amartin", "vpn", "..")):
        with pytest.raises(ValueError, match="refusing"):
            kits.write_kit_file(tmp_path / "kits", pid, cap, name, "x")
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()
