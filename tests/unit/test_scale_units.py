"""Scale work (issue 16) in pure Python: the notices written only when their inputs change, a new notice
private and never written through a link, where relative inventory paths resolve (teleshift_base_dir,
generated inventories), and the AWX-style job inventory of the execution-environment runs."""
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import controller
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

from teleshift_cli import kits


def views(n=8):
    return [kits.person_view(p, {}) for p in generate_people(n, seed=5) if p.active]


def notice(root, pid):
    return root / pid / "notice" / "notice.html"


@pytest.mark.parametrize("jobs", [1, 2])
def test_notices_are_rendered_again_only_when_their_inputs_change(tmp_path, jobs, monkeypatch):
    people = views(300 if jobs == 2 else 6)  # 200 or more: the forked workers
    org = {"name": "", "hotline": "+33 1"}
    assert kits.write_notices(people, tmp_path, org, jobs=jobs) == (len(people), 0)
    index = json.loads((tmp_path / kits.INDEX).read_text())
    assert sorted(index) == sorted(p["id"] for p in people)
    renders = []
    original = kits.render_notice
    monkeypatch.setattr(kits, "render_notice", lambda *a: renders.append(a[1]["id"]) or original(*a))
    assert kits.write_notices(people, tmp_path, org, jobs=1) == (0, len(people))
    assert renders == []  # nothing read, nothing rendered
    first = next(p["id"] for p in people if "vpn" in p["needs"])  # their notice shows the profile's address
    second = next(p["id"] for p in people if p["id"] != first)
    write_kit_file(tmp_path, first, "vpn", "teleshift.conf", "[Interface]\nAddress = 10.100.0.9/32\n")
    notice(tmp_path, second).unlink()
    assert kits.write_notices(people, tmp_path, org, jobs=1) == (2, len(people) - 2)
    assert sorted(renders) == sorted([first, second]) and "10.100.0.9" in notice(tmp_path, first).read_text()
    renders.clear()
    assert kits.write_notices(people, tmp_path, dict(org, hotline="+33 2"), jobs=1)[0] == len(people)


def test_a_new_notice_is_private_and_never_written_through_a_link(tmp_path):
    person = views(1)[0]
    folder = tmp_path / person["id"] / "notice"
    folder.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    os.symlink(outside, folder / "notice.html")  # dangling: the notice must replace it, not follow it
    assert kits._write_notice(tmp_path, person["id"], "<html>x</html>")
    assert not outside.exists() and not (folder / "notice.html").is_symlink()
    assert kits._write_notice(tmp_path, person["id"], "<html>y</html>")
    fresh = views(2)[1]
    assert kits._write_notice(tmp_path, fresh["id"], "<html>z</html>")
    for path in (notice(tmp_path, fresh["id"]), tmp_path / fresh["id"] / "notice", tmp_path / fresh["id"]):
        assert stat.S_IMODE(path.stat().st_mode) in (0o600, 0o700), path
    with pytest.raises(ValueError):
        kits._write_notice(tmp_path, "../x", "<html/>")


def test_base_dir_absolute_relative_and_generated(tmp_path):
    script = tmp_path / "inventory" / "hosts"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o700)
    assert controller.base_dir("/srv/volume", "/project", str(script.parent), str(script)) == "/srv/volume"
    assert controller.base_dir("inventories/org", "/project", "/x") == "/project/inventories/org"
    assert controller.base_dir(None, "/project", "/inv", "/inv/hosts.yml") == "/inv"
    with pytest.raises(ValueError, match="teleshift_base_dir"):
        controller.base_dir(None, "/project", str(script.parent), str(script))
    assert controller.project_dir("/runner/project/playbooks") == "/runner/project"
    task_vars = {"ansible_inventory_sources": [str(script)], "playbook_dir": "/runner/project/playbooks",
                 "teleshift_base_dir": "inventories/lab"}
    assert controller.inventory_dir(task_vars) == "/runner/project/inventories/lab"


def test_the_job_inventory_is_an_executable_script_of_the_lab(tmp_path):
    from teleshift_cli import ee
    from teleshift_cli.paths import LAB_INVENTORY

    script = ee.awx_inventory(LAB_INVENTORY / "hosts.yml", tmp_path / "inventory")
    assert os.access(script, os.X_OK) and controller.generated(script)
    data = json.loads(subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout)
    assert "ts-gw1" in data["vpn_gateways"]["hosts"] and data["all"]["vars"]["teleshift_roster_file"] == "roster.csv"
