"""Telephony compile: number policy, PBX settings validation, PJSIP/dialplan rendering, AstDB diffs, kits."""
import io
import re
import stat
import time

import phonenumbers
import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import asterisk as A
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import parse_roster, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

HEADER = "id,full_name,email,service,needs,extension,forward_to,forward_mode,forward_delay,voicemail\n"
ROWS = [
    "amartin,Anaïs Martin,a@x.example,rsa,phone,1001,06 12 34 56 78,always,20,yes",
    "blefevre,Benoît Lefèvre,b@x.example,rsa,phone,1002,+33 6 23 45 67 89,busy,20,yes",
    "cgarcia,Cécile Garcia,c@x.example,rsa,phone,1003,07 61 23 45 67,no_answer,15,no",
    "dnguyen,Duc Nguyen,d@x.example,dsi,phone,1004,06 98 76 54 32,none,20,yes",
]
PBX = {
    "asterisk_pbx_trunk": {"host": "10.89.250.60", "dids": {"0546000000": "8000"}},
    "asterisk_pbx_office_hours": [{"days": "mon-fri", "time": "08:30-17:30"}],
    "asterisk_pbx_holidays": [{"date": "2025-12-25", "label": "Noël"}],
    "asterisk_pbx_mailboxes": [{"box": "8900", "name": "Accueil", "email": "accueil@x.example", "pin": "2468"}],
    "asterisk_pbx_attendants": [{
        "name": "accueil", "extension": "8000", "greeting": {"text": "Bonjour"},
        "then": {"transfer": "05 46 00 00 01", "voicemail": "8900"},
        "closed": {"text": "Fermé"}, "closed_then": {"voicemail": "8900"},
        "menu": {"1": {"queue": "social"}, "2": {"ring_group": ["amartin", "1002"]}}}],
    "asterisk_pbx_queues": [{"name": "social", "extension": "8100", "agents": ["dnguyen", "cgarcia"]}],
    "asterisk_pbx_conferences": [{"name": "crise", "extension": "8500", "pin": "4711"}],
}


def roster(rows=ROWS):
    result = parse_roster(HEADER + "\n".join(rows) + "\n", "csv", source="roster.csv")
    assert result.ok, result.problems
    return result


def compile_(rows=ROWS, pbx=PBX, secret="s3cret-for-tests"):
    ros = roster(rows)
    policy, problems = T.load_number_policy({})
    assert not problems
    people = T.phone_people(ros)
    cfg, problems, _ = T.load_pbx_config(pbx, policy, {p.id: p.extension for p in people})
    assert not problems, problems
    return T.plan_pbx(people, cfg, policy, secrets(secret)), people, cfg, policy


def secrets(secret="s3cret-for-tests"):
    """secret_of for tests: SIP passwords name their owner, PINs are digits as teleshift makes them."""
    return lambda p, name: f"{secret}-{p.id}-{name}" if name == "sip_password" else "135790"


def premium_fr():
    number = "0891234567"
    assert phonenumbers.number_type(phonenumbers.parse(number, "FR")) == phonenumbers.PhoneNumberType.PREMIUM_RATE
    return number


# ------------------------------------------------------------------ number policy

def test_national_numbers_pass_and_international_and_premium_are_refused_by_default():
    policy = T.NumberPolicy(region="FR")
    assert T.check_number("+33612345678", policy) is None
    assert T.check_number("05 46 00 00 01", policy) is None
    assert "international" in T.check_number("+44 20 7946 0958", policy)
    assert "premium-rate" in T.check_number(premium_fr(), policy)
    assert "not a" in T.check_number("12", policy)


def test_policy_flags_open_exactly_what_they_name():
    policy, problems = T.load_number_policy({"teleshift_phone_policy": {"allow_international": True}})
    assert not problems
    assert T.check_number("+44 20 7946 0958", policy) is None
    assert T.check_number(premium_fr(), policy) is not None
    policy, _ = T.load_number_policy({"teleshift_phone_policy": {"allow_premium": True}})
    assert T.check_number(premium_fr(), policy) is None
    assert T.check_number("+44 20 7946 0958", policy) is not None


def test_allowed_types_and_patterns_restrict_further():
    policy, problems = T.load_number_policy(
        {"teleshift_phone_policy": {"allowed_types": ["mobile"], "allowed_patterns": [r"^\+336"]}})
    assert not problems
    assert T.check_number("06 12 34 56 78", policy) is None
    assert "mobile" in T.check_number("05 46 00 00 01", policy)  # fixed line, not an allowed type
    assert "allowed_patterns" in T.check_number("07 61 23 45 67", policy)


def test_bad_policy_is_reported_with_its_path():
    _, problems = T.load_number_policy({"teleshift_phone_policy": {
        "allow_premium": "yes", "allowed_types": ["mobile", "satellite"], "allowed_patterns": ["("], "x": 1}})
    fields = {p.field for p in problems}
    assert {"teleshift_phone_policy.allow_premium", "teleshift_phone_policy.allowed_types",
            "teleshift_phone_policy.allowed_patterns[0]", "teleshift_phone_policy.x"} <= fields


def test_forwarding_problems_name_line_and_field():
    rows = ROWS + ["eroux,Eve Roux,e@x.example,rsa,phone,1005,+44 20 7946 0958,always,20,no",
                   f"fpons,Fred Pons,f@x.example,rsa,phone,1006,{premium_fr()},busy,20,no",
                   "gmoal,Guy Moal,g@x.example,rsa,phone,1008,+44 20 7946 0958,none,20,no"]
    problems = T.forwarding_problems(roster(rows), T.NumberPolicy())
    assert [(p.line, p.field) for p in problems] == [(6, "forward_to"), (7, "forward_to")]
    assert "international" in problems[0].message and "premium" in problems[1].message


def test_number_verdicts_are_kept_between_runs_per_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(tmp_path / "cache"))
    numbers = {"+33612345678", "+44 20 7946 0958", premium_fr(), "12"}
    policy = T.NumberPolicy()
    first = T.number_verdicts(numbers, policy)
    assert first == {n: T.check_number(n, policy) for n in numbers} and first["+33612345678"] is None

    def no_parse(number, policy):
        raise AssertionError(f"{number} parsed again")
    monkeypatch.setattr(T, "check_number", no_parse)  # the next run takes every verdict from the cache
    assert T.number_verdicts(numbers, policy) == first
    monkeypatch.undo()
    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(tmp_path / "cache"))
    wider = T.NumberPolicy(allow_international=True)  # another policy: its own verdicts
    assert T.number_verdicts(numbers, wider)["+44 20 7946 0958"] is None
    monkeypatch.setenv("TELESHIFT_CACHE", "0")  # cache off: still right
    assert T.number_verdicts(numbers, policy) == first


def test_dial_strings_and_the_dialplan_guard_agree():
    policy = T.NumberPolicy()
    regex = re.compile(T.dial_regex(policy))
    national = T.dial_string("+33612345678", "FR")
    assert national == "0612345678" and regex.match(national)
    assert T.dial_string("+33612345678", "FR", "e164") == "+33612345678"
    international = T.dial_string("+442079460958", "FR")
    assert international == "00442079460958" and not regex.match(international)
    assert re.match(T.dial_regex(T.NumberPolicy(allow_international=True)), international)


# ------------------------------------------------------------------ PBX settings

def test_pbx_settings_problems_name_the_variable_path():
    people_ext = {"amartin": "1001"}
    bad = {
        "asterisk_pbx_trunk": {"port": 99999},
        "asterisk_pbx_attendants": [{"name": "Accueil!", "extension": "1001", "greeting": {"text": "x"},
                                     "then": {"transfer": "+44 20 7946 0958"}, "colour": "blue"},
                                    {"name": "b", "extension": "8001", "greeting": {"text": "x", "recording": "y"},
                                     "then": {"queue": "nope", "voicemail": "7777"}}],
        "asterisk_pbx_queues": [{"name": "q", "extension": "8100", "agents": ["ghost"]}],
        "asterisk_pbx_holidays": [{"date": "2025-02-30"}],
        "asterisk_pbx_office_hours": [{"days": "monday", "time": "8-12"}],
    }
    _, problems, warnings = T.load_pbx_config(bad, T.NumberPolicy(), people_ext)
    fields = {p.field: p.message for p in problems}
    left_out = {p.field: p.message for p in warnings}
    assert "asterisk_pbx_trunk.host" in fields
    assert "asterisk_pbx_trunk.port" in fields
    assert "asterisk_pbx_attendants[0].name" in fields
    assert "person amartin" in fields["asterisk_pbx_attendants[0].extension"]
    assert "international" in fields["asterisk_pbx_attendants[0].then.transfer"]
    assert "asterisk_pbx_attendants[0].colour" in fields
    assert "asterisk_pbx_attendants[1].greeting" in fields
    assert "asterisk_pbx_attendants[1].then.queue" in fields
    assert "asterisk_pbx_attendants[1].then.voicemail" in left_out  # nobody holds box 7777: left out
    assert "'ghost' is not in the roster" in left_out["asterisk_pbx_queues[0].agents[0]"]
    assert not set(fields) & set(left_out)
    assert "asterisk_pbx_holidays[0].date" in fields
    assert "asterisk_pbx_office_hours[0].days" in fields and "asterisk_pbx_office_hours[0].time" in fields


def test_pbx_problems_cover_people_and_every_pbx():
    rows = ROWS + ["eroux,Eve Roux,e@x.example,rsa,phone,1005,+44 20 7946 0958,always,20,no"]
    bad_pbx = dict(PBX, asterisk_pbx_trunk={"host": "10.0.0.1", "dids": {"0546": "9999"}})
    problems, warnings = T.pbx_check(roster(rows), {"pbx1": PBX, "pbx2": bad_pbx}, T.NumberPolicy())
    assert [(p.line, p.field) for p in problems if p.line] == [(6, "forward_to")]
    assert [p.source for p in warnings if p.field == "asterisk_pbx_trunk.dids.0546"] == ["inventory (pbx2)"]
    assert T.pbx_problems(roster(rows), {"pbx1": PBX, "pbx2": bad_pbx}, T.NumberPolicy()) == problems


# ------------------------------------------------------------------ rendering

def test_pjsip_has_one_endpoint_auth_aor_per_person_and_the_trunk():
    plan, people, cfg, _ = compile_()
    sections = A.parse_conf(plan.files["pjsip.conf"])
    assert A.check_pjsip(plan.files["pjsip.conf"]) == []
    by_type = {}
    for name, settings in sections:
        by_type.setdefault(dict(settings)["type"], set()).add(name)
    exts = {p.extension for p in people}
    assert exts <= by_type["endpoint"] and exts <= by_type["auth"] and exts <= by_type["aor"]
    assert by_type["identify"] == {cfg.trunk.name}
    auths = {name: dict(s) for name, s in sections if dict(s)["type"] == "auth"}
    assert auths["1001"]["password"] == "s3cret-for-tests-amartin-sip_password"
    endpoints = {name: dict(s) for name, s in sections if dict(s)["type"] == "endpoint"}
    assert endpoints["1003"].get("mailboxes") is None and endpoints["1001"]["mailboxes"] == "1001@teleshift"
    assert endpoints[cfg.trunk.name]["context"] == "ts-from-trunk"


def _extensions(text):
    """{(context, exten): [application lines]} from our dialplan (exten/same form)."""
    result, context, exten = {}, None, None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
        elif line.startswith("exten => "):
            exten = line[len("exten => "):].split(",", 1)[0]
            result.setdefault((context, exten), []).append(line.split(",", 2)[2])
        elif line.startswith("same => "):
            result[(context, exten)].append(line[len("same => "):])  # keeps n(label)
    return result


def test_dialplan_is_gosub_only_and_every_jump_lands():
    plan, _, _, _ = compile_()
    text = plan.files["extensions.conf"]
    assert "Macro(" not in text and "SIP/" not in text.replace("PJSIP/", "")
    exts = _extensions(text)
    contexts = {c for c, _ in exts} | {"general", "globals"}
    for (context, exten), lines in exts.items():
        labels = {m.group(1) for line in lines for m in [re.match(r"^n\((\w+)\)", line)] if m}
        for line in lines:
            for label in re.findall(r"\?([a-z]+)\)$", line):  # GotoIf(cond?label)
                assert label in labels, (context, exten, line)
            for target, ext in re.findall(r"(?:Goto\(|\?)([a-z0-9-]+),([\w*]+),1\)", line):
                assert target in contexts and (target, ext) in exts or target == "ts-route", line
            for sub, ext in re.findall(r"Gosub\(([a-z-]+),(\w+),1", line):
                assert (sub, ext) in exts, line
    # ts-route reaches desks and services
    assert "include => ts-desks" in text.split("[ts-route]")[1].split(";;")[0]


def test_forwarding_lives_in_astdb_not_in_the_dialplan():
    plan, _, _, _ = compile_()
    assert plan.astdb[T.CF_ALWAYS] == {"1001": "0612345678"}
    assert plan.astdb[T.CF_BUSY] == {"1002": "0623456789"}
    assert plan.astdb[T.CF_NOANSWER] == {"1003": "0761234567"} and plan.astdb[T.CF_DELAY] == {"1003": "15"}
    assert plan.astdb[T.ON_DUTY] == {"accueil": "0546000001"}
    assert plan.astdb[T.HOLIDAY] == {"2025-12-25": "Noël"}
    assert "0612345678" not in plan.files["extensions.conf"]


def test_changing_one_forwarding_touches_no_config_file_and_one_person_in_astdb():
    before, _, _, _ = compile_()
    rows = list(ROWS)
    rows[0] = rows[0].replace("06 12 34 56 78,always", "06 12 34 56 79,always")
    after, _, _, _ = compile_(rows)
    assert after.files == before.files  # nothing to reload
    puts, deletes = A.diff_astdb(before.astdb, after.astdb)
    assert puts == [(T.CF_ALWAYS, "1001", "0612345679"), (T.MOBILE, "1001", "0612345679")] and deletes == []
    who = A.describe_astdb_changes(before.astdb, after.astdb, after.labels)
    assert who == {"added": [], "changed": ["person amartin"], "removed": []}


def test_mode_change_moves_the_number_between_families():
    before, _, _, _ = compile_()
    rows = list(ROWS)
    rows[0] = rows[0].replace(",always,", ",none,")
    after, _, _, _ = compile_(rows)
    puts, deletes = A.diff_astdb(before.astdb, after.astdb)
    assert puts == [] and deletes == [(T.CF_ALWAYS, "1001")]


def test_block_diff_names_people_and_never_shows_secrets():
    before, _, _, _ = compile_()
    after, _, _, _ = compile_([ROWS[0]] + ROWS[2:] + ["zed,Zed Zorro,z@x.example,rsa,phone,1009,,none,20,no"],
                              secret="other")
    diff = A.diff_blocks(before.files["pjsip.conf"], after.files["pjsip.conf"])
    assert diff["added"] == ["person zed"]
    assert diff["removed"] == ["person blefevre"]
    assert "person amartin" in diff["changed"]  # new secret
    assert "other" not in repr(diff) and "s3cret" not in repr(diff)
    assert A.diff_blocks(before.files["pjsip.conf"], before.files["pjsip.conf"]) == \
        {"added": [], "changed": [], "removed": []}


def test_voicemail_queues_and_conferences():
    plan, _, _, _ = compile_()
    boxes = {k: v for name, settings in A.parse_conf(plan.files["voicemail.conf"]) if name == "teleshift"
             for k, v in settings}
    assert set(boxes) == {"1001", "1002", "1004", "8900"}  # cgarcia has no voicemail
    assert boxes["1001"].startswith("135790,Anaïs Martin,a@x.example")
    queues = dict(A.parse_conf(plan.files["queues.conf"]))
    assert dict(queues["social"])["announce-position"] == "yes"
    assert "TS_AGENTS_social=1003&1004" in plan.files["extensions.conf"]
    conf = {name: dict(s) for name, s in A.parse_conf(plan.files["confbridge.conf"])}
    assert conf["ts-user-crise"]["pin"] == "4711" and conf["ts-bridge-crise"]["type"] == "bridge"


def test_voicemail_notifications_use_the_configured_mail_command():
    general = lambda plan: dict(dict(A.parse_conf(plan.files["voicemail.conf"]))["general"])  # noqa: E731
    assert general(compile_()[0])["mailcmd"] == "/usr/sbin/sendmail -t"  # default: the host's sendmail
    plan = compile_(pbx={**PBX, "asterisk_pbx_mail_command": "/usr/bin/msmtp -t --read-envelope-from"})[0]
    assert general(plan)["mailcmd"] == "/usr/bin/msmtp -t --read-envelope-from"


@pytest.mark.parametrize("command", ["sendmail -t", "/usr/sbin/sendmail -t\nexternnotify=/bin/sh", ""])
def test_a_mail_command_that_is_not_one_absolute_command_line_is_refused(command):
    people = T.phone_people(roster())
    _, problems, _ = T.load_pbx_config({**PBX, "asterisk_pbx_mail_command": command}, T.NumberPolicy(),
                                       {p.id: p.extension for p in people})
    assert [p.field for p in problems] == ["asterisk_pbx_mail_command"]


def test_attendant_hours_holidays_and_closure_switch():
    plan, _, _, _ = compile_()
    body = plan.files["extensions.conf"].split("[ts-att-accueil]")[1].split(";; teleshift:")[0]
    assert "GotoIfTime(08:30-17:30,mon-fri,*,*,Europe/Paris?open,1)" in body
    assert "TSHOLIDAY/${STRFTIME(${EPOCH},Europe/Paris,%Y-%m-%d)}" in body
    assert "TSCLOSED/accueil" in body
    assert plan.prompts == [
        {"name": "ts-att-accueil-greeting", "language": "fr", "text": "Bonjour"},
        {"name": "ts-att-accueil-closed", "language": "fr", "text": "Fermé"}]
    always_open = dict(PBX, asterisk_pbx_office_hours=[])
    plan2, _, _, _ = compile_(pbx=always_open)
    assert "GotoIfTime" not in plan2.files["extensions.conf"]


def test_parse_database_show():
    text = ("/CFIM/1001                                        : 0612345678\n"
            "/TSHOLIDAY/2025-12-25                             : Noël\n"
            "/pbx/UUID                                         : abc:def\n"
            "3 results found.\n")
    assert A.parse_database_show(text) == {"CFIM": {"1001": "0612345678"}, "TSHOLIDAY": {"2025-12-25": "Noël"},
                                           "pbx": {"UUID": "abc:def"}}


def test_diff_ignores_unmanaged_families():
    current = {"CFIM": {"1001": "0611111111", "1999": "0622222222"}, "TSCLOSED": {"accueil": "strike"}}
    puts, deletes = A.diff_astdb(current, {"CFIM": {"1001": "0611111111"}})
    assert puts == [] and deletes == [("CFIM", "1999")]


# ------------------------------------------------------------------ kits and scale

def test_kit_secrets_are_kept_private_and_stable(tmp_path):
    ros = roster()
    people = T.phone_people(ros)
    secret_of = T.kit_secrets(tmp_path)
    first = {p.id: secret_of(p, "sip_password") for p in people}
    assert len(set(first.values())) == len(people) and all(len(s) >= 20 for s in first.values())
    again = T.kit_secrets(tmp_path)
    assert {p.id: again(p, "sip_password") for p in people} == first
    pin = again(people[0], "voicemail_pin")
    assert pin.isdigit() and len(pin) == 6
    cfg, _, _ = T.load_pbx_config(PBX, T.NumberPolicy(), {p.id: p.extension for p in people})
    changed = T.write_phone_kits(tmp_path, people, again, "10.89.251.30", 5060, cfg)
    assert changed == [p.id for p in people]
    assert T.write_phone_kits(tmp_path, people, again, "10.89.251.30", 5060, cfg) == []
    account = tmp_path / "amartin" / "phone" / "account.txt"
    assert f"password: {first['amartin']}" in account.read_text()
    assert stat.S_IMODE(account.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "amartin" / "phone").stat().st_mode) == 0o700


def test_five_thousand_people_compile_fast():
    buf = io.StringIO()
    write_csv(generate_people(5000, 7), buf)
    ros = parse_roster(buf.getvalue(), "csv")
    assert ros.ok
    start = time.perf_counter()
    policy = T.NumberPolicy()
    people = T.phone_people(ros)
    pbx = dict(PBX, asterisk_pbx_queues=[{"name": "social", "extension": "8100", "agents": [people[0].id]}],
               asterisk_pbx_attendants=[dict(PBX["asterisk_pbx_attendants"][0], menu={})])
    cfg, problems, _ = T.load_pbx_config(pbx, policy, {p.id: p.extension for p in people})
    plan = T.plan_pbx(people, cfg, policy, secrets("x" * 20))
    elapsed = time.perf_counter() - start
    assert not problems
    assert len(plan.people) == len(people) > 1000
    assert plan.files["pjsip.conf"].count("type=endpoint") == len(people) + 1
    assert elapsed < 2.0, f"compile took {elapsed:.2f} s"


@pytest.mark.parametrize("name", T.FILES + ("manager.conf", "rtp.conf"))
def test_every_file_parses(name):
    plan, _, _, _ = compile_()
    assert A.parse_conf(plan.files[name])


def test_parse_conf_accepts_includes_and_rejects_garbage():
    assert A.parse_conf(T.render_manager())[0][0] == "general"
    assert ("general", [("enabled", "yes"), ("port", "5038"), ("bindaddr", "127.0.0.1"),
                        ("displayconnects", "no")]) == A.parse_conf(T.render_manager())[0]
    with pytest.raises(ValueError):
        A.parse_conf("[a]\nthis is not a setting\n")
    with pytest.raises(ValueError):
        A.parse_conf("key=value before any section\n")


def test_inventory_problems_join_policy_people_and_pbx_settings():
    rows = ROWS + ["eroux,Eve Roux,e@x.example,rsa,phone,1005,+44 20 7946 0958,always,20,no"]
    all_vars = {"teleshift_phone_policy": {"allow_premium": "no"}}
    pbx = {"pbx1": dict(PBX, asterisk_pbx_conferences=[{"name": "crise", "extension": "8500", "pin": "12"}],
                        unrelated_var=1)}
    problems = T.inventory_problems(all_vars, pbx, roster(rows), "FR")
    where = {(p.line, p.field) for p in problems}
    assert (0, "teleshift_phone_policy.allow_premium") in where
    assert (6, "forward_to") in where
    assert (0, "asterisk_pbx_conferences[0].pin") in where
    assert len(problems) == 3
    allowed = T.inventory_problems({"teleshift_phone_policy": {"allow_international": True}}, {}, roster(rows), "FR")
    assert allowed == []
