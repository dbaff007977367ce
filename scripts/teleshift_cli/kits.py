"""Onboarding notices: for each person, one page (HTML, and PDF on request) in their language with a
section per capability they get (the registry: each capability reads its own kit subdirectory and says
what to show, plugins/module_utils/registry.py), step-by-step instructions for home wifi, a wired
connection and 4G tethering, and the hotline's number. A section is rendered by the capability's own
``templates/notice_<name>.html.j2`` when it exists, else by the generic ``notice_section.html.j2``.

The notice only reads the kits and writes ``<kits>/<id>/notice/``. Secrets: the notice is a kit file
(0600 in a 0700 directory); nothing is printed or logged.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import kit_dir, write_kit_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTICE = "notice"  # this command's own kit subdirectory
SHEET = "credentials.html"  # the secrets and QR codes, on a sheet of their own (unless merged)
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
    """The notice's own words in every language (templates/notice_text.yml); each capability brings its own."""
    global _TEXT
    if _TEXT is None:
        _TEXT = yaml.safe_load((TEMPLATES / "notice_text.yml").read_text(encoding="utf-8"))
    return _TEXT


def sections(person, root, lang):
    """The notice sections of ``person`` (a roster Person), one per capability they get, in order."""
    found = []
    for cap in registry.capabilities():
        section = cap.notice(person, Path(root) / person.id / cap.name, lang)
        if section is not None:
            found.append(section)
    return found


def person_view(person, services):
    policy = services.get(person.service) or {}
    return {"id": person.id, "full_name": person.full_name, "email": person.email, "service": person.service,
            "service_label": policy.get("label") or person.service, "device": person.device,
            "needs": sorted(person.needs), "extension": person.extension,
            "forward_to": person.forward_to, "forward_mode": person.forward_mode,
            "forward_delay": person.forward_delay, "voicemail": person.voicemail, "language": person.language,
            "site": person.site, "priority": person.priority, "person": person}


def render_notice(template, person, root, org, sheet=None):
    """The notice HTML of one person (a dict from person_view); org: {"name", "hotline", "merge"}.
    Secrets and QR codes go on the separate credentials sheet (``sheet``: its template; the pair
    (notice, sheet HTML or None) is returned) unless org["merge"] puts them in the notice."""
    lang = person["language"] if person["language"] in texts() else "fr"
    found = sections(person["person"], root, lang)
    available = set(template.environment.list_templates())
    for section in found:
        own = f"notice_{section.name}.html.j2"
        section.template = own if own in available else "notice_section.html.j2"
    merged = bool(org.get("merge"))
    values = dict(p=person, sections=found, t=texts()[lang], lang=lang, org=org.get("name", ""),
                  hotline=org.get("hotline", ""), merged=merged)
    notice = template.render(**values)
    if sheet is None:
        return notice
    secret = any(s.secrets or s.data.get("qr_uri") or s.data.get("qr_svg") for s in found)
    return notice, (sheet.render(**values) if secret and not merged else None)


def _write_batch(batch, root, org):
    """Render and write a batch of notices (runs in a worker process); returns (written, unchanged)."""
    env = _env()
    template, sheet = env.get_template("notice.html.j2"), env.get_template("credentials.html.j2")
    written = 0
    for person in batch:
        html, credentials = render_notice(template, person, root, org, sheet)
        changed = write_kit_file(root, person["id"], NOTICE, "notice.html", html)
        if credentials is not None:
            changed = write_kit_file(root, person["id"], NOTICE, SHEET, credentials) or changed
        else:
            stale = Path(root) / person["id"] / NOTICE / SHEET
            if stale.exists():
                stale.unlink()
                changed = True
        written += bool(changed)
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
        for name in ("notice.html", SHEET):
            html = Path(root) / pid / NOTICE / name
            pdf = html.with_suffix(".pdf")
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


__all__ = ["sections", "write_notices", "write_pdfs", "html_to_pdf", "person_view", "kit_dir"]
