# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The number policy as ordered POSIX ERE rules the dialplan can check (Asterisk's REGEX is regexec).

phonenumbers decides a number's type by trying its region's patterns in a fixed order (premium rate,
toll free, shared cost, voip, personal, pager, UAN, voicemail, then fixed line and mobile), each with
its possible lengths. ``dial_rules`` turns that order into rules: each rule is a list of (variable,
regex) that must all match, and a verdict; the first matching rule decides, no match refuses. The
regexes are phonenumbers' own patterns translated to ERE (``ere``), so the dialplan and the preflight
agree on every national number and short code; numbers abroad (when allowed at all) are checked for
shape only by the dialplan (their type is checked at compile time, for forwarding targets).
"""
from __future__ import annotations

import re

ALLOW, REFUSE = "allow", "refuse"
NATIONAL_ORDER = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                  "voicemail")
_SIMPLE = set("0123456789[]-^|(){},*+?.$")


def ere(pattern):
    """``pattern`` (Python/Java syntax, as phonenumbers and inventories write them) as POSIX ERE.

    Translates ``(?:`` to ``(``, ``\\d`` to ``[0-9]`` and ``\\+ \\. \\*`` ... to bracket expressions;
    raises ValueError for anything ERE lacks or reads differently (lookarounds, lazy quantifiers, \\s...).
    """
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("(?:", i):
            out.append("(")
            i += 3
            continue
        if pattern.startswith("(?", i):
            raise ValueError(f"{pattern!r}: '(?' groups other than (?: have no POSIX equivalent")
        if char == "\\":
            nxt = pattern[i + 1:i + 2]
            if nxt == "d":
                out.append("[0-9]")
            elif nxt and nxt in "+.*?()[]{}|^$-":
                out.append(f"[{nxt}]" if nxt not in "^-]" else {"^": "[\\^]", "-": "[-]", "]": "[]]"}[nxt])
            else:
                raise ValueError(f"{pattern!r}: '\\{nxt}' has no POSIX ERE equivalent here")
            i += 2
            continue
        if char in "*+?}" and pattern[i + 1:i + 2] == "?":
            raise ValueError(f"{pattern!r}: lazy quantifiers have no POSIX equivalent")
        if not (char in _SIMPLE or char.isalpha() or char in "/#@:_ =!%&'~<>"):
            raise ValueError(f"{pattern!r}: character {char!r} is not allowed in a dialplan pattern")
        out.append(char)
        i += 1
    result = "".join(out)
    if '"' in result or "\\" in result.replace("[\\^]", ""):
        raise ValueError(f"{pattern!r}: quotes and backslashes cannot reach the dialplan")
    re.compile(result)
    return result


def _digits(desc):
    return desc is not None and desc.national_number_pattern is not None


def _desc_regexes(prefix, desc, general):
    """(num, regex) conditions meaning 'the national significant number after ``prefix`` matches ``desc``'."""
    lengths = [n for n in (desc.possible_length or general.possible_length) if n > 0]
    conds = [("num", f"^{prefix}({ere(desc.national_number_pattern)})$")]
    low, high = (min(lengths), max(lengths)) if lengths else (0, 0)
    if lengths and low == high:
        conds.append(("num", f"^{prefix}[0-9]{{{low}}}$"))
    elif lengths and sorted(lengths) == list(range(low, high + 1)):
        conds.append(("num", f"^{prefix}[0-9]{{{low},{high}}}$"))
    elif lengths:
        conds.append(("num", f"^{prefix}(" + "|".join(f"[0-9]{{{n}}}" for n in sorted(lengths)) + ")$"))
    return conds


def _verdict(policy, kind):
    if kind == "premium_rate":
        return ALLOW if policy.allow_premium else REFUSE
    return ALLOW if kind in policy.allowed_types else REFUSE


def home_prefix(region, number_format):
    """What precedes a national significant number in a dial string to a number of ``region``."""
    import phonenumbers

    if number_format == "e164":
        return f"[+]{phonenumbers.country_code_for_region(region)}"
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return meta.national_prefix or ""


def check_region(region):
    """None when the dialplan can apply phonenumbers' rules for ``region`` exactly, else why not."""
    import phonenumbers

    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None:
        return f"{region!r} is not a region phonenumbers knows"
    if len(phonenumbers.region_codes_for_country_code(meta.country_code)) > 1:
        return (f"{region} shares country code +{meta.country_code} with other regions: the dialplan cannot "
                "tell their numbers apart")
    prefix = meta.national_prefix or ""
    if meta.national_prefix_transform_rule or (meta.national_prefix_for_parsing or prefix) != prefix \
            or not re.fullmatch(r"[0-9]*", prefix):
        return f"{region}'s national prefix rules are too complex for the dialplan"
    return None


def dial_rules(policy, number_format="national", own=(), emergency=()):
    """[(verdict, [(variable, ERE)])] in order: the first rule whose conditions all match decides.

    Variables: ``num`` (the dial string the trunk is sent) and ``e164`` (the same number as +<cc>...,
    for the inventory's allowed_patterns). ``own``: dial strings of the organisation's own numbers,
    ``emergency``: emergency numbers (both refused here: forwarding there is a loop or an abuse).
    """
    import phonenumbers

    why = check_region(policy.region)
    if why:
        raise ValueError(why)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(policy.region)
    short = phonenumbers.PhoneMetadata.short_metadata_for_region(policy.region)
    general = meta.general_desc
    prefix = home_prefix(policy.region, number_format)
    # allowed_patterns: one must match (an alternation of the translated patterns)
    patterns = ([("e164", "(" + ")|(".join(ere(p) for p in policy.allowed_patterns) + ")")]
                if policy.allowed_patterns else [])
    rules = []
    fixed = [n for n in list(own) + list(emergency) if n]
    if fixed:
        rules.append((REFUSE, [("num", "^(" + "|".join(re.escape(n).replace("\\+", "[+]") for n in fixed) + ")$")]))
    base = _desc_regexes(prefix, general, general)
    for kind in NATIONAL_ORDER:
        desc = getattr(meta, kind)
        if _digits(desc):
            rules.append((_verdict(policy, kind), base + _desc_regexes(prefix, desc, general)))
    if _digits(meta.fixed_line):
        fixed_line = _desc_regexes(prefix, meta.fixed_line, general)
        if meta.same_mobile_and_fixed_line_pattern:
            rules.append((_verdict(policy, "fixed_line_or_mobile"), base + fixed_line))
        else:
            if _digits(meta.mobile):
                mobile = _desc_regexes(prefix, meta.mobile, general)
                rules.append((_verdict(policy, "fixed_line_or_mobile"), base + fixed_line + mobile))
            rules.append((_verdict(policy, "fixed_line"), base + fixed_line))
    if _digits(meta.mobile) and not meta.same_mobile_and_fixed_line_pattern:
        rules.append((_verdict(policy, "mobile"), base + _desc_regexes(prefix, meta.mobile, general)))
    # numbers of the home region written internationally are never a dial string: refused
    cc = phonenumbers.country_code_for_region(policy.region)
    intl = "[+]" if number_format == "e164" else "00"
    rules.append((REFUSE, [("num", f"^{intl}{cc}")]))
    if policy.allow_international:  # abroad: shape only (types are checked at compile time)
        rules.append((ALLOW, [("num", f"^{intl}[1-9][0-9]{{6,14}}$")]))
    # a home number of no listed type (a national prefix then digits) is refused before short codes
    if prefix:
        rules.append((REFUSE, [("num", f"^{prefix}[0-9]*$")]))
    if policy.allow_short_codes and short is not None and _digits(short.short_code):
        sgen = short.general_desc
        sbase = _desc_regexes("", sgen, sgen) + _desc_regexes("", short.short_code, sgen)
        if _digits(short.premium_rate):
            rules.append((ALLOW if policy.allow_premium else REFUSE,
                          sbase + _desc_regexes("", short.premium_rate, sgen)))
        rules.append((ALLOW, sbase))
    return [(verdict, list(dict.fromkeys(conds)) + (patterns if verdict == ALLOW else [])) for verdict, conds in rules]
