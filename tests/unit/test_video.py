"""Video rooms (docs/video.md): the planner (rooms, PINs, members, placement, load per room), the capability
(validate, capacity, notice), the live reconcile of Janus's rooms (create / edit / destroy, against a fake
API), the role's templates rendered by Ansible's templar and read back by the role's own checker
(video-config-check), and the firewall checked by `nft -c`."""
import importlib.machinery
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import video_host as H
from ansible_collections.teleshift.toolkit.plugins.module_utils import video_plan as V
from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import plan_capacity
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import validate
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

from testlib import make_inputs

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "video_rooms"
SERVICES = {"dsi": {"networks": ["10.89.251.0/24"]}, "ase": {"networks": ["10.89.251.30/32"]}, "marches": {}}
ROOMS = [{"name": "commission", "label": "Commission d'appel d'offres", "pin": "4729", "members": ["amartin"],
          "services": ["marches"], "max_members": 6, "phone": "8500"},
         {"name": "direction", "label": "Direction", "pin": 83170, "services": ["dsi"], "max_members": 4,
          "record": True, "bitrate_kbps": 768}]


def person(pid, service="dsi", needs=("vpn",), active=True, lang="fr"):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, needs=frozenset(needs),
                  active=active, language=lang)


PEOPLE = [person("amartin", "ase"), person("bdsi"), person("cmarches", "marches"), person("dgone", "marches",
                                                                                            active=False),
          person("ethin", "marches", needs=("desktop",))]


def inputs_for(rooms=ROOMS, hosts=("v1",), people=PEOPLE, states=None, **extra):
    all_vars = {"teleshift_video_rooms": rooms, "teleshift_services": SERVICES, "teleshift_kits_dir": "/tmp/kits",
                "teleshift_vpn_pool": "10.100.0.0/16", "teleshift_vpn_internal_networks": ["10.89.251.0/24"], **extra}
    hostvars = {h: {"video_rooms_address": f"10.89.251.{50 + i}"} for i, h in enumerate(hosts)}
    return make_inputs(people, groups={"video_hosts": list(hosts)}, hostvars=hostvars, all_vars=all_vars,
                       states=states, services=tuple(SERVICES))


def cap():
    return registry.get("video")


# ------------------------------------------------------------------------------------ planner

def test_rooms_members_and_who_may_join():
    inputs = inputs_for()
    assert not validate(inputs, ["video"]).problems
    plan = cap().plan(inputs)
    assert plan.members == {"commission": ["amartin", "cmarches", "ethin"], "direction": ["bdsi"]}
    assert plan.people["amartin"] == ["commission"] and "dgone" not in plan.people  # leavers join nothing
    assert cap().wants(PEOPLE[0]) and not cap().wants(PEOPLE[3])
    rooms = V.kit_rooms(plan, cap().settings(inputs), "amartin")
    assert rooms == [{"name": "commission", "label": "Commission d'appel d'offres",
                      "url": "https://10.89.251.50/#commission", "pin": "4729", "max_members": 6, "record": False,
                      "phone": "8500"}]
    part = V.host_slice(plan, cap().settings(inputs), "v1")
    assert "pin" not in json.dumps(part) and [r["name"] for r in part["rooms"]] == ["commission", "direction"]
    assert [r["record"] for r in part["rooms"]] == [False, True]  # recorded only where the inventory says so


def test_bad_rooms_are_refused_with_their_field():
    ok2 = {"name": "ok2", "pin": "1234", "record": "yes", "max_members": 1, "members": ["nobody"],
           "services": ["nowhere"], "host": "v9", "colour": "red"}
    bad = [{"name": "Bad Name", "pin": "1"}, {"name": "ok", "pin": "12"}, ok2, {"name": "ok", "pin": "1234"}]
    found = validate(inputs_for(rooms=bad), ["video"])
    fields = {p.field: p.message for p in found.problems}
    assert "teleshift_video_rooms[0].name" in fields and "teleshift_video_rooms[ok].pin" in fields
    assert "left out of the room: nobody not in the roster" in " ".join(str(w) for w in found.warnings)
    for key in ("record", "max_members", "services", "host"):
        assert f"teleshift_video_rooms[ok2].{key}" in fields, (key, fields)
    assert "teleshift_video_rooms[2].colour" in fields and "declared twice" in fields["teleshift_video_rooms[ok].name"]
    assert not any("1234" in m or "12" == m for m in fields.values())  # PINs are never echoed


def test_warnings_for_members_the_vpn_does_not_carry_to_the_room():
    found = validate(inputs_for(), ["video"])
    text = " | ".join(str(w) for w in found.warnings)
    assert "ethin: no vpn need" in text
    assert "service 'ase'" in text and "service 'marches'" in text and "'dsi'" not in text
    ok = inputs_for(teleshift_vpn_common_networks=["10.89.251.50/32"])
    assert "service" not in " ".join(str(w) for w in validate(ok, ["video"]).warnings)


TWO_HOSTS = {"v1": {"video_rooms_address": "10.0.0.1"}, "v2": {"video_rooms_address": "10.0.0.2"}}


def test_placement_is_sticky_and_fills_the_emptiest_host():
    settings = V.load_video_settings({"teleshift_video_rooms": ROOMS},
                                     TWO_HOSTS)
    placed = V.place_rooms(settings, None)
    assert placed == {"commission": "v1", "direction": "v2"}
    more = ROOMS + [{"name": "aaa", "pin": "1111", "max_members": 2}]
    settings = V.load_video_settings({"teleshift_video_rooms": more}, TWO_HOSTS)
    again = V.place_rooms(settings, {"rooms": {n: {"host": h} for n, h in placed.items()}})
    assert {k: again[k] for k in placed} == placed and again["aaa"] == "v2"  # v2: 4 seats against v1's 6


def test_load_per_room_follows_the_sfu_arithmetic():
    a = {"teleshift_capacity_video_streams_per_core": 300}
    room = V.Room("r", "r", "1234", max_members=6, bitrate_kbps=512)
    load = V.room_load(room, a)
    per = (512 + 40) * 1.1 / 1000
    assert load["in_mbps"] == round(6 * per, 1) and load["out_mbps"] == round(30 * per, 1)
    assert load["down_mbps"] == round(5 * per, 2) and load["streams"] == 60 and load["cores"] == 0.2


def test_capacity_checks_per_room_and_per_host():
    inputs = inputs_for(teleshift_capacity_video_host_mbps=20)
    checks = [c for c in plan_capacity(inputs).checks if c.capability == "video"]
    names = [c.resource for c in checks]
    assert names == ["bandwidth (commission)", "cpu (commission)", "bandwidth (direction)", "cpu (direction)",
                     "bandwidth (all rooms at once)", "cpu (all rooms at once)"]
    out = {c.resource: c for c in checks}
    assert out["bandwidth (commission)"].ok and not out["bandwidth (all rooms at once)"].ok  # 18.2 + 10.7 > 20
    section = cap().report_section(inputs, lambda c, h: {"rooms": {"commission": {"participants": 2}}})
    rows = {r[0]: r for r in section["tables"][0]["rows"]}
    assert rows["commission"][-1] == "2" and rows["direction"][-1] == "missing" and rows["direction"][5] == "yes"


def test_notice_lists_the_rooms_with_links_and_puts_pins_on_the_sheet(tmp_path):
    kit = tmp_path / "amartin" / "video"
    kit.mkdir(parents=True)
    (kit / "rooms.yml").write_text(yaml.safe_dump({"rooms": [{"label": "Commission", "url": "https://10.0.0.1/#c",
                                                              "pin": "4729", "max_members": 6, "record": False,
                                                              "phone": "8500"}]}))
    section = cap().notice(PEOPLE[0], kit, "en")
    assert section.data["rooms"][0]["url"] == "https://10.0.0.1/#c"
    assert section.secrets == [("PIN - Commission", "4729")]
    assert "4729" not in json.dumps(section.data)
    (kit / "rooms.yml").write_text("rooms: []\n")
    assert cap().notice(PEOPLE[0], kit, "fr") is None and cap().notice(PEOPLE[0], tmp_path / "none", "fr") is None
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "scripts" / "teleshift_cli" / "templates")),
                             autoescape=True)
    body = ("{% macro steps(s) %}{% endmacro %}{% macro extras(s) %}{% endmacro %}"
            + (ROOT / "scripts/teleshift_cli/templates/notice_video.html.j2").read_text())
    (kit / "rooms.yml").write_text(yaml.safe_dump({"rooms": [{"label": "<b>C</b>", "url": "https://10.0.0.1/#c",
                                                              "pin": "4729", "max_members": 6, "record": True}]}))
    html = env.from_string(body).render(s=cap().notice(PEOPLE[0], kit, "fr"))
    assert 'href="https://10.0.0.1/#c"' in html and "&lt;b&gt;C&lt;/b&gt;" in html and "4729" not in html
    assert "<td>oui</td>" in html


# --------------------------------------------------------------------- live rooms (Janus's API)

class FakeJanus:
    """Janus's VideoRoom requests the module uses, in memory (no PIN is ever listed, as in Janus)."""

    def __init__(self, rooms=None):
        self.rooms = dict(rooms or {})
        self.calls = []

    def request(self, body):
        self.calls.append(body["request"])
        kind, room = body["request"], body.get("room")
        if kind == "list":
            assert body.get("admin_key") == "K"
            return {"list": [dict(r, room=n) for n, r in self.rooms.items()]}
        if kind == "create":
            assert body["admin_key"] == "K" and body["permanent"] is False and room not in self.rooms
            self.rooms[room] = {"description": body["description"], "max_publishers": body["publishers"],
                                "bitrate": body["bitrate"], "record": body["record"], "pin": body["pin"]}
        elif kind == "edit":
            assert body["secret"] == "S"
            self.rooms[room].update(description=body["new_description"], max_publishers=body["new_publishers"],
                                    bitrate=body["new_bitrate"], pin=body["new_pin"])
        elif kind == "enable_recording":
            self.rooms[room]["record"] = body["record"]
        elif kind == "destroy":
            del self.rooms[room]
        return {}


SECRETS = {"admin_key": "K", "room_secret": "S"}


def slice_rooms():
    inputs = inputs_for()
    return V.host_slice(cap().plan(inputs), cap().settings(inputs), "v1")["rooms"]


def test_rooms_are_created_then_left_alone_then_edited_live():
    rooms, pins = slice_rooms(), {"commission": "4729", "direction": "83170"}
    api = FakeJanus({"old": {"description": "x", "max_publishers": 3, "bitrate": 1, "record": False}})
    done, applied = H.apply(api, rooms, pins, SECRETS, "/rec", {})
    assert done == {"create": ["commission", "direction"], "edit": [], "destroy": ["old"]}
    assert api.rooms["direction"]["record"] is True and api.rooms["commission"]["pin"] == "4729"
    api.calls.clear()
    assert H.apply(api, rooms, pins, SECRETS, "/rec", applied)[0] == {"create": [], "edit": [], "destroy": []}
    assert api.calls == ["list"]  # nothing touched: a second run changes nothing
    pins["commission"] = "1111"  # a new PIN cannot be read back: the applied fingerprint tells
    rooms[1] = dict(rooms[1], record=False)
    done, applied = H.apply(api, rooms, pins, SECRETS, "/rec", applied)
    assert done["edit"] == ["commission", "direction"] and api.rooms["commission"]["pin"] == "1111"
    assert api.rooms["direction"]["record"] is False and "destroy" not in api.calls


def test_check_mode_changes_nothing_and_unknown_fingerprints_are_edited_once():
    rooms, pins = slice_rooms(), {"commission": "4729", "direction": "83170"}
    api = FakeJanus()
    done, _ = H.apply(api, rooms, pins, SECRETS, "/rec", {}, check=True)
    assert done["create"] == ["commission", "direction"] and api.rooms == {}
    H.apply(api, rooms, pins, SECRETS, "/rec", {})
    done, _ = H.apply(api, rooms, pins, SECRETS, "/rec", {})  # Janus restarted: what it runs is not known
    assert done == {"create": [], "edit": ["commission", "direction"], "destroy": []}


def test_status_query_output_is_parsed():
    assert H.parse_query('{"rooms": {"a": {"participants": 2}}}\n')["rooms"]["a"]["participants"] == 2
    assert "error" in H.parse_query("") and "error" in H.parse_query("[1]")
    facts = {"rooms": {"commission": {"participants": 1}}}
    ok = cap().person_status(PEOPLE[0], "v1", {"rooms": ["commission"]}, facts, None)
    assert ok.state == "ok" and ok.verified and "commission (1 in)" in ok.facts["meetings now"]
    bad = cap().person_status(PEOPLE[1], "v1", {"rooms": ["direction"]}, facts, None)
    assert bad.state == "problem" and "direction" in bad.problems[0]


# ------------------------------------------------------------------------------- role templates

def checker():
    loader = importlib.machinery.SourceFileLoader("video_config_check", str(ROLE / "files" / "video-config-check"))
    spec = importlib.util.spec_from_loader("video_config_check", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def render(name, variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    defaults.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8")))
    defaults = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in defaults.items()}
    secrets = {"admin_secret": "AS", "admin_key": "AK", "room_secret": "RS", "turn_password": "TP"}
    templar = Templar(loader=DataLoader(), variables={**defaults, "ansible_managed": "Managed by teleshift",
                                                      "_video_rooms_secrets": secrets, **variables})
    return templar.template(trust_as_template((ROLE / "templates" / name).read_text(encoding="utf-8")))


def role_vars():
    inputs = inputs_for()
    part = dict(V.host_slice(cap().plan(inputs), cap().settings(inputs), "v1"), allowed_networks=["10.100.0.0/16"])
    return {"video_rooms_slice": part, "video_rooms_pins": {"commission": "4729", "direction": "83170"}}


def test_janus_files_render_and_pass_the_roles_checker():
    check = checker()
    core = check.parse(render("janus.jcfg.j2", role_vars()))
    assert not check.check_janus("core", core)
    assert core["media"]["rtp_port_range"] == "20000-20999" and core["nat"]["ice_enforce_list"] == "10.89.251.50"
    assert "libjanus_videoroom.so" not in core["plugins"]["disable"] and "libjanus_sip.so" in core["plugins"]["disable"]
    http = check.parse(render("janus.transport.http.jcfg.j2", role_vars()))
    assert not check.check_janus("http", http) and http["general"]["ip"] == "127.0.0.1"
    rooms = check.parse(render("janus.plugin.videoroom.jcfg.j2", role_vars()))
    assert not check.check_janus("videoroom", rooms)
    assert rooms["room-commission"]["pin"] == "4729" and rooms["room-commission"]["record"] is False
    assert rooms["room-direction"]["record"] is True and rooms["room-direction"]["bitrate"] == 768000
    assert rooms["room-commission"]["description"] == "Commission d'appel d'offres"
    assert rooms["general"] == {"admin_key": "AK", "string_ids": True, "events": False}


def test_the_checker_refuses_what_must_not_go_live():
    check = checker()
    with pytest.raises(ValueError, match="line 2"):
        check.parse('general: {\n  a = = 1\n}')
    bad = check.parse('general: { }\nmedia: { rtp_port_range = "99-20" }\n'
                      'plugins: { disable = "libjanus_videoroom.so" }')
    assert len(check.check_janus("core", bad)) == 3
    assert check.check_janus("http", check.parse('general: { ip = "0.0.0.0" }'))
    assert check.check_janus("videoroom", check.parse('general: { }\nroom-a: { description = "a" }')) == [
        "general.admin_key is empty: anyone could create rooms", "room-a has no pin"]


def test_page_settings_and_nginx_site():
    config = json.loads(render("config.json.j2", role_vars()))
    assert config["rooms"] == ["commission", "direction"] and config["ice"][0]["credential"] == "TP"
    assert config["ice"][0]["urls"][0] == "turn:10.89.251.50:3478?transport=udp"
    assert json.loads(render("config.json.j2", {**role_vars(), "video_rooms_turn": False}))["ice"] == []
    site = render("nginx-site.conf.j2", role_vars())
    assert "listen 10.89.251.50:443 ssl;" in site and "proxy_pass http://127.0.0.1:8088/janus" in site
    turn = render("turnserver.conf.j2", role_vars())
    assert "allowed-peer-ip=10.89.251.50" in turn and "denied-peer-ip=0.0.0.0-255.255.255.255" in turn
    assert "min-port=49160" in turn and "user=teleshift:TP" in turn


def test_firewall_admits_the_vpn_pools_only(tmp_path):
    text = render("video-firewall.nft.j2", {**role_vars(), "video_rooms_admin_networks": ["10.89.251.0/24"]})
    assert "policy drop;" in text and "elements = { 10.100.0.0/16 }" in text
    assert "ip saddr @vpn4 udp dport 20000-20999 accept" in text and "th dport 3478 accept" in text
    nft, unshare = shutil.which("nft") or "/usr/sbin/nft", shutil.which("unshare")
    if not (Path(nft).exists() and unshare):
        pytest.skip("no nft or unshare here")
    path = tmp_path / "rules.nft"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([unshare, "-rn", nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("no user namespaces here")
    assert proc.returncode == 0, proc.stderr + text


def test_role_defaults_match_the_planner_and_the_module():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert defaults["video_rooms_rec_dir"] == "/var/lib/janus/recordings"
    from ansible_collections.teleshift.toolkit.plugins.modules import video_rooms

    assert "default: /var/lib/janus/recordings" in video_rooms.DOCUMENTATION
    assert V.DEFAULT_MAX_MEMBERS == 12 and "a full room of 12" in (ROLE / "defaults" / "main.yml").read_text()
