"""Onboarding notices: for each person, one page (HTML, and PDF on request) in their language with
everything the capabilities left in their kit, step-by-step instructions for home wifi, a wired
connection and 4G tethering, and the hotline's number.

What the notice reads (each capability writes only its own subdirectory of ``<kits>/<person id>/``;
the notice only reads them and writes ``notice/``):
- ``vpn/``: the first ``*.conf`` with an ``[Interface]`` section (WireGuard profile: its Address and
  Endpoint are shown, and a QR code of it for the mobile app, unless ``vpn/`` already has a
  ``*qr*.svg`` or ``*qr*.png``); ``desktop/``: ``*.rdp`` (host and user read from it);
  ``phone/`` and any of them: ``summary.yml`` (a mapping shown as label: value), files named
  ``password``, ``secret`` or ``*.password`` (shown: the notice is in the kit, 0600). Every file
  of the subdirectory is listed. A capability with nothing in the kit shows as "being prepared".
- public state files are not needed: everything comes from the kit and the roster.

Secrets: the notice is a kit file (0600 in a 0700 directory); nothing is printed or logged.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import kit_dir, write_kit_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTICE = "notice"  # this command's own kit subdirectory
SECRET_NAMES = re.compile(r"^(password|secret|sip_password|pin)(\.txt)?$|\.password$")
MAX_FILE = 256 * 1024  # kit files larger than this are listed, never read
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-extensions",
                  "--disable-sync", "--no-default-browser-check")


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env


_TEXT = None


def texts():
    """The notice's words in every language (templates/notice_text.yml)."""
    global _TEXT
    if _TEXT is None:
        _TEXT = yaml.safe_load((TEMPLATES / "notice_text.yml").read_text(encoding="utf-8"))
    return _TEXT


def _read(path):
    try:
        if path.stat().st_size > MAX_FILE:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _ini_values(text, keys):
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() in keys and name.strip().lower() not in found:
            found[name.strip().lower()] = value.strip()
    return found


def qr_svg(text):
    """Inline SVG QR code of ``text`` (when the VPN kit has no QR image of its own)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import qr

    return qr.svg(*qr.matrix(text), scale=3, inline=True)


def collect(root, person_id):
    """What the capabilities left in ``<root>/<person id>/``: capability -> details (absent = nothing)."""
    base = Path(root) / person_id
    result = {}
    for cap in ("vpn", "desktop", "phone"):
        folder = base / cap
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            continue
        info = {"files": [f"{cap}/{p.name}" for p in files], "fields": [], "secrets": []}
        for path in files:
            if path.name == "summary.yml":
                try:
                    data = yaml.safe_load(_read(path) or "") or {}
                except yaml.YAMLError:
                    data = {}
                if isinstance(data, dict):
                    info["fields"] += [(str(k), str(v)) for k, v in data.items()]
            elif SECRET_NAMES.search(path.name):
                value = (_read(path) or "").strip()
                if value:
                    info["secrets"].append((path.name.replace(".txt", ""), value))
        if cap == "vpn":
            for path in files:
                text = _read(path) if path.suffix == ".conf" else None
                if text and "[Interface]" in text:
                    info["config_file"] = f"vpn/{path.name}"
                    info["config"] = text
                    info.update(_ini_values(text, {"address", "endpoint", "dns"}))
                    break
            stem = Path(info.get("config_file", "")).stem
            for path in sorted(files, key=lambda f: (f.stem != stem, f.suffix != ".svg")):
                if (path.stem == stem or "qr" in path.name.lower()) and path.suffix in (".svg", ".png"):
                    data = path.read_bytes()
                    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
                    info["qr_uri"] = f"data:{mime};base64,{base64.b64encode(data).decode()}"
                    break
        if cap == "desktop":
            for path in files:
                if path.suffix == ".rdp":
                    info["rdp_file"] = f"desktop/{path.name}"
                    for line in (_read(path) or "").splitlines():
                        key, _, value = line.partition(":s:")
                        if key.strip() in ("full address", "username"):
                            info[key.strip().replace(" ", "_")] = value.strip()
                    break
        result[cap] = {**OPTIONAL_FIELDS.get(cap, {}), **info}
    return result


# What the notice template may read of each capability (its environment is strict: a key a kit does
# not provide is None, not an error).
OPTIONAL_FIELDS = {
    "vpn": dict.fromkeys(("config_file", "config", "address", "endpoint", "dns", "qr_uri", "qr_svg")),
    "desktop": dict.fromkeys(("rdp_file", "full_address", "username")),
}


def _qr_cached(root, person_id, config):
    """QR for the VPN config, kept in the notice directory and rebuilt only when the config changes."""
    digest = hashlib.sha256(config.encode()).hexdigest()[:16]
    folder = Path(root) / person_id / NOTICE
    cached = folder / f".qr-{digest}.svg"
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    svg = qr_svg(config)
    for old in folder.glob(".qr-*.svg") if folder.is_dir() else ():
        old.unlink()
    write_kit_file(root, person_id, NOTICE, cached.name, svg)
    return svg


def person_view(person, services):
    policy = services.get(person.service) or {}
    return {"id": person.id, "full_name": person.full_name, "email": person.email, "service": person.service,
            "service_label": policy.get("label") or person.service, "device": person.device,
            "needs": [n for n in ("vpn", "desktop", "phone") if n in person.needs], "extension": person.extension,
            "forward_to": person.forward_to, "forward_mode": person.forward_mode,
            "forward_delay": person.forward_delay, "voicemail": person.voicemail, "language": person.language,
            "site": person.site, "priority": person.priority}


def render_notice(template, person, root, org):
    """The notice HTML of one person (a dict from person_view); org: {"name", "hotline"}."""
    caps = collect(root, person["id"])
    vpn = caps.get("vpn")
    if vpn and vpn.get("config") and not vpn.get("qr_uri"):
        vpn["qr_svg"] = _qr_cached(root, person["id"], vpn["config"])
    lang = person["language"] if person["language"] in texts() else "fr"
    return template.render(p=person, caps=caps, t=texts()[lang], lang=lang, org=org.get("name", ""),
                           hotline=org.get("hotline", ""))


def _write_batch(batch, root, org):
    """Render and write a batch of notices (runs in a worker process); returns (written, unchanged)."""
    template = _env().get_template("notice.html.j2")
    written = 0
    for person in batch:
        html = render_notice(template, person, root, org)
        if write_kit_file(root, person["id"], NOTICE, "notice.html", html):
            written += 1
    return written, len(batch) - written


def write_notices(people, root, org, jobs=None):
    """Write ``<root>/<id>/notice/notice.html`` for every person dict; returns (written, unchanged)."""
    people = list(people)
    jobs = jobs or os.cpu_count() or 1
    Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    if jobs <= 1 or len(people) < 200:
        return _write_batch(people, root, org)
    size = max(50, len(people) // (jobs * 4))
    batches = [people[i:i + size] for i in range(0, len(people), size)]
    written = unchanged = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for w, u in pool.map(_write_batch, batches, [root] * len(batches), [org] * len(batches)):
            written += w
            unchanged += u
    return written, unchanged


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def html_to_pdf(html_path, pdf_path, timeout=60, browser=None):
    """Print one HTML file to PDF with headless Chromium; the PDF is 0600 from the start."""
    browser = browser or chromium()
    if not browser:
        raise RuntimeError("chromium is not installed (Debian package: chromium)")
    pdf_path = Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="ts-chromium-") as profile:
        tmp = pdf_path.with_name(f".{pdf_path.name}.tmp")
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={tmp}", Path(html_path).resolve().as_uri()]
        old = os.umask(0o077)
        try:
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
                                  check=False)
        finally:
            os.umask(old)
        if proc.returncode != 0 or not tmp.exists():
            if tmp.exists():
                tmp.unlink()
            raise RuntimeError(f"chromium failed for {html_path}: {proc.stderr.decode(errors='replace')[-300:]}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, pdf_path)


def write_pdfs(root, person_ids, jobs=2, force=False, progress=None):
    """PDF next to each notice.html that is newer than its PDF; returns (made, failures)."""
    todo = []
    for pid in person_ids:
        html = Path(root) / pid / NOTICE / "notice.html"
        pdf = html.with_name("notice.pdf")
        if html.exists() and (force or not pdf.exists() or pdf.stat().st_mtime < html.stat().st_mtime):
            todo.append((html, pdf))
    failures = []

    def one(pair):
        try:
            html_to_pdf(*pair)
            return None
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"{pair[0]}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for error in pool.map(one, todo):
            if error:
                failures.append(error)
            if progress:
                progress()
    return len(todo) - len(failures), failures


__all__ = ["collect", "write_notices", "write_pdfs", "html_to_pdf", "person_view", "kit_dir"]
