"""The number policy where calls are placed: the dialplan's rules agree with phonenumbers, emergency
numbers, own numbers, per-endpoint limits; revoked people are left out of PBX settings with warnings."""
import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import dialrules
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import parse_roster

HEADER = "id,full_name,email,service,needs,extension,forward_to,forward_mode,forward_delay,voicemail,active\n"
ROWS = [
    "amartin,Anaïs Martin,a@x.example,rsa,phone,1001,06 12 34 56 78,always,20,yes,yes",
    "blefevre,Benoît Lefèvre,b@x.example,rsa,phone,1002,,none,20,yes,yes",
    "cgarcia,Cécile Garcia,c@x.example,rsa,phone,1003,,none,20,no,yes",
    "dnguyen,Duc Nguyen,d@x.example,dsi,phone,1004,,none,20,yes,no",
]
PBX = {
    "asterisk_pbx_trunk": {"host": "10.89.250.60", "dids": {"0546000000": "8000", "0546000100": "8100"}},
    "asterisk_pbx_attendants": [{
        "name": "accueil", "extension": "8000", "greeting": {"text": "Bonjour"},
        "then": {"ring_group": ["amartin", "dnguyen", "ghost"], "voicemail": "1004"},
        "menu": {"1": {"extension": "1004"}, "2": {"queue": "social"}}}],
    "asterisk_pbx_queues": [{"name": "social", "extension": "8100", "agents": ["blefevre", "dnguyen", "ghost"]}],
}
POLICIES = {
    "default": {},
    "premium": {"allow_premium": True},
    "mobile only": {"allowed_types": ["mobile"]},
    "toll free too": {"allowed_types": ["fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "voip"]},
    "short codes": {"allow_short_codes": True},
    "short codes and premium": {"allow_short_codes": True, "allow_premium": True},
    "patterns": {"allowed_patterns": [r"^\+336", r"^\+335\d{8}$", "^3"], "allow_short_codes": True},
}


def roster(rows=ROWS):
    return parse_roster(HEADER + "\n".join(rows) + "\n", "csv", source="roster.csv")


def policy_of(name, fmt="national"):
    policy, problems = T.load_number_policy({"teleshift_phone_policy": POLICIES[name]})
    assert not problems
    return T.pbx_policy(policy, T.load_pbx_config(PBX, policy)[0])


def type_patterns(region="FR"):
    """(name, national significant number pattern) of every number type and short code of the region."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    short = phonenumbers.PhoneMetadata.short_metadata_for_region(region)
    found = [(k, getattr(meta, k).national_number_pattern) for k in dialrules.NATIONAL_ORDER + ("fixed_line", "mobile")
             if getattr(meta, k) is not None and getattr(meta, k).national_number_pattern]
    found += [(f"short {k}", getattr(short, k).national_number_pattern)
              for k in ("emergency", "toll_free", "standard_rate", "premium_rate", "short_code", "carrier_specific")]
    return found


def canonical(draw_nsn, kind, fmt):
    """A dial string for a national significant number: national (0...), E.164 or a short code's digits."""
    if kind.startswith("short"):
        return draw_nsn
    return ("+33" if fmt == "e164" else "0") + draw_nsn


def agree(policy, num, fmt):
    """(phonenumbers' verdict, the dialplan rules' verdict) on a dial string, or None if not canonical."""
    rules = T.dial_rules(policy, fmt)
    allowed = T.rules_allow(rules, num, T.dialplan_e164(num, policy, fmt))
    python = T.check_number(num, policy) is None
    try:
        is_canonical = T.dial_string(num, policy.region, fmt) == num
    except ValueError:
        is_canonical = False
    return python, allowed, is_canonical


@pytest.mark.parametrize("fmt", ["national", "e164"])
@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_dialplan_rules_agree_with_phonenumbers_on_generated_numbers(name, fmt, data):
    policy = policy_of(name)
    kind, pattern = data.draw(st.sampled_from(type_patterns()))
    nsn = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    num = canonical(nsn, kind, fmt)
    python, allowed, is_canonical = agree(policy, num, fmt)
    assert not allowed or (python and is_canonical), f"the dialplan allows {num} ({kind}), phonenumbers does not"
    if is_canonical:
        assert python == allowed, f"{num} ({kind}): phonenumbers {python}, dialplan {allowed}"


@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=300, deadline=None)
@given(num=st.from_regex(r"\A(0[0-9]{9}|00[0-9]{6,13}|[1-9][0-9]{1,6}|\+33[0-9]{9})\Z"))
def test_the_dialplan_never_allows_what_phonenumbers_refuses(name, num):
    policy = policy_of(name)
    fmt = "e164" if num.startswith("+") else "national"
    python, allowed, is_canonical = agree(policy, num, fmt)
    assert not allowed or (python and is_canonical), num
    if is_canonical:
        assert python == allowed, num


def test_the_rules_are_posix_and_name_the_cases_of_the_issue():
    policy = policy_of("default")
    rules = T.dial_rules(policy)
    for _, conds in rules:
        for _, regex in conds:
            assert "(?" not in regex and "\\" not in regex and '"' not in regex
    verdict = {n: T.rules_allow(rules, n) for n in ("0899123456", "0044207946095", "3949", "118712", "0612345678",
                                                      "0546000001", "112", "15", "0546000000")}
    assert verdict == {"0899123456": False, "0044207946095": False, "3949": False, "118712": False,
                       "0612345678": True, "0546000001": True, "112": False, "15": False, "0546000000": False}
    intl = T.dial_rules(dataclass_replace(policy, allow_international=True))
    assert T.rules_allow(intl, "00442079460958") and not T.rules_allow(intl, "0033899123456")


def dataclass_replace(policy, **changes):
    import dataclasses
    return dataclasses.replace(policy, **changes)


@pytest.mark.parametrize("pattern", [r"(?=x)", r"\s", r"a*?", r"\bfoo", r'"'])
def test_patterns_the_dialplan_cannot_enforce_are_refused(pattern):
    _, problems = T.load_number_policy({"teleshift_phone_policy": {"allowed_patterns": [pattern]}})
    assert [p.field for p in problems] == ["teleshift_phone_policy.allowed_patterns[0]"]


def test_a_region_sharing_its_country_code_is_refused_for_the_policy():
    _, problems = T.load_number_policy({}, region="CA")
    assert [p.field for p in problems] == ["teleshift_phone_region"]


# ------------------------------------------------------------------ the dialplan

def compile_(rows=ROWS, pbx=PBX, policy=None):
    ros = roster(rows)
    policy = policy or T.NumberPolicy()
    people = T.phone_people(ros)
    cfg, problems, warnings = T.load_pbx_config(pbx, policy, {p.id: p.extension for p in people},
                                                roster_ids={p.id: p.extension for p in ros.people})
    assert not problems, problems
    plan = T.plan_pbx(people, cfg, policy, lambda p, n: "Secret1234567890" if n == "sip_password" else "2468")
    return plan, cfg, warnings


def context(text, name):
    return text.split(f"[{name}]\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_softphones_reach_emergency_first_and_the_outside_only_through_policy_and_limits():
    plan, cfg, _ = compile_()
    text = plan.files["extensions.conf"]
    internal = [line for line in context(text, "ts-internal") if line.startswith("include")]
    assert internal == ["include => ts-emergency", "include => ts-desks", "include => ts-services",
                        "include => ts-features", "include => ts-dialout"]
    emergency = context(text, "ts-emergency")
    for number in T.EMERGENCY_NUMBERS:
        assert f"exten => {number},1,Dial(PJSIP/{number}@${{TS_TRUNK}})" in emergency
    dialout = context(text, "ts-dialout")
    assert "exten => 0546000000,1,Goto(ts-route,8000,1)" in dialout  # own number: stays inside
    assert [line for line in dialout if "Hangup(" in line] == ["same => n,Hangup()", "same => n(policy),Hangup(21)",
                                                                "same => n(limit),Hangup(17)"]
    assert "exten => _0X." not in text
    forward = context(text, "ts-forward")
    assert any("GROUP_COUNT(${ARG2}@tsout)} <= ${TS_MAX_OUT}" in line for line in forward)
    assert any(line.startswith("same => n(dial),Dial(") and ",S(${TS_MAX_SECS}))" in line for line in forward)
    assert "TS_MAX_OUT=2\nTS_MAX_SECS=7200\n" in text
    # every path to the trunk goes through ts-forward: the only Dial to ${TS_TRUNK} outside ts-emergency
    trunk_dials = [line for line in text.splitlines() if "@${TS_TRUNK}" in line]
    assert len(trunk_dials) == 1 + len(T.EMERGENCY_NUMBERS)


def test_limits_come_from_the_inventory():
    plan, _, _ = compile_(pbx={**PBX, "asterisk_pbx_max_outbound_calls": 3, "asterisk_pbx_max_call_seconds": 60})
    assert "TS_MAX_OUT=3\nTS_MAX_SECS=60\n" in plan.files["extensions.conf"]
    _, problems, _ = T.load_pbx_config({**PBX, "asterisk_pbx_max_outbound_calls": 0,
                                        "asterisk_pbx_max_call_seconds": "1h"}, T.NumberPolicy())
    assert {p.field for p in problems} >= {"asterisk_pbx_max_outbound_calls", "asterisk_pbx_max_call_seconds"}


def test_policy_rules_in_the_dialplan_are_the_compiled_rules():
    plan, cfg, _ = compile_()
    lines = [line for line in context(plan.files["extensions.conf"], "ts-policy") if "REGEX(" in line]
    rules = T.dial_rules(T.pbx_policy(T.NumberPolicy(), cfg))
    assert len(lines) == len(rules)
    for line, (verdict, conds) in zip(lines, rules):
        assert line.endswith(f"]?{verdict})")
        assert re.findall(r'REGEX\("([^"]*)" \$\{(\w+)\}\)', line) == [(regex, var) for var, regex in conds]


# ------------------------------------------------------------------ extensions and own numbers

def test_an_extension_that_is_an_emergency_number_is_a_problem_with_its_line():
    rows = ROWS + ["eroux,Eve Roux,e@x.example,rsa,phone,112,,none,20,no,yes",
                   "fpons,Fred Pons,f@x.example,rsa,phone,18,,none,20,no,no"]
    problems = T.pbx_problems(roster(rows), {}, T.NumberPolicy())
    assert [(p.line, p.field) for p in problems] == [(6, "extension")]
    assert "emergency" in problems[0].message
    _, problems, _ = T.load_pbx_config({**PBX, "asterisk_pbx_queues": [{"name": "q", "extension": "115"}]},
                                       T.NumberPolicy())
    assert "asterisk_pbx_queues[0].extension" in {p.field for p in problems}
    assert "eroux" not in {p.id for p in T.phone_people(roster(rows))}


def test_forwarding_to_one_of_the_organisations_numbers_is_refused_in_e164():
    rows = ROWS[:1] + ["eroux,Eve Roux,e@x.example,rsa,phone,1005,+33 5 46 00 01 00,always,20,no,yes"]
    problems = T.pbx_problems(roster(rows), {"pbx1": PBX}, T.NumberPolicy())
    assert [(p.line, p.field) for p in problems] == [(3, "forward_to")] and "own numbers" in problems[0].message
    pbx = {**PBX, "asterisk_pbx_attendants": [dict(PBX["asterisk_pbx_attendants"][0],
                                                   then={"transfer": "+33546000000"})]}
    _, problems, _ = T.load_pbx_config(pbx, T.NumberPolicy())
    assert [p.field for p in problems] == ["asterisk_pbx_attendants[0].then.transfer"]


# ------------------------------------------------------------------ revocation wins

def test_revoked_people_are_left_out_of_queues_ring_groups_and_targets_with_warnings():
    plan, cfg, warnings = compile_()
    where = {w.field: w.message for w in warnings}
    assert "inactive" in where["asterisk_pbx_queues[0].agents[1]"]  # dnguyen: active=no
    assert "not in the roster" in where["asterisk_pbx_queues[0].agents[2]"]  # ghost
    assert "asterisk_pbx_attendants[0].then.ring_group[1]" in where
    assert "asterisk_pbx_attendants[0].then.ring_group[2]" in where
    assert "asterisk_pbx_attendants[0].then.voicemail" in where  # dnguyen's box
    assert "asterisk_pbx_attendants[0].menu.1.extension" in where  # dnguyen's desk
    assert cfg.queues[0].agents == ("blefevre",) and cfg.attendants[0].then.ring_group == ("1001",)
    text = plan.files["extensions.conf"]
    assert "TS_AGENTS_social=1002\n" in text and "1004" not in text
    assert "1004" not in plan.files["pjsip.conf"] + plan.files["voicemail.conf"]


def test_warnings_never_block_preflight_and_are_reported():
    problems, warnings = T.inventory_check({}, {"pbx1": PBX}, roster(), "FR")
    assert problems == [] and len(warnings) == 6
    assert all(str(w).startswith("inventory (pbx1): asterisk_pbx_") for w in warnings)


def test_a_generated_roster_validates_against_the_lab_inventory_with_warnings_only(tmp_path):
    """`teleshift roster generate --count 5000 --seed 1` then `teleshift validate`: the lab's queue agents are
    not in that roster, which leaves them out of the queue (warnings) instead of blocking every run."""
    import io
    from pathlib import Path

    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import write_csv
    from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

    root = Path(__file__).resolve().parents[2]
    from teleshift_cli.context import load_context

    buf = io.StringIO()
    write_csv(generate_people(5000, 1), buf)
    staff = tmp_path / "staff.csv"
    staff.write_text(buf.getvalue(), encoding="utf-8")
    ctx = load_context(str(staff), str(root / "inventories" / "lab"))
    assert ctx.problems == []
    agents = ctx.inventory.hostvars["ts-pbx1"]["asterisk_pbx_queues"][0]["agents"]
    phones = {p.id for p in T.phone_people(ctx.roster)}
    missing = {f"asterisk_pbx_queues[0].agents[{i}]" for i, a in enumerate(agents) if a not in phones}
    assert missing and missing <= {w.field for w in ctx.warnings}
