"""Hostile roster and inventory values for the Asterisk renderers, and what each rendered file must hold.

Shared by tests/unit/test_telephony_injection.py (read back with a strict Python reader) and
tests/lab/test_telephony.py (read back by Asterisk itself on the lab PBX). People are built directly,
bypassing roster validation: the renderers must be safe on their own (defence in depth).
"""
from __future__ import annotations

import dataclasses
import re

from hypothesis import strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person, Roster

NASTY = list(";,|\"<>[]\\=$(){}#&*\t\r\n\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\ufeff") + ["=>", ";--", "--;"]
ATTACKS = ["a@b.c,,dialout=ts-internal|callback=ts-internal", "\r[evil]\r", "x;comment", "x\\;y", ";--",
           "#include /etc/passwd", "Name\nexten => _X.,1,Dial(PJSIP/0899@operator)", "${SHELL(id)}", "\u2028[evil]"]
SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs")), max_size=12)
HOSTILE_TEXT = st.one_of(
    st.sampled_from(ATTACKS),
    st.lists(st.one_of(st.sampled_from(NASTY), SAFE_TEXT), max_size=6).map("".join),
    st.text(max_size=20))
EMAILS = st.one_of(st.sampled_from(["anais.martin@departement.example", "x@y.example"] + ATTACKS),
                   st.builds(lambda a, b: f"{a}@{b}.example", HOSTILE_TEXT, SAFE_TEXT))

SIP_SECRET = "Kept1Secret2For3Tests"
PIN = "246813"
BASE_PBX = {
    "asterisk_pbx_trunk": {"host": "10.89.250.60", "dids": {"0546000000": "8000"}},
    "asterisk_pbx_mailboxes": [{"box": "8900", "name": "Accueil", "email": "accueil@x.example", "pin": "2468"}],
    "asterisk_pbx_attendants": [{"name": "accueil", "extension": "8000", "greeting": {"text": "Bonjour"},
                                 "then": {"voicemail": "8900"}}],
    "asterisk_pbx_queues": [{"name": "social", "extension": "8100", "agents": ["p0"], "then": {"voicemail": "8900"}}],
    "asterisk_pbx_conferences": [{"name": "crise", "extension": "8500", "pin": "4711"}],
    "asterisk_pbx_holidays": [{"date": "2026-12-25", "label": "Noël"}],
    "asterisk_pbx_voicemail": {"from_email": "pbx@x.example", "from_name": "Messagerie"},
}
# Inventory values a hostile example may replace: (path in BASE_PBX, how to set it)
INVENTORY_FIELDS = {
    "asterisk_pbx_trunk.username": lambda v, x: v["asterisk_pbx_trunk"].update(username=x, password="pw;x"),
    "asterisk_pbx_trunk.password": lambda v, x: v["asterisk_pbx_trunk"].update(username="ts", password=x),
    "asterisk_pbx_trunk.host": lambda v, x: v["asterisk_pbx_trunk"].update(host=x),
    "asterisk_pbx_mailboxes[0].name": lambda v, x: v["asterisk_pbx_mailboxes"][0].update(name=x),
    "asterisk_pbx_mailboxes[0].email": lambda v, x: v["asterisk_pbx_mailboxes"][0].update(email=x),
    "asterisk_pbx_holidays[0].label": lambda v, x: v["asterisk_pbx_holidays"][0].update(label=x),
    "asterisk_pbx_voicemail.from_name": lambda v, x: v["asterisk_pbx_voicemail"].update(from_name=x),
    "asterisk_pbx_voicemail.from_email": lambda v, x: v["asterisk_pbx_voicemail"].update(from_email=x),
    "asterisk_pbx_timezone": lambda v, x: v.update(asterisk_pbx_timezone=x),
    "asterisk_pbx_codecs[0]": lambda v, x: v.update(asterisk_pbx_codecs=[x]),
    "asterisk_pbx_mail_command": lambda v, x: v.update(asterisk_pbx_mail_command="/usr/sbin/sendmail " + x),
}


@st.composite
def people(draw, count=4):
    result = []
    for i in range(draw(st.integers(1, count))):
        hostile_id = draw(st.booleans()) and draw(st.booleans())
        result.append(Person(
            id=draw(HOSTILE_TEXT) if hostile_id else f"p{i}",
            full_name=draw(HOSTILE_TEXT), email=draw(EMAILS), service="rsa", needs=frozenset({"phone"}),
            extension=draw(st.sampled_from([str(1001 + i), str(1001 + i), "112", f"{1001 + i}\n", "1001;x"])),
            voicemail=draw(st.booleans()), language=draw(st.sampled_from(["fr", "en", "fr\n[evil]", "de"])),
            line=i + 2))
    return result


@st.composite
def inventories(draw):
    variables = {k: (dict(v) if isinstance(v, dict) else [dict(x) for x in v]) for k, v in BASE_PBX.items()}
    variables["asterisk_pbx_trunk"]["dids"] = dict(BASE_PBX["asterisk_pbx_trunk"]["dids"])
    hostile = draw(st.lists(st.sampled_from(sorted(INVENTORY_FIELDS)), max_size=3, unique=True))
    for path in hostile:
        INVENTORY_FIELDS[path](variables, draw(HOSTILE_TEXT))
    return variables, set(hostile)


def secret_of(person, name):
    return SIP_SECRET if name == "sip_password" else PIN


def compile_hostile(persons, variables):
    """(plan or None, people rendered, problems): None when the inventory was refused."""
    roster = Roster(people=persons, source="hostile.csv")
    policy = T.NumberPolicy()
    phones = T.phone_people(roster)
    cfg, problems, _ = T.load_pbx_config(variables, policy, {p.id: p.extension for p in phones})
    if problems:
        return None, phones, problems
    return T.plan_pbx(phones, cfg, policy, secret_of), phones, []


def safe(person):
    """Whether the renderers may write this person at all (otherwise they are left out)."""
    return bool(re.fullmatch(r"[a-z][a-z0-9._-]{0,31}", person.id)
                and re.fullmatch(r"[1-9][0-9]{1,5}", person.extension)
                and person.extension not in T.EMERGENCY_NUMBERS)


ENDPOINT = ["type", "context", "disallow", "allow", "auth", "aors", "callerid", "language"]
ENDPOINT_TAIL = ["direct_media", "rtp_symmetric", "force_rport", "rewrite_contact", "allow_subscribe"]
VM_OPTIONS = "attach=yes|tz=local|saycid=no|envelope=no"


def expected(plan_people, cfg_vars):
    """{file: [(section, [keys])]} every rendered file must hold exactly, from the inputs alone."""
    trunk = cfg_vars["asterisk_pbx_trunk"]
    auth = bool(trunk.get("username"))
    pjsip = [("global", ["type", "endpoint_identifier_order", "user_agent", "default_realm"]),
             ("transport-udp", ["type", "protocol", "bind"]),
             ("operator", ["type", "context", "disallow", "allow", "aors", "direct_media", "rtp_symmetric",
                           "send_pai", "trust_id_inbound", "send_connected_line"]
                          + (["outbound_auth"] if auth else [])),
             ("operator", ["type", "contact", "qualify_frequency"]),
             ("operator", ["type", "endpoint", "match"])]
    if auth:
        pjsip += [("operator-auth", ["type", "auth_type", "username", "password"]),
                  ("operator", ["type", "outbound_auth", "server_uri", "client_uri", "retry_interval"])]
    voicemail_keys = []
    for p in plan_people:
        pjsip += [(p.extension, ENDPOINT + (["mailboxes"] if p.voicemail else []) + ENDPOINT_TAIL),
                  (p.extension, ["type", "auth_type", "username", "password"]),
                  (p.extension, ["type", "max_contacts", "remove_existing"])]
        if p.voicemail:
            voicemail_keys.append(p.extension)
    voicemail = [("general", ["format", "serveremail", "fromstring", "attach", "maxmsg", "maxsecs", "maxlogins",
                              "mailcmd", "emailsubject", "emailbody"]),
                 ("zonemessages", ["local"]), ("teleshift", voicemail_keys + ["8900"])]
    queues = [("general", ["persistentmembers", "autofill", "shared_lastcall", "monitor-type"]),
              ("social", ["strategy", "timeout", "retry", "wrapuptime", "announce-position", "announce-frequency",
                          "announce-holdtime", "joinempty", "leavewhenempty", "ringinuse", "musicclass"])]
    confbridge = [("ts-bridge-crise", ["type", "max_members"]),
                  ("ts-user-crise", ["type", "pin", "announce_user_count", "announce_join_leave", "quiet"])]
    contexts = ["general", "globals", "ts-policy", "ts-forward", "ts-desk", "ts-desks", "ts-services", "ts-route",
                "ts-att-accueil", "ts-queue-social", "ts-conf-crise", "ts-from-trunk", "ts-features", "ts-agent",
                "ts-agent-mobile", "ts-emergency", "ts-dialout", "ts-internal"]
    return {"pjsip.conf": pjsip, "voicemail.conf": voicemail, "queues.conf": queues, "confbridge.conf": confbridge,
            "extensions.conf": contexts, "desks": 2 * len(plan_people)}


def check_read_back(read, plan_people, variables):
    """Compare files as read back ({file: [(section, [(key, value)])]}) with what they must hold."""
    want = expected(plan_people, variables)
    for name in ("pjsip.conf", "voicemail.conf", "queues.conf", "confbridge.conf"):
        got = [(section, [k for k, _ in items]) for section, items in read[name]]
        assert got == want[name], f"{name}: sections and options differ\n{got}\n!=\n{want[name]}"
    assert sorted(s for s, _ in read["extensions.conf"]) == sorted(want["extensions.conf"])
    desks = dict(read["extensions.conf"])["ts-desks"]
    assert len(desks) == want["desks"] and all(k in ("exten", "same") for k, _ in desks)
    by_ext = {p.extension: p for p in plan_people}
    for section, items in read["pjsip.conf"]:
        values = dict(items)
        if section in by_ext and values.get("type") == "endpoint":
            found = re.fullmatch(r'"([^"\\<>;]*)" <(\d+)>', values["callerid"])
            assert found and found.group(2) == section and not T.has_control(found.group(1)), values["callerid"]
            assert values["language"] in ("fr", "en")
        if section in by_ext and values.get("type") == "auth":
            assert values["password"] == SIP_SECRET
        if section == "operator-auth":
            assert values["password"] == variables["asterisk_pbx_trunk"]["password"]  # ';' escaped, read back
    boxes = dict(dict(read["voicemail.conf"])["teleshift"])
    for ext, line in boxes.items():
        fields = line.split(",")
        assert len(fields) == 5, line
        if ext in by_ext:
            email = by_ext[ext].email
            assert fields == [PIN, fields[1], email if T.EMAIL_RE.match(email) else "", "", VM_OPTIONS], line
        assert "|" not in fields[1] and not T.has_control(fields[1])
    return True


def strip_person(person, **changes):
    return dataclasses.replace(person, **changes)
