"""desktop_plan with ``mfa: true`` (desktop.yml): the second factor planned in the desktop plan's own task
gives what the mfa_plan action gives on its own right after it (who is enrolled and exempt, each
person's desktop host as just placed), writes the same enrolment kits, and a second run changes nothing.
Through ansible-playbook on the lab inventory, limited to localhost: no host is contacted."""
import yaml
from test_vpn_plan_gate import run

NEW = "zzdesk,Zoé Desk,zoe.desk@departement.example,rh,normal,,thin_client,desktop,,,none,20,no,yes,fr\n"

PLAY = [{"hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "Both plans in one task", "teleshift.toolkit.desktop_plan": {"mfa": True}, "register": "together"},
    {"name": "Read the state the one task wrote", "ansible.builtin.slurp": {"src": "{{ inv }}/state/mfa.yml"},
     "register": "written"},
    {"name": "The second factor's plan on its own", "teleshift.toolkit.mfa_plan": {}, "register": "alone"},
    {"name": "Keep them", "ansible.builtin.copy": {
        "content": "{{ {'together': together, 'alone': alone, 'written': written.content | b64decode} | to_json }}",
        "dest": "{{ out }}", "mode": "0600"}}]}]


def test_the_enrolment_planned_with_the_desktops_is_the_enrolment_planned_after_them(tmp_path):
    first = run(tmp_path, 1, PLAY, NEW)
    together, alone = first["together"]["mfa"], first["alone"]
    assert together["enabled"] and together["enrolled"] == alone["enrolled"] > 0
    assert together["exempt"] == alone["exempt"]
    assert together["new"] and not alone["new"] and not alone["changed"]  # made once, by the desktop task
    state = yaml.safe_load(first["written"])
    assert state["people"]["zzdesk"]["desktop"] == "ts-desk1"  # the host placed in this same task
    for pid in together["new"]:
        secret = tmp_path / "kits" / pid / "mfa" / "secret"
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text().strip()
    assert "second factor:" in first["together"]["msg"]
    second = run(tmp_path, 2, PLAY)
    assert not second["together"]["changed"] and not second["alone"]["changed"]


CHECK = [{"hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "Both plans in check mode", "teleshift.toolkit.desktop_plan": {"mfa": True}, "register": "checked",
     "check_mode": True, "diff": True},
    {"name": "Keep it", "ansible.builtin.copy": {"content": "{{ checked | to_json }}", "dest": "{{ out }}",
                                                  "mode": "0600"}}]}]


def test_check_mode_names_what_each_plan_would_change_and_writes_nothing(tmp_path):
    """The second factor's part runs beside the desktop's (module_utils/background.py): in check mode both
    still compare with the files as they were, each its own, and neither writes."""
    run(tmp_path, 1, PLAY, NEW)
    inv = tmp_path / "inv"
    written = {name: (inv / "state" / name).read_bytes() for name in ("desktop.yml", "mfa.yml")}
    roster = (inv / "roster.csv").read_text(encoding="utf-8")
    # another service: the desktop state changes (its entry names the service), the second factor's does not
    email = "zoe.desk@departement.example"
    (inv / "roster.csv").write_text(roster.replace(f"{email},rh,", f"{email},dsi,"), encoding="utf-8")
    moved = run(tmp_path, 2, CHECK)
    assert moved["changed"] and moved["moved"] == ["zzdesk"] and not moved["added"], moved["msg"]
    assert not moved["mfa"]["changed"]
    # and a new person: both change
    with open(inv / "roster.csv", "a", encoding="utf-8") as stream:
        stream.write(NEW.replace("zzdesk", "zzcheck").replace("Zoé Desk", "Zoé Check").replace("zoe.desk", "zoe.check"))
    checked = run(tmp_path, 3, CHECK)
    assert checked["changed"] and checked["added"] == ["zzcheck"], checked["msg"]
    assert "zzcheck" in checked["mfa"]["added"] and checked["mfa"]["changed"]
    assert "check mode" in checked["mfa"]["msg"]
    assert {name: (inv / "state" / name).read_bytes() for name in written} == written
    assert not (tmp_path / "kits" / "zzcheck").exists()
    diffs = checked["diff"] if isinstance(checked["diff"], list) else [checked["diff"]]
    assert any("zzcheck: ts-desk1 active" in d["after"] for d in diffs)
