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
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import ID_RE

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTICE = "notice"  # this command's own kit subdirectory
SHEET = "credentials.html"  # the secrets and QR codes, on a sheet of their own (unless merged)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-extensions",
                  "--disable-sync", "--no-default-browser-check")


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             auto_reload=False)  # no stat of the template per include: 50,000 notices
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
    base = os.path.join(str(root), person.id)
    for cap in registry.capabilities():
        section = cap.notice(person, Path(os.path.join(base, cap.name)), lang)
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
    available = _available(template.environment)
    for section in found:
        own = f"notice_{section.name}.html.j2"
        section.template = own if own in available else "notice_section.html.j2"
    merged = bool(org.get("merge"))
    values = dict(p=person, sections=found, t=texts()[lang], lang=lang, org=org.get("name", ""),
                  hotline=org.get("hotline", ""), merged=merged, common=_common(template.environment, lang))
    notice = template.render(**values)
    if sheet is None:
        return notice
    secret = any(s.secrets or s.data.get("qr_uri") or s.data.get("qr_svg") for s in found)
    return notice, (sheet.render(**values) if secret and not merged else None)


_COMMON = {}


def _common(env, lang):
    """The language-only part of the notice (how to connect, troubleshooting), rendered once."""
    key = (id(env), lang)
    if key not in _COMMON:
        from markupsafe import Markup

        # rendered by the autoescaping environment from the project's own template: safe to insert as is
        html = env.get_template("notice_common.html.j2").render(t=texts()[lang], lang=lang)
        _COMMON[key] = (env, Markup(html))  # noqa: S704
    return _COMMON[key][1]


_AVAILABLE = {}


def _available(env):
    """The templates an environment has (listed once: it walks the directory)."""
    if id(env) not in _AVAILABLE:
        _AVAILABLE[id(env)] = (env, set(env.list_templates()))
    return _AVAILABLE[id(env)][1]


# --------------------------------------------------------------------------------------------
# Writing many notices: only those whose inputs changed, in worker processes that inherit them
# --------------------------------------------------------------------------------------------

INDEX = ".notices.json"  # <kits>/.notices.json: person id -> digest of what their notice was made from


def fingerprint():
    """What every notice depends on besides its person: the templates, the texts and the capabilities."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(TEMPLATES.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for cap in registry.capabilities():
        digest.update(f"{type(cap).__module__}.{type(cap).__qualname__}:{cap.name}\0".encode())
    return digest.hexdigest()[:24]


def inputs_digest(person, root, org, common):
    """Digest of one notice's inputs: the person's view, the organisation's words, and each file of the
    person's kit (name, size, modification time: the sections read nothing else)."""
    import hashlib
    import json

    parts = [common, json.dumps([{k: v for k, v in person.items() if k != "person"}, person["person"].active,
                                 org.get("name", ""), org.get("hotline", ""), bool(org.get("merge"))],
                                sort_keys=True, default=str)]
    base = os.path.join(str(root), person["id"])
    try:  # the kit's folders listed once: most capabilities have none for most people
        with os.scandir(base) as entries:
            present = {e.name for e in entries}
    except OSError:
        present = set()
    for cap in registry.names():
        try:
            if cap not in present:
                raise FileNotFoundError(cap)
            with os.scandir(os.path.join(base, cap)) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.is_file():
                        st = entry.stat()
                        parts.append(f"{cap}/{entry.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{cap}:-")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:24]


def _write_range(people, root, org, common, index):
    """Render and write the notices of ``people`` whose inputs changed; returns (written, unchanged,
    {id: digest})."""
    env = _env()
    template, sheet = env.get_template("notice.html.j2"), env.get_template("credentials.html.j2")
    written, unchanged, digests = 0, 0, {}
    for person in people:
        pid = person["id"]
        digest = inputs_digest(person, root, org, common)
        if index.get(pid) == digest and os.path.exists(os.path.join(str(root), pid, NOTICE, "notice.html")):
            unchanged += 1
            digests[pid] = digest
            continue
        html, credentials = render_notice(template, person, root, org, sheet)
        changed = _write_notice(root, pid, html)
        if credentials is not None:  # the secrets and QR codes, apart from the notice
            changed = write_kit_file(root, pid, NOTICE, SHEET, credentials) or changed
        else:
            stale = Path(root) / pid / NOTICE / SHEET
            if stale.exists():
                stale.unlink()
                changed = True
        written += bool(changed)
        unchanged += not changed
        digests[pid] = digest
    return written, unchanged, digests


def _write_notice(root, pid, html):
    """write_kit_file for the notice (the same rules: a new file is created in place, one that exists is
    compared, then replaced atomically when it differs). Returns True when written."""
    if not ID_RE.fullmatch(str(pid)):
        raise ValueError(f"refusing kit path for id {pid!r}")
    return write_kit_file(root, pid, NOTICE, "notice.html", html)


_JOB = {}  # what forked workers inherit: no person is pickled to them


def _worker(bounds):
    job = _JOB["job"]
    return _write_range(job["people"][bounds[0]:bounds[1]], job["root"], job["org"], job["common"], job["index"])


def _write_batch(batch, root, org):
    """Render and write ``batch`` without the index; returns (written, unchanged)."""
    written, unchanged, _ = _write_range(batch, root, org, fingerprint(), {})
    return written, unchanged


def write_notices(people, root, org, jobs=None):
    """Write ``<root>/<id>/notice/notice.html`` for every person dict; returns (written, unchanged).

    A notice whose inputs (inputs_digest) are those recorded in ``<root>/.notices.json`` and whose
    file is there is not rendered again. With several CPUs, forked workers take slices of the list
    they inherit (nothing pickled but the slice bounds and the digests that come back); the garbage
    collector is frozen meanwhile so that the workers never walk, and so copy, the parent's objects."""
    import gc
    import json

    from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write

    people = list(people)
    jobs = jobs or os.cpu_count() or 1
    Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    index_path = Path(root) / INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index = index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        index = {}
    common = fingerprint()
    if jobs <= 1 or len(people) < 200:
        written, unchanged, digests = _write_range(people, root, org, common, index)
    else:
        import multiprocessing

        size = max(100, len(people) // (jobs * 4))
        bounds = [(i, min(i + size, len(people))) for i in range(0, len(people), size)]
        _JOB["job"] = {"people": people, "root": str(root), "org": org, "common": common, "index": index}
        gc.collect()
        gc.freeze()
        written = unchanged = 0
        digests = {}
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                for w, u, d in pool.map(_worker, bounds):
                    written, unchanged = written + w, unchanged + u
                    digests.update(d)
        finally:
            gc.unfreeze()
            _JOB.clear()
    kept = {pid: d for pid, d in index.items() if pid not in digests}  # people not written this time
    merged = {**kept, **digests}
    if merged != index:
        atomic_write(index_path, json.dumps(merged, sort_keys=True), mode=0o600, dir_mode=0o700)
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
