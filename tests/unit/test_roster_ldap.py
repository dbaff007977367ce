"""The directory as the roster source: settings, the mapping of entries to roster rows (same rules as
the CSV, problems located by DN and attribute), the paged search against a stand-in connection with
python-ldap's own API, the front door and `roster export`."""
import csv
import io
from pathlib import Path

import ldap
import pytest
from ldap.controls import SimplePagedResultsControl

from ansible_collections.teleshift.toolkit.plugins.module_utils import directory_ldif, roster_ldap
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import build_inputs, validate
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

ROOT = Path(__file__).resolve().parents[2]
BASE = "OU=People,DC=lab,DC=example"
GROUPS_OU = "OU=Groups,DC=lab,DC=example"
GROUPS = {"Teleshift VPN": {"needs": ["vpn"]}, "Teleshift Desktop": {"needs": ["desktop"]},
          "Teleshift Phone": {"needs": "phone"}, "Priority critical": {"priority": "critical"},
          "Priority high": {"priority": "high"},
          "Service rsa": {"service": "rsa"}, "Service dsi": {"service": "dsi"}}


def settings(**extra):
    value = {"type": "ldap", "uri": "ldaps://dc.example", "base_dn": BASE, "bind_dn": "CN=reader,DC=lab,DC=example",
             "bind_password": "s3cret-bind", "groups": GROUPS}
    value.update(extra)
    return value


def source(**extra):
    src, problems = roster_ldap.parse_source(settings(**extra), Path)
    assert not problems, problems
    return src


def user(uid, groups=("Service rsa", "Teleshift VPN"), uac="512", **attrs):
    found = {"samaccountname": [uid], "displayname": [uid.title()], "mail": [f"{uid}@lab.example"],
             "useraccountcontrol": [uac], "memberof": [f"CN={g},{GROUPS_OU}" for g in groups]}
    found.update({k.lower(): [v] for k, v in attrs.items()})
    return f"CN={uid},{BASE}", found


def roster_of(entries, **extra):
    return roster_ldap.roster_from_entries(entries, source(**extra), services=("rsa", "dsi"))


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("extra, where, words", [
    ({"uri": "ldap://dc.example"}, "uri", "plain LDAP"),
    ({"uri": "http://dc.example"}, "uri", "not one ldaps://"),
    ({"uri": ""}, "uri", "required"),
    ({"base_dn": None}, "base_dn", "required"),
    ({"bind_password": ""}, "bind_password", "go together"),
    ({"page_size": 0}, "page_size", "from 1 to 5000"),
    ({"colour": "blue"}, "colour", "unknown key"),
    ({"groups": {"G": {"priority": "urgent"}}}, "groups.G.priority", "not one of"),
    ({"groups": {"G": {"needs": ["vpn"]}}}, "groups", "no service"),
    ({"attributes": {"needs": "memberOf"}}, "attributes.needs", "needs come from groups"),
    ({"defaults": {"id": "x"}}, "defaults.id", "not an optional"),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file", "is not a file"),
    ({"filter": "objectClass=user"}, "filter", "not an LDAP filter"),
])
def test_bad_settings_are_named_by_key(extra, where, words):
    src, problems = roster_ldap.parse_source(settings(**extra), Path)
    assert src is None
    assert any(p.field == f"teleshift_roster_source.{where}" and words in p.message for p in problems), problems


def test_plain_ldap_needs_explicit_consent_and_starttls_is_its_own():
    assert source(uri="ldap://dc.example", allow_starttls=True).starttls
    plain = source(uri="ldap://dc.example", allow_plain=True)
    assert not plain.starttls
    assert not source().starttls


def test_the_bind_password_never_shows_in_a_problem_or_repr():
    src, problems = roster_ldap.parse_source(settings(page_size="x", colour=1), Path)
    assert problems and not any("s3cret" in str(p) for p in problems)
    assert "s3cret" not in repr(source())


# ---------------------------------------------------------------- entries -> roster

def test_attributes_and_groups_make_the_person():
    roster = roster_of([user("BMartin", groups=("Service dsi", "Teleshift VPN", "Teleshift Phone",
                                                 "Priority high", "Priority critical"),
                             telephoneNumber="1004", mobile="06 12 34 56 78"),
                        user("alice", ipPhone="1005")])
    assert roster.ok, roster.problems
    alice, bmartin = roster.people  # id order
    assert (bmartin.id, bmartin.service, bmartin.priority) == ("bmartin", "dsi", "critical")
    assert bmartin.needs == {"vpn", "phone"} and bmartin.extension == "1004"
    assert bmartin.forward_to == "+33612345678" and bmartin.forward_mode == "none"
    assert alice.extension == "1005" and alice.priority == "normal" and alice.active


def test_defaults_fill_what_the_directory_lacks_and_forwarding_needs_a_mobile():
    roster = roster_of([user("amobile", mobile="0612345678", telephoneNumber="1001"), user("bnone")],
                       defaults={"forward_mode": "no_answer", "language": "en", "voicemail": True})
    first, second = roster.people
    assert (first.forward_mode, first.language, first.voicemail) == ("no_answer", "en", True)
    assert (second.forward_mode, second.language) == ("none", "en")


def test_a_disabled_account_or_leaving_the_groups_makes_the_person_inactive():
    roster = roster_of([user("disabled", uac="514"), user("leftgroups", groups=("Service rsa",)),
                        user("gone", groups=()), user("stays")])
    by_id = roster.by_id()
    assert not by_id["disabled"].active and by_id["stays"].active
    assert by_id["leftgroups"].active and not by_id["leftgroups"].needs  # no need group: nothing served
    assert "gone" not in by_id and roster.skipped == 1  # in no mapped group, no service: nobody teleshift serves
    kept = roster_of([user("gone", groups=(), department="rsa")], attributes={"service": "department"})
    assert [(p.id, p.service, p.active) for p in kept.people] == [("gone", "rsa", False)]


def test_problems_name_the_dn_and_the_attribute_with_the_csv_rules():
    roster = roster_of([user("badphone", mobile="06 12"), user("twice", groups=("Service rsa", "Service dsi")),
                        user("nomail", mail=""), user("root"), user("dup"), user("Dup")])
    text = [str(p) for p in roster.problems]
    assert f"CN=badphone,{BASE}: mobile: '06 12' is not a valid phone number" in text
    assert any(t.startswith(f"CN=twice,{BASE}: memberOf: member of groups of several services") for t in text)
    assert f"CN=nomail,{BASE}: mail: required field is empty" in text
    assert any(t.startswith(f"CN=root,{BASE}: sAMAccountName: 'root' is the name of a system account") for t in text)
    assert any(t.startswith((f"CN=Dup,{BASE}: sAMAccountName: 'dup' is already used by CN=dup,{BASE}",
                             f"CN=dup,{BASE}: sAMAccountName: 'dup' is already used by CN=Dup,{BASE}")) for t in text)
    assert {p.id for p in roster.people} == {"dup"} or {p.id for p in roster.people} == set()


def test_an_unreadable_user_account_control_is_a_problem_not_an_active_person():
    roster = roster_of([user("odd", uac="lots")])
    assert not roster.people
    assert roster.problems[0].field == "userAccountControl"


def test_the_directory_and_the_csv_give_the_same_people():
    people = load_roster(ROOT / "inventories" / "lab" / "roster.csv").people
    attributes = {"site": "physicalDeliveryOfficeName", "language": "preferredLanguage", "device": "employeeType",
                  "forward_mode": "comment", "forward_delay": "pager", "voicemail": "info", "priority": "title"}
    groups = {f"Service {s}": {"service": s} for s in {p.service for p in people}}
    groups.update({f"Teleshift {n}": {"needs": [n]} for n in ("vpn", "desktop", "phone")})
    entries = directory_ldif.entries(people, {**roster_ldap.DEFAULT_ATTRIBUTES, **attributes}, groups, BASE,
                                     GROUPS_OU)
    src, problems = roster_ldap.parse_source(settings(groups=groups, attributes=attributes), Path)
    assert not problems
    # the lab's one inactive person is a disabled account: still listed, since they are still in their groups
    roster = roster_ldap.roster_from_entries(entries, src, services={p.service for p in people})
    assert roster.ok, roster.problems
    strip = lambda p: {k: v for k, v in p.__dict__.items() if k != "line"}  # noqa: E731
    assert sorted(map(strip, roster.people), key=lambda d: d["id"]) == sorted(map(strip, people), key=lambda d: d["id"])


# ---------------------------------------------------------------- the paged search

class FakeDirectory:
    """python-ldap's LDAPObject API over a list of entries, answering in pages with cookies."""

    def __init__(self, entries, fail=None, references=False):
        self.entries, self.fail, self.references = entries, fail, references
        self.options, self.calls, self.bound = {}, [], None

    def __call__(self, src):  # the connect function
        self.options["uri"] = src.uri
        return self

    def set_option(self, name, value):
        self.options[name] = value

    def start_tls_s(self):
        self.calls.append("starttls")

    def simple_bind_s(self, who, cred):
        if self.fail == "bind":
            raise ldap.INVALID_CREDENTIALS({"desc": "Invalid credentials", "info": "80090308: LdapErr"})
        self.bound = who

    def search_ext(self, base, scope, filterstr, attrlist, serverctrls):
        if self.fail == "down":
            raise ldap.SERVER_DOWN({"desc": "Can't contact LDAP server"})
        page = serverctrls[0]
        start = int(page.cookie or b"0")
        self.calls.append((base, filterstr, tuple(attrlist), page.size, start))
        chunk = [(dn, {k: [v.encode() for v in vals] for k, vals in attrs.items()})
                 for dn, attrs in self.entries[start:start + page.size]]
        if self.references:
            chunk.append((None, ["ldaps://dc.example/DC=DomainDnsZones,DC=lab,DC=example"]))
        more = start + page.size < len(self.entries)
        cookie = str(start + page.size).encode() if more else b""
        self._reply = (101, chunk, 1, [SimplePagedResultsControl(True, size=page.size, cookie=cookie)])
        return 1

    def result3(self, msgid, timeout):
        return self._reply

    def unbind_s(self):
        self.calls.append("unbind")


def test_the_search_reads_every_page_skips_references_and_verifies_the_certificate():
    entries = [user(f"u{i:03d}") for i in range(25)]
    fake = FakeDirectory(entries, references=True)
    found = roster_ldap.search(source(page_size=10, ca_file=__file__), connect=fake)
    assert [dn for dn, _ in found] == [dn for dn, _ in entries]
    assert [c[4] for c in fake.calls if isinstance(c, tuple)] == [0, 10, 20]
    assert fake.calls[-1] == "unbind" and "starttls" not in fake.calls
    assert fake.bound == "CN=reader,DC=lab,DC=example"
    base, flt, attrs, size, _ = fake.calls[0]
    assert base == BASE and flt == roster_ldap.AD_FILTER and size == 10
    assert {"sAMAccountName", "mail", "mobile", "memberOf", "userAccountControl"} <= set(attrs)
    real = roster_ldap._connect_ldap(source(ca_file=__file__))  # python-ldap's own object: options set
    assert real.get_option(ldap.OPT_X_TLS_REQUIRE_CERT) == ldap.OPT_X_TLS_DEMAND
    assert real.get_option(ldap.OPT_X_TLS_CACERTFILE) == __file__


def test_starttls_is_used_when_allowed():
    fake = FakeDirectory([user("a")])
    roster_ldap.search(source(uri="ldap://dc.example", allow_starttls=True), connect=fake)
    assert fake.calls[0] == "starttls"


def test_the_search_is_bounded():
    fake = FakeDirectory([user(f"u{i}") for i in range(30)])
    with pytest.raises(roster_ldap.DirectoryError, match="more than 15 entries"):
        roster_ldap.search(source(page_size=10, max_entries=15), connect=fake)


@pytest.mark.parametrize("fail, words", [("bind", "Invalid credentials"), ("down", "Can't contact LDAP server")])
def test_an_unreadable_directory_is_one_problem_that_stops_everything(fail, words):
    roster = roster_ldap.load_directory(source(), services=("rsa",), connect=FakeDirectory([], fail=fail))
    assert not roster.people and len(roster.problems) == 1
    assert words in roster.problems[0].message and "s3cret" not in str(roster.problems[0])
    assert roster.problems[0].source == f"ldaps://dc.example ({BASE})"


# ---------------------------------------------------------------- the front door and the CLI

def vars_with(src):
    return {"teleshift_services": {"rsa": {}, "dsi": {}}, "teleshift_roster_source": src,
            "teleshift_kits_dir": "kits"}


def test_the_front_door_reads_the_directory_and_a_roster_file_overrides_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TELESHIFT_CACHE", "0")
    monkeypatch.setattr(roster_ldap, "_connect_ldap", FakeDirectory([user("alice"), user("bob", mobile="07")]))
    inputs = build_inputs(vars_with(settings()), {}, {}, tmp_path)
    problems = validate(inputs).problems
    assert [str(p) for p in problems] == [f"CN=bob,{BASE}: mobile: '07' is not a valid phone number"]
    csv_file = tmp_path / "staff.csv"
    csv_file.write_text("id,full_name,email,service\ncarol,Carol,carol@x.example,rsa\n")
    override = build_inputs(vars_with(settings()), {}, {}, tmp_path, roster=str(csv_file))
    assert [p.id for p in override.roster.people] == ["carol"]


def test_a_directory_that_suddenly_returns_nobody_revokes_nobody(monkeypatch, tmp_path):
    monkeypatch.setenv("TELESHIFT_CACHE", "0")
    monkeypatch.setattr(roster_ldap, "_connect_ldap", FakeDirectory([]))
    inputs = build_inputs(vars_with(settings()), {}, {}, tmp_path)
    assert any("lists nobody" in p.message for p in validate(inputs).problems)


def test_roster_export_writes_what_the_directory_yields(monkeypatch, tmp_path, capsys):
    from teleshift_cli.main import main

    monkeypatch.setenv("TELESHIFT_CACHE", "0")
    inventory = tmp_path / "inv"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    import yaml
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(vars_with(settings())))
    people = [user("zoe", groups=("Service dsi", "Teleshift Desktop"), uac="514"),
              user("adam", mobile="+33 6 12 34 56 78")]
    monkeypatch.setattr(roster_ldap, "_connect_ldap", FakeDirectory(people))
    out = tmp_path / "export.csv"
    assert main(["roster", "export", "--inventory", str(inventory), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["id"], r["service"], r["needs"], r["active"], r["forward_to"]) for r in rows] == [
        ("adam", "rsa", "vpn", "yes", "+33612345678"), ("zoe", "dsi", "desktop", "no", "")]
    assert "2 people (1 active)" in capsys.readouterr().err
    monkeypatch.setattr(roster_ldap, "_connect_ldap", FakeDirectory(people + [user("bad", mail="x@")]))
    out.unlink()
    assert main(["roster", "export", "--inventory", str(inventory), "-o", str(out)]) == 1
    assert not out.exists() and f"CN=bad,{BASE}: mail: 'x@' is not a plain email" in capsys.readouterr().err


def test_the_bind_password_may_come_from_ansible_vault(monkeypatch, tmp_path):
    from ansible.parsing.vault import VaultLib, VaultSecret

    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import from_inventory

    monkeypatch.setenv("TELESHIFT_CACHE", "0")
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    inventory = tmp_path / "inv"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    import yaml
    src = settings(bind_password="{{ vault_bind_password }}")
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(vars_with(src)))
    (tmp_path / "pass").write_text("vault-pass-123\n")
    secret = VaultSecret(b"vault-pass-123")
    encrypted = VaultLib([("default", secret)]).encrypt("from-the-vault", secret).decode()
    (inventory / "group_vars" / "all" / "vault.yml").write_text(
        "vault_bind_password: !vault |\n" + "".join(f"  {line}\n" for line in encrypted.splitlines()))
    fake = FakeDirectory([user("alice")])
    binds = []
    fake.simple_bind_s = lambda who, cred: binds.append(cred)
    monkeypatch.setattr(roster_ldap, "_connect_ldap", fake)
    inputs = from_inventory(inventory, vault_password_file=str(tmp_path / "pass"))
    assert binds == ["from-the-vault"] and [p.id for p in inputs.roster.people] == ["alice"]


def test_five_thousand_directory_people_validate_like_the_generated_csv():
    people = generate_people(5000, seed=3)
    groups = {f"Service {s}": {"service": s} for s in {p.service for p in people}}
    groups.update({f"Teleshift {n}": {"needs": [n]} for n in ("vpn", "desktop", "phone")})
    groups.update({f"Priority {p}": {"priority": p} for p in ("critical", "high", "low")})
    entries = directory_ldif.entries(people, roster_ldap.DEFAULT_ATTRIBUTES, groups, BASE, GROUPS_OU)
    src, _ = roster_ldap.parse_source(settings(groups=groups, defaults={"forward_mode": "no_answer"}), Path)
    roster = roster_ldap.roster_from_entries(entries, src, services={p.service for p in people})
    assert roster.ok, roster.problems[:3]
    assert len(roster.people) == 5000
    assert {p.id: p.needs for p in roster.people} == {p.id: p.needs for p in people}
    assert {p.id: p.priority for p in roster.people} == {p.id: p.priority for p in people}
