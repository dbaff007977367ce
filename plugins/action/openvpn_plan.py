# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.openvpn_plan: the OpenVPN plan, PKI and kits, on the controller,
before any gateway is touched (see plugins/modules/openvpn_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_kits as K
from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_pki as pki
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import gateway_slice, routes, state_of
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state

CA_NAME = "teleshift OpenVPN CA"


def id_list(value):
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "rotate", "kits_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        cap = registry.get("openvpn")
        # what OpenVPN applies, and only that (a stale setting of another capability never keeps a leaver in)
        inputs = front_door.open_plan(self._templar, task_vars, args, result, cap.name,
                                      "OpenVPN plan failed, no host was changed.")
        if inputs is None:
            return result
        if not cap.hosts(inputs):
            result.update(changed=False, gateways={}, routes=[], pki_dir="",
                          msg="OpenVPN is not offered here: the group openvpn_gateways has no host")
            return result
        settings = cap.settings(inputs)
        previous = inputs.state(cap)
        plan = cap.plan(inputs)
        rotate = id_list(args.get("rotate", task_vars.get("openvpn_rotate")))
        unknown = sorted(set(rotate) - set(plan.people))
        if unknown:
            result.update(failed=True,
                          msg="openvpn_rotate names people without an active vpn need: " + ", ".join(unknown))
            return result
        write = not self._task.check_mode
        kits = str(inputs.kits_root())
        try:
            store = pki.PkiStore(cap.pki_dir(inputs), write=write)
            ca_cert, ca_key, ca_new = store.ca(CA_NAME, settings.ca_days, org=settings.organisation)
            issuer = pki.Issuer(ca_cert, ca_key)
            tls_crypt = store.tls_crypt()
            servers = K.gateway_certificates(store, issuer, settings.gateways, settings)
        except (pki.PkiError, OSError) as exc:
            result.update(failed=True, msg=f"OpenVPN PKI: {exc}")
            return result
        recorded = set((previous.get("revoked") or {}))
        same_ca = (previous.get("ca") or {}).get("fingerprint") == pki.fingerprint(ca_cert)
        certs = K.person_certificates(sorted(plan.people), previous, kits, issuer, settings, rotate=rotate,
                                      revoked_serials=recorded, write=write, trust_state=same_ca)
        revoked, gone = K.revocations(previous, set(plan.people), certs.revoked)
        crl, crl_new = K.crl_text(store, issuer, revoked, settings)
        ca_pem = pki.cert_pem(ca_cert)
        ca_record = {"fingerprint": pki.fingerprint(ca_cert), "not_after": K.iso(ca_cert.not_valid_after_utc)}
        state = state_of(plan, certs.records, revoked, settings, ca_record)
        state_changed = state != previous
        if write and state_changed:
            save_state(inputs.path(cap.state_file), state)
        written = (K.write_profiles(plan, settings, kits, ca_pem, tls_crypt, certs.records, certs.material)
                   if write else [])
        certs.material.clear()
        public = {"ca": ca_pem, "crl": crl, "cert": {n: c for n, (c, _k) in servers.items()},
                  "digests": {n: {"server.key": pki.digest(k), "tls-crypt.key": pki.digest(tls_crypt)}
                              for n, (_c, k) in servers.items()}}
        kick = set(certs.rotated)
        before, after = previous.get("people") or {}, state["people"]
        moved = sorted(pid for pid in after
                       if pid in before and (before[pid] or {}).get("address") != after[pid]["address"])
        result.update(
            changed=bool(state_changed or (write and (certs.issued or written or crl_new or ca_new))),
            gateways={name: gateway_slice(plan, g, inputs.settings.services, settings, public, kick)
                      for name, g in sorted(settings.gateways.items()) if g.pool is not None},
            routes=routes(settings),
            pki_dir=store.dir,
            state_file=str(inputs.path(cap.state_file)),
            kits_dir=kits,
            people={"openvpn": len(plan.people), "retired": len(plan.retired), "revoked": len(revoked)},
            added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)), moved=moved,
            issued=sorted(certs.issued), renewed=sorted(certs.renewed), rotated=sorted(certs.rotated),
            revoked=sorted(gone + certs.rotated), kits_written=len(written), crl_resigned=crl_new,
            msg=(f"{len(plan.people)} people on {len(settings.gateways)} OpenVPN gateway(s); "
                 f"{len(set(after) - set(before))} new, {len(gone)} revoked, {len(certs.issued)} certificate(s) "
                 f"issued ({len(certs.renewed)} renewed, {len(certs.rotated)} rotated)"
                 + ("" if write else " (check mode: nothing written)")),
        )
        if self._task.diff:
            changed_ids = set(result["added"] + result["removed"] + moved + result["issued"])

            def lines(entries):
                return "".join(f"{pid}: {e.get('gateway')} {e.get('address')} certificate {e.get('serial', '-')}\n"
                               for pid, e in sorted(entries.items()) if pid in changed_ids)
            header = f"{result['state_file']} (people)"
            result["diff"] = {"before": lines(before), "after": lines(after), "before_header": header,
                              "after_header": header}
        return result
