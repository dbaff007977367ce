"""Cisco CME forwarding: parsing, dial strings and the minimal command plan (no network).

The command-application property test feeds the planned commands to the configuration engine of the
EMULATED IOS/CME CLI (tests/emulated/ios_cme.py, no SSH involved) and parses its running configuration
back with the module's own parser.
"""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import cisco_cme as cme
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person, parse_roster
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people
from emulated.ios_cme import EmulatedCME, EmulatedDn

SAMPLE = """\
ephone-dn-template  1
 call-forward all 1999
!
ephone-dn  1  dual-line
 number 1001 no-reg primary
 label Anais Martin
 call-forward busy 00612345678
 call-forward noan 00612345678 timeout 15
!
ephone-dn  2
 number 1002
!
ephone-dn  3  octo-line
 number 1003
 call-forward all 1001
ephone  1
 mac-address 0000.5E00.5302
 button  1:1
voice register dn  7
 number 2001
 call-forward b2bua noan 0033612
!
voice register dn  8
 number 2002
 call-forward b2bua all 00612345678
!
voice register pool  1
 number 1 dn 7
"""

FR = cme.Dialing(region="FR", prefix="0")


def person(pid, extension, mode="none", to="", delay=20, active=True):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@example.org", service="rsa",
                  extension=extension, forward_mode=mode, forward_to=to, forward_delay=delay, active=active)


def by_number(dns):
    return {dn.number: dn for dn in dns}


# ---- parsing ---------------------------------------------------------------------------------

def test_parse_reads_both_kinds_and_ignores_templates_pools_and_ephones():
    dns = cme.parse_dns(SAMPLE)
    assert [(d.kind, d.tag) for d in dns] == [
        ("ephone-dn", "1"), ("ephone-dn", "2"), ("ephone-dn", "3"),
        ("voice register dn", "7"), ("voice register dn", "8")]
    found = by_number(dns)
    assert found["1001"].linemode == "dual-line"
    assert found["1001"].header == "ephone-dn 1 dual-line"
    assert found["1001"].forwarding == cme.Forwarding(busy="00612345678", noan="00612345678", noan_timeout=15)
    assert found["1002"].forwarding.empty
    assert found["1003"].forwarding == cme.Forwarding(all="1001")
    assert found["2002"].forwarding == cme.Forwarding(all="00612345678")
    assert found["2002"].header == "voice register dn 8"


def test_noan_without_timeout_means_cme_default_of_20_seconds():
    dn = by_number(cme.parse_dns(SAMPLE))["2001"]
    assert (dn.forwarding.noan, dn.forwarding.noan_timeout) == ("0033612", 20)


def test_parse_handles_crlf_and_two_section_outputs_without_duplicates():
    text = SAMPLE.replace("\n", "\r\n")
    dns = cme.parse_dns(text + "\r\n" + text)
    assert len(dns) == 5


# ---- dial strings ----------------------------------------------------------------------------

@pytest.mark.parametrize("e164, dialing, expected", [
    ("+33612345678", cme.Dialing(region="FR", prefix="0"), "00612345678"),
    ("+33612345678", cme.Dialing(region="FR", prefix=""), "0612345678"),
    ("+442079460958", cme.Dialing(region="FR", prefix="0"), "000442079460958"),
    ("+3225551234", cme.Dialing(region="BE", prefix="9"), "9025551234"),
    ("+33612345678", cme.Dialing(region="FR", fmt="e164"), "+33612345678"),
])
def test_dial_string(e164, dialing, expected):
    assert cme.dial_string(e164, dialing) == expected


def test_dial_string_refuses_what_cme_cannot_take():
    with pytest.raises(ValueError, match="32 digits"):
        cme.dial_string("+33612345678", cme.Dialing(prefix="0" * 30))
    with pytest.raises(ValueError, match="not a phone number"):
        cme.dial_string("call me", FR)


def test_check_dialing_reports_each_bad_setting():
    problems = cme.check_dialing(cme.Dialing(region="France", prefix="0x", fmt="weird"))
    assert len(problems) == 3
    assert cme.check_dialing(cme.Dialing(prefix="0", fmt="e164")) == [
        "a dial prefix cannot be combined with the e164 dial format"]
    assert cme.check_dialing(FR) == []


# ---- desired state and commands -------------------------------------------------------------

def test_desired_forwarding_per_mode_and_inactive_people_get_none():
    to = "+33612345678"
    assert cme.desired_forwarding(person("a", "1001", "always", to), FR) == cme.Forwarding(all="00612345678")
    assert cme.desired_forwarding(person("a", "1001", "busy", to), FR) == cme.Forwarding(busy="00612345678")
    assert cme.desired_forwarding(person("a", "1001", "no_answer", to, 35), FR) == cme.Forwarding(
        noan="00612345678", noan_timeout=35)
    assert cme.desired_forwarding(person("a", "1001", "none", to), FR).empty
    assert cme.desired_forwarding(person("a", "1001", "always", to, active=False), FR).empty


def test_commands_are_minimal():
    dn = cme.Dn("ephone-dn", "4", "1004", "dual-line", cme.Forwarding(all="00611111111"))
    assert cme.dn_commands(dn, cme.Forwarding(all="00611111111")) == []
    assert cme.dn_commands(dn, cme.Forwarding(all="00622222222")) == [
        "ephone-dn 4 dual-line", "call-forward all 00622222222", "exit"]
    assert cme.dn_commands(dn, cme.Forwarding(busy="00622222222")) == [
        "ephone-dn 4 dual-line", "no call-forward all", "call-forward busy 00622222222", "exit"]
    assert cme.dn_commands(dn, cme.NO_FORWARDING) == ["ephone-dn 4 dual-line", "no call-forward all", "exit"]


def test_noan_timeout_change_alone_is_one_line_and_sip_lines_use_b2bua():
    dn = cme.Dn("voice register dn", "9", "2009", "", cme.Forwarding(noan="0061", noan_timeout=20))
    assert cme.dn_commands(dn, cme.Forwarding(noan="0061", noan_timeout=30)) == [
        "voice register dn 9", "call-forward b2bua noan 0061 timeout 30", "exit"]
    assert cme.dn_commands(dn, cme.NO_FORWARDING) == ["voice register dn 9", "no call-forward b2bua noan", "exit"]


def test_plan_touches_only_roster_numbers_and_names_the_people():
    dns = cme.parse_dns(SAMPLE)
    people = [
        person("amartin", "1001", "always", "+33612345678"),  # busy+noan -> all: changed
        person("bnoel", "1002", "no_answer", "+33698765432", 25),  # nothing -> noan: added
        person("cdurand", "2002", "none"),  # all -> nothing: removed
        person("eabsent", "4444", "always", "+33612345678"),  # not on this gateway
    ]
    plan = cme.plan_gateway(dns, people, FR)
    assert plan.people() == {"added": ["bnoel"], "changed": ["amartin"], "removed": ["cdurand"]}
    touched = {c.dn.number for c in plan.changes}
    assert touched == {"1001", "1002", "2002"}  # 1003 and 2001 are not in the roster: untouched
    assert (plan.managed, plan.unmanaged) == (3, 2)
    assert plan.matched == {"amartin", "bnoel", "cdurand"}
    assert "ephone-dn 3 octo-line" not in plan.commands


def test_purge_clears_forwarding_of_numbers_not_in_the_roster_but_keeps_the_dn():
    dns = cme.parse_dns(SAMPLE)
    plan = cme.plan_gateway(dns, [], cme.Dialing(region="FR", prefix="0", purge=True))
    assert {c.dn.number for c in plan.changes} == {"1001", "1003", "2001", "2002"}  # 1002 has none
    assert all(c.after.empty for c in plan.changes)
    assert plan.people()["removed"] == ["dn:1001", "dn:1003", "dn:2001", "dn:2002"]
    assert not any(line.startswith(("no ephone-dn", "no voice")) for line in plan.commands)


def test_an_undialable_number_is_a_problem_and_leaves_that_dn_alone():
    dns = cme.parse_dns(SAMPLE)
    people = [person("amartin", "1001", "always", "+33612345678"), person("bnoel", "1002", "busy", "+33698765432")]
    plan = cme.plan_gateway(dns, people, cme.Dialing(region="FR", prefix="0" * 25))
    assert {c.dn.number for c in plan.changes} == set()
    assert len(plan.problems) == 2 and "amartin" in plan.problems[0]


def test_shared_number_on_two_dns_gets_the_same_forwarding_on_both():
    dns = [cme.Dn("ephone-dn", "1", "1001"), cme.Dn("voice register dn", "1", "1001")]
    plan = cme.plan_gateway(dns, [person("amartin", "1001", "busy", "+33612345678")], FR)
    assert plan.commands == ["ephone-dn 1", "call-forward busy 00612345678", "exit",
                             "voice register dn 1", "call-forward b2bua busy 00612345678", "exit"]
    assert plan.people()["added"] == ["amartin"]


def test_diff_names_the_person_and_shows_before_and_after():
    dns = cme.parse_dns(SAMPLE)
    plan = cme.plan_gateway(dns, [person("amartin", "1001", "always", "+33612345678")], FR)
    before, after = cme.plan_diff(plan)
    assert "! amartin (Amartin)" in before and "! amartin (Amartin)" in after
    assert "call-forward busy 00612345678" in before and "call-forward busy" not in after
    assert "call-forward all 00612345678" in after


def test_mask_hides_every_secret():
    assert cme.mask("user admin pass s3cret enable en4ble", "s3cret", "en4ble", "") == \
        "user admin pass ******** enable ********"


# ---- applying the plan (emulated CME configuration engine, no SSH) ---------------------------

targets = st.sampled_from(["", "00611111111", "00622222222", "+33633333333"])
forwardings = st.builds(lambda a, b, n, t: cme.Forwarding(all=a, busy=b, noan=n, noan_timeout=t if n else 0),
                        targets, targets, targets, st.integers(3, 120))


def _apply(emulated, commands):
    mode, dn = "config", None
    for line in commands:
        mode, dn = emulated.configure(mode, dn, line)
    return mode


def _to_emulated(forwarding):
    out = {k: getattr(forwarding, k) for k in ("all", "busy") if getattr(forwarding, k)}
    if forwarding.noan:
        out["noan"] = (forwarding.noan, forwarding.noan_timeout)
    return out


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(["ephone-dn", "voice register dn"]), before=forwardings, after=forwardings)
def test_planned_commands_reach_the_desired_state_and_restore_goes_back(kind, before, after):
    emulated = EmulatedCME(dns=[EmulatedDn(kind, 5, "dual-line" if kind == "ephone-dn" else "", "1005",
                                           forward=_to_emulated(before))])
    original = cme.parse_dns(emulated.running_config())
    assert original[0].forwarding == before
    assert _apply(emulated, cme.dn_commands(original[0], after)) == "config"
    now = cme.parse_dns(emulated.running_config())
    assert now[0].forwarding == after
    assert cme.dn_commands(now[0], after) == []  # idempotent
    _apply(emulated, cme.restore_commands(now, original))
    assert cme.parse_dns(emulated.running_config())[0].forwarding == before


# ---- scale -----------------------------------------------------------------------------------

def test_planning_5000_people_is_fast_and_second_plan_is_empty():
    people = generate_people(5000, seed=7)
    with_ext = [p for p in people if p.extension]
    assert len(with_ext) > 1000
    text = "".join(f"ephone-dn  {i}\n number {p.extension}\n!\n" for i, p in enumerate(with_ext, 1))
    started = time.monotonic()
    dns = cme.parse_dns(text)
    plan = cme.plan_gateway(dns, people, FR)
    elapsed = time.monotonic() - started
    assert len(dns) == len(with_ext)
    wanting = [p for p in with_ext if p.active and p.forward_mode != "none"]
    assert len(plan.changes) == len(wanting)
    assert elapsed < 3.0, f"parse + plan of {len(dns)} DNs took {elapsed:.2f}s"
    # feed the result back as configuration: nothing left to do
    converged = [cme.Dn(d.kind, d.tag, d.number, d.linemode, c.after)
                 for d, c in zip(dns, _changes_by_dn(dns, plan))]
    assert cme.plan_gateway(converged, people, FR).changes == []


def _changes_by_dn(dns, plan):
    changes = {c.dn.key: c for c in plan.changes}
    for dn in dns:
        yield changes.get(dn.key) or cme.DnChange(dn, dn.forwarding, dn.forwarding, [])


def test_roster_numbers_read_by_the_roster_model_dial_as_expected():
    roster = parse_roster("id,full_name,email,service,extension,forward_to,forward_mode\n"
                          "amartin,A M,a@x.fr,rsa,1001,06 12 34 56 78,always\n", "csv")
    assert roster.ok
    assert cme.desired_forwarding(roster.people[0], FR) == cme.Forwarding(all="00612345678")
