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
