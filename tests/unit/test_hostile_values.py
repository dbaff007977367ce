"""Hostile values in every roster field (issue 11): each is either refused by the roster, on its line
and field, or comes out of every configuration the project writes from the roster escaped, so that
each output, read back by its own format's reader, holds exactly the expected sections, options and
elements. Covered here: WireGuard (gateway config, peer lines, client profiles), the gateway's
nftables rules (the role's template rendered by Ansible's templar, checked by `nft -c` in a private
network namespace when nft is installed), desktop accounts (account lines, passwd/group files, kit
files), state files and the onboarding notices (HTML, both languages). The Asterisk files and the
Cisco IOS CLI have their own tests; the desktop host's firewall holds no roster value."""
import base64
import csv
import dataclasses
import io
import re
import shlex
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop, desktop_accounts as da
from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard as wgm, wireguard_plan as wp
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import COLUMNS, parse_roster
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import dump_state

ROOT = Path(__file__).resolve().parents[2]
BENIGN = ("bbrun,Bob Brun,bob@ex.fr,dsi,high,Siège,laptop,vpn;desktop,,,none,20,no,yes,en")
BASE = dict(zip(COLUMNS, "amartin,Anaïs Martin,anais@ex.fr,rsa,critical,Hôtel,laptop,vpn;desktop;phone,1001,"
                         "06 12 34 56 78,always,20,yes,yes,fr".split(",")))
NASTY = [
    "\r[evil]\r", "a\rb", "a\nb", "a\r\nb", "a\u2028b", "a\u2029b", "a\u0085b", "a\x00b", "a\x1bb", "a\tb",
    "a\u202eb", "a;comment", "a,b", "a|b", 'a"b', "a'b", "a<b>", "</title><script>alert(1)</script>",
    "&amp;", "&#0;", "<!--", "a]b", "[Peer]", "[Interface]", "x = y", "#x", "a#b", "{{ 7*7 }}", "{% raw %}",
    "${HOME}", "$(id)", "`id`", "a\\b", "a:b:c", "a=b", "a}b{", "a@b.c,,dialout=ts-internal|callback=ts-internal",
    "a@b.fr>", "root", "xrdp", "ts-x", "../x", "0123", "10:01", "1_001", "0612345670", "yes", "no", "null",
    "~", "x" * 300, " ", "", "é" * 70, "ǅ", "\ufeff", "\u00a0", "Anaïs Martin", "+33612345678",
    "06 12 34 56 78 ext. 9", "1002",
]
CHARS = "\r\n\t\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\u202e\u200b\ufeff;,|<>\"'&[]=#{}%$`\\:@/. -_+()é€Z0a"
HOSTILE = st.one_of(st.sampled_from(NASTY), st.text(alphabet=st.sampled_from(CHARS), max_size=12), st.text(max_size=10))
SAFE_COMMENT = re.compile(r"[A-Za-z0-9 ._:/+-]{1,64}")


def roster_with(field, value):
    row = dict(BASE, **{field: value})
    out = io.StringIO()
    writer = csv.writer(out)  # CRLF rows: a CR or LF in a value is quoted
    writer.writerow(COLUMNS)
    writer.writerow(BENIGN.split(","))
    writer.writerow([row[c] for c in COLUMNS])
    return parse_roster(out.getvalue(), "csv", "r.csv", services=None)  # any service the roster takes


# ------------------------------------------------------------------------------- format readers

WG_KEYS = {"interface": {"privatekey", "listenport", "fwmark", "address", "dns", "mtu", "table", "preup",
                         "postup", "predown", "postdown", "saveconfig"},
           "peer": {"publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"}}


def read_wg(text):
    """A wg-quick file read as `wg` and wg-quick do (lines end at LF only, '#' starts a comment,
    whitespace is ignored): [(section, {option: value})]; AssertionError on anything else."""
    sections = []
    for number, raw in enumerate(text.split("\n"), 1):
        assert raw.isprintable() or raw == "", f"line {number}: control character in {raw!r}"
        line = "".join(raw.partition("#")[0].split())
        if not line:
            continue
        if line.lower() in ("[interface]", "[peer]"):
            sections.append((line.lower()[1:-1], {}))
            continue
        key, sep, value = line.partition("=")
        assert sep and sections, f"line {number}: not an option: {raw!r}"
        name, options = sections[-1]
        assert key.lower() in WG_KEYS[name] and key.lower() not in options, f"line {number}: {raw!r}"
        options[key.lower()] = value
    return sections


class Structure(HTMLParser):
    """Tags with their attribute names, and the text between them (entities decoded)."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.texts = [], []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(("<", tag, tuple(sorted(name for name, _ in attrs))))

    def handle_endtag(self, tag):
        self.tags.append((">", tag))

    def handle_data(self, data):
        self.texts.append(data)

    def handle_comment(self, data):
        self.tags.append(("!--", data))


def nft_check(text, tmp_path):
    """`nft -c -f` in a private network namespace (never the host's rules); None when not possible."""
    nft, unshare = shutil.which("nft") or "/usr/sbin/nft", shutil.which("unshare")
    if not (Path(nft).exists() and unshare):
        return None
    path = tmp_path / "vpn.nft"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([unshare, "-rn", nft, "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr + proc.stdout:
        return None  # no user namespaces here
    return proc


# ---------------------------------------------------------------------------------- renderers

def key(n):
    return base64.b64encode(bytes([n]) * 32).decode()


def vpn_outputs(people):
    settings = wp.load_vpn_settings({"teleshift_vpn_pool": "10.100.0.0/24", "teleshift_vpn_dns": ["10.89.251.53"],
                                     "teleshift_vpn_internal_networks": ["10.89.251.0/24"]},
                                    {"gw1": {"wireguard_gateway_endpoint": "vpn.example.org"}})
    assert not settings.problems
    users = [p for p in people if p.needs_("vpn")]
    plan = wp.plan_vpn(users, settings, {})
    assert not plan.problems and set(plan.people) == {p.id for p in users}
    public = {pid: key(i + 1) for i, pid in enumerate(sorted(plan.people))}
    gateway = settings.gateways["gw1"]
    part = wp.gateway_slice(plan, gateway, {}, settings, public)
    profiles = {pid: wp.render_client_config(plan.people[pid], key(200), gateway, key(201), settings)
                for pid in plan.people}
    return settings, plan, public, part, profiles


def check_vpn(people, tmp_path):
    settings, plan, public, part, profiles = vpn_outputs(people)
    ids = sorted(plan.people)
    assert [item["id"] for item in wgm.parse_peer_lines(part["peers"])] == ids
    peers = wgm.make_peers(part["peers"])
    config = wgm.render_gateway_config("wg0", part["addresses"], part["port"], "/etc/wireguard/wg0.key", peers)
    sections = read_wg(config)
    assert [name for name, _ in sections] == ["interface"] + ["peer"] * len(ids)
    assert set(sections[0][1]) == {"address", "listenport", "postup"}
    assert [opts["publickey"] for _, opts in sections[1:]] == [public[pid] for pid in ids]
    assert all(set(opts) == {"publickey", "allowedips"} for _, opts in sections[1:])
    _, back = wgm.parse_config(config)
    assert [(p.person, p.public_key) for p in back] == [(pid, public[pid]) for pid in ids]
    for pid, text in profiles.items():
        sections = read_wg(text)
        assert [(n, set(o)) for n, o in sections] == [
            ("interface", {"privatekey", "address", "dns"}),
            ("peer", {"publickey", "allowedips", "endpoint", "persistentkeepalive"})]
        assert sections[0][1]["address"] == f"{plan.people[pid].address}/32"
    assert yaml.safe_load(dump_state(wp.state_of(plan, public, settings=settings))) == \
        wp.state_of(plan, public, settings=settings)
    check_nft(part, plan, tmp_path)


_TEMPLAR = {}


def render_role_template(role, name, variables):
    """A role template rendered the way the play does (Ansible's templar, the role's defaults)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role_dir = ROOT / "roles" / role
    if (role, name) not in _TEMPLAR:
        defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text(encoding="utf-8"))
        # role defaults are templates the play renders (trusted, like a role's own files)
        defaults = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in defaults.items()}
        _TEMPLAR[role, name] = (defaults, (role_dir / "templates" / name).read_text(encoding="utf-8"))
    defaults, source = _TEMPLAR[role, name]
    templar = Templar(loader=DataLoader(), variables={**defaults, **variables})
    return templar.template(trust_as_template(source))


def check_nft(part, plan, tmp_path):
    text = render_role_template("wireguard_gateway", "vpn-firewall.nft.j2", {
        "wireguard_gateway_slice": part, "wireguard_gateway_admin_networks": ["10.89.250.0/24"]})
    services = sorted({p.service for p in plan.people.values()})
    sets = re.findall(r"^\tset (\S+) \{$", text, re.M)
    assert sets == ["admins4", "admins6", "internal4", "internal6"] + [
        f"s{i}_{kind}" for i in range(1, len(services) + 1) for kind in ("clients4", "nets4", "clients6", "nets6")]
    assert re.findall(r"^\tchain (\S+) \{$", text, re.M) == ["input", "forward"]
    comments = re.findall(r'comment "([^"\n]*)"\n', text)
    assert len(comments) == 2 * len(services) == len(re.findall(r"\baccept comment ", text))
    for index, service in enumerate(services):
        assert comments[2 * index] == comments[2 * index + 1]
        assert SAFE_COMMENT.fullmatch(comments[2 * index]), comments[2 * index]
        assert comments[2 * index] == re.sub(r"[^A-Za-z0-9 ._:/+-]", "_", service)[:64]
    for line in text.split("\n"):
        assert line.replace("\t", " ").isprintable()
        assert not line.lstrip().startswith("#") or line.count('"') == 0
    proc = nft_check(text, tmp_path)
    if proc is not None:
        assert proc.returncode == 0, proc.stderr


BASE_DB = dict(passwd="root:x:0:0:root:/root:/bin/bash\nsshd:x:101:65534::/run/sshd:/usr/sbin/nologin\n",
               shadow="root:*:19000:0:99999:7:::\nsshd:!:19000::::::\n",
               group="root:x:0:\nnogroup:x:65534:\nteleshift:x:999:\ntsusers:x:998:\n",
               gshadow="root:*::\nnogroup:*::\nteleshift:!::\ntsusers:!::\n")


def check_desktop(people, tmp_path):
    plan = desktop.plan_desktop(people, {"desk1": 10})
    assert not plan.problems
    accounts = plan.accounts_for("desk1")
    assert da.parse_accounts(da.account_lines(accounts)) == accounts
    for account in accounts:
        assert account.name.isprintable() and not set(account.name) & set(":,=\n")
        assert all(re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", g) for g in account.groups)
    db = da.parse_databases(**BASE_DB)
    changes = da.diff_accounts(accounts, db, "teleshift", "tsusers", "ts-")
    assert not changes.conflicts
    hashes = {a.login: "$6$salt$hash" for a in accounts}
    new, created = da.apply_changes(db, changes, accounts, hashes, today=20000)
    files = {name: da.render(getattr(new, name)) for name in ("passwd", "shadow", "group", "gshadow")}
    back = da.parse_databases(**files)
    assert da.check_databases(back) == []
    users = back.users()
    assert set(users) == {"root", "sshd"} | {a.login for a in accounts}
    for account in accounts:
        assert users[account.login][4] == account.name and users[account.login][6] == "/bin/bash"
    for pid in plan.people_on("desk1"):
        files = desktop.kit_files(plan.people[pid], "desk1", "10.89.251.20")
        assert yaml.safe_load(files["summary.yml"]) == {
            "host": "desk1", "address": "10.89.251.20", "port": 3389, "login": pid,
            "connect (Windows)": f"{pid}.rdp", "connect (Linux)": "connect-linux.sh"}
        rdp = dict(line.split(":", 2)[0::2] for line in files[f"{pid}.rdp"].split("\r\n") if line)
        assert rdp["username"] == pid and rdp["full address"] == "10.89.251.20" and len(rdp) == 13
        command = [line for line in files["connect-linux.sh"].split("\n") if line.startswith("exec ")]
        assert shlex.split(command[0])[:3] == ["exec", "xfreerdp", "/v:10.89.251.20:3389"]
        assert shlex.split(command[0])[3] == f"/u:{pid}"
        for name, content in files.items():
            write_kit_file(tmp_path / "kits", pid, "desktop", name, content)


def notice_of(person, root):
    from teleshift_cli import kits

    if "notice" not in _TEMPLAR:
        _TEMPLAR["notice"] = kits._env().get_template("notice.html.j2")
    return kits.render_notice(_TEMPLAR["notice"], kits.person_view(person, {}), root,
                              {"name": "CD17", "hotline": "05 46 00 00 00"})


TEXT_FIELDS = ("full_name", "email", "service", "site", "extension", "forward_to")


def check_notices(people, tmp_path):
    """Each notice has the same elements as the notice of the same person whose text fields are a
    placeholder, and shows the person's values as text exactly where the placeholder was."""
    root = tmp_path / "kits"
    settings, plan, _, _, profiles = vpn_outputs(people)
    for pid, text in profiles.items():
        write_kit_file(root, pid, "vpn", "teleshift.conf", text)
        write_kit_file(root, pid, "vpn", "teleshift.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    for person in people:
        html = notice_of(person, root)
        marks = {name: f"PLACEHOLDER{index}X" for index, name in enumerate(TEXT_FIELDS)}
        model = notice_of(dataclasses.replace(person, **marks), root)
        got, want = Structure(html), Structure(model)
        assert got.tags == want.tags
        expected = []
        for chunk in want.texts:
            for name, mark in marks.items():
                chunk = chunk.replace(mark, getattr(person, name))
            expected.append(chunk)
        assert "".join(got.texts) == "".join(expected)


def check_everything(roster, tmp_path):
    check_vpn(roster.people, tmp_path)
    check_desktop(roster.people, tmp_path)
    check_notices(roster.people, tmp_path)


# ------------------------------------------------------------------------------------ the tests

def judged(field, value, tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    roster = roster_with(field, value)
    if roster.problems:
        assert {(p.line, p.field) for p in roster.problems} == {(3, field)}, roster.problems
        assert not any(p.line == 3 for p in roster.people)
        return "refused"
    assert len(roster.people) == 2
    check_everything(roster, tmp_path)
    return "rendered"


@pytest.mark.parametrize("field", list(COLUMNS))
def test_issue_values_in_every_field(field, tmp_path):
    outcomes = {value: judged(field, value, tmp_path / str(index)) for index, value in enumerate(NASTY)}
    assert "rendered" in outcomes.values() or field in ("id", "email")


@pytest.mark.parametrize("field, value", [("full_name", "\r[evil]\r"), ("full_name", "a;b"), ("site", "a\u2028b"),
                                          ("email", "a@b.c,,dialout=ts-internal|callback=ts-internal"),
                                          ("email", 'a"b@ex.fr'), ("id", "root"), ("id", "sshd"), ("id", "xrdp"),
                                          ("service", "a\rb"), ("full_name", "a\x00b")])
def test_what_issue_11_saw_is_refused(field, value, tmp_path):
    assert judged(field, value, tmp_path) == "refused"


@pytest.mark.parametrize("field, value", [("full_name", "</title><script>alert(1)</script> & \"co\""),
                                          ("service", 'it"s {{ 7*7 }} [Peer]'), ("site", "#x <b>"),
                                          ("full_name", "{name} {{ p.id }}"), ("service", "é" * 64)])
def test_what_the_roster_takes_comes_out_escaped(field, value, tmp_path):
    assert judged(field, value, tmp_path) == "rendered"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(field=st.sampled_from(list(COLUMNS)), value=HOSTILE)
@example(field="service", value="a\"b\nc")
def test_any_value_in_any_field(field, value, tmp_path_factory):
    judged(field, value, tmp_path_factory.mktemp("hostile"))
