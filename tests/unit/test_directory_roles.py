"""What the directory's roles write: sssd's settings on the desktop hosts (from the roster source's own
settings) and the controller's sync timer; the playbooks that use them parse."""
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = {"type": "ldap", "uri": "ldaps://10.89.251.40", "base_dn": "OU=People, DC=lab,DC=example",
          "bind_dn": "CN=teleshift-reader,CN=Users,DC=lab,DC=example", "bind_password": "pw-1234",
          "attributes": {"id": ["uid", "sAMAccountName"]}}


def trusted(value):
    """ansible-core 2.19 templates only trusted text (as the role's own files are to Ansible)."""
    try:
        from ansible.template import trust_as_template
    except ImportError:  # older ansible-core trusts every string
        return value
    return trust_as_template(value) if isinstance(value, str) else value


def template(text, variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    variables = {k: trusted(v) for k, v in variables.items()}
    return Templar(loader=DataLoader(), variables=variables).template(trusted(text))


def render(path, **variables):
    variables.setdefault("ansible_managed", "Ansible managed")
    return template(path.read_text(), variables)


def sssd(**overrides):
    variables = {"xrdp_host_directory": SOURCE, "xrdp_host_directory_schema": "ad",
                 "xrdp_host_directory_ca_file": "/inv/ca.pem", "xrdp_host_directory_ca_path": "/etc/teleshift/ca.pem"}
    variables.update(overrides)
    text = render(ROOT / "roles" / "xrdp_host" / "templates" / "sssd.conf.j2", **variables)
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line and not line.startswith("#"))


def test_sssd_asks_the_roster_source_over_verified_tls_and_never_from_a_cache():
    conf = sssd()
    assert conf["ldap_uri"] == "ldaps://10.89.251.40" and conf["ldap_tls_reqcert"] == "demand"
    assert conf["ldap_tls_cacert"] == "/etc/teleshift/ca.pem"
    assert conf["ldap_search_base"] == "DC=lab,DC=example" and conf["ldap_user_search_base"] == SOURCE["base_dn"]
    assert conf["ldap_user_name"] == "uid"  # the roster's id attribute
    assert conf["ldap_default_authtok"] == "pw-1234" and conf["cache_credentials"] == "false"
    assert conf["ldap_account_expire_policy"] == "ad" and conf["ldap_id_mapping"] == "true"
    assert "ldap_id_use_start_tls" not in conf


def test_sssd_uses_starttls_for_an_ldap_uri_and_the_system_authorities_without_ca_file():
    conf = sssd(xrdp_host_directory={**SOURCE, "uri": "ldap://dc", "allow_starttls": True},
                xrdp_host_directory_ca_file="")
    assert conf["ldap_id_use_start_tls"] == "true" and "ldap_tls_cacert" not in conf


def test_the_role_defaults_follow_the_roster_source():
    defaults = yaml.safe_load((ROOT / "roles" / "xrdp_host" / "defaults" / "main.yml").read_text())

    def value(name, **variables):
        return template(defaults[name], {**defaults, **variables})

    assert value("xrdp_host_directory_logins", teleshift_roster_source=SOURCE) is True
    assert value("xrdp_host_directory_logins") is False  # a roster file: local passwords from the kits
    assert value("xrdp_host_directory_ca_file", teleshift_roster_source={**SOURCE, "ca_file": "pki/ca.pem"},
                 inventory_dir="/inv").strip() == "/inv/pki/ca.pem"


def test_the_sync_timer_runs_the_sync_script_with_paths_only():
    role = ROOT / "roles" / "teleshift_sync"
    variables = {"teleshift_sync_checkout": "/opt/teleshift", "teleshift_sync_inventory": "/srv/inv dir",
                 "teleshift_sync_timeout": 600, "teleshift_sync_vault_password_file": "/root/.vault",
                 "teleshift_sync_user": "root", "teleshift_sync_interval": "5min"}
    env = render(role / "templates" / "sync.env.j2", **variables)
    assert "TELESHIFT_INVENTORY='/srv/inv dir'" in env and "ANSIBLE_VAULT_PASSWORD_FILE=/root/.vault" in env
    service = render(role / "templates" / "teleshift-sync.service.j2", **variables)
    timer = render(role / "templates" / "teleshift-sync.timer.j2", **variables)
    assert "ExecStart=/usr/local/sbin/teleshift-sync" in service and "TimeoutStartSec=660" in service
    assert "OnUnitInactiveSec=5min" in timer and "WantedBy=timers.target" in timer
    script = (role / "files" / "teleshift-sync").read_text()
    assert subprocess.run(["sh", "-n", str(role / "files" / "teleshift-sync")]).returncode == 0
    assert "flock -n" in script and "playbooks/sync.yml" in script


@pytest.mark.parametrize("playbook", ["sync.yml", "sync_timer.yml", "lab_directory.yml"])
def test_the_playbooks_parse(playbook):
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "--syntax-check",
                           str(ROOT / "playbooks" / playbook)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
