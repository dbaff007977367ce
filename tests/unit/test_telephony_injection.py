"""Config injection: hostile values in every roster field and in the inventory values the Asterisk files
hold. Each rendered file is read back (a strict reader following Asterisk's own parsing rules here; the
lab test reads them with Asterisk itself) and must hold exactly the expected sections and options."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import asterisk as A
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from hostile import asterisk as H


def read_back(plan):
    return {name: A.parse_conf(text) for name, text in plan.files.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(persons=H.people(), inventory=H.inventories())
def test_hostile_values_never_add_a_section_or_an_option(persons, inventory):
    variables, hostile = inventory
    plan, phones, problems = H.compile_hostile(persons, variables)
    if plan is None:  # refused: only ever for the inventory values made hostile, each named
        assert problems and {p.field for p in problems} <= hostile | {"asterisk_pbx_trunk.match[0]"}, problems
        return
    assert [p for p in persons if H.safe(p)] == phones
    H.check_read_back(read_back(plan), phones, variables)
    for name in plan.files:  # the module's pre-apply checks pass: one person's name never blocks everyone
        A.parse_conf(plan.files[name])
    assert A.check_pjsip(plan.files["pjsip.conf"]) == []


@pytest.mark.parametrize("attack", H.ATTACKS)
def test_each_known_attack_in_names_and_emails_is_neutralised(attack):
    person = Person(id="amartin", full_name=f"Anaïs {attack} Martin", email=attack, service="rsa",
                    needs=frozenset({"phone"}), extension="1001", voicemail=True)
    plan, phones, problems = H.compile_hostile([person], H.BASE_PBX)
    assert not problems and phones == [person]
    read = read_back(plan)
    H.check_read_back(read, phones, H.BASE_PBX)
    box = dict(dict(read["voicemail.conf"])["teleshift"])["1001"].split(",")
    assert box[2] == "" and box[4] == H.VM_OPTIONS  # no address, no extra mailbox option
    assert "evil" not in [s for s, _ in read["extensions.conf"] + read["pjsip.conf"]]


def test_a_damaged_kit_secret_is_named_not_written():
    person = Person(id="amartin", full_name="A", email="a@x.example", service="rsa", needs=frozenset({"phone"}),
                    extension="1001", voicemail=True)
    cfg, _, _ = T.load_pbx_config(H.BASE_PBX, T.NumberPolicy())
    with pytest.raises(ValueError, match="amartin/phone/sip_password"):
        T.render_pjsip([person], cfg, lambda p, n: "good-secret\n[evil]")
    with pytest.raises(ValueError, match="amartin/phone/voicemail_pin"):
        T.render_voicemail([person], cfg, lambda p, n: "12;34")


@given(st.text(max_size=40))
def test_clean_text_leaves_nothing_that_ends_a_line_or_a_field(text):
    cleaned = T.clean_text(text, ',|"<>\\')
    assert not T.has_control(cleaned) and not set(cleaned) & set(';,|"<>\\')
    assert cleaned == cleaned.strip() and "  " not in cleaned


def test_the_strict_reader_follows_asterisks_comment_rules():
    text = ("[general]\nkey=va\\;lue ; comment\nname=\"A\rB\" <1001>\n;--\n[hidden]\nx=1\n--;\n[s2]\n"
            "exten => 1,1,NoOp(a,b)\nemail=a@b.c,,dialout=x|y\n")
    # what Asterisk 22's GetConfig returned for this text on the lab PBX
    assert A.parse_conf(text) == [("general", [("key", "va;lue"), ("name", "\"A\rB\" <1001>")]),
                                  ("s2", [("exten", "1,1,NoOp(a,b)"), ("email", "a@b.c,,dialout=x|y")])]
