"""Kits and report from a synthetic roster, opened in a real headless Chromium (Debian `chromium`):
screenshots of the page, the notice printed to PDF, the PDF turned into images (pdftoppm) and its
text read back (pdftotext). Screenshots stay in build/render/ for a human to look at."""
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from testlib import with_lab_people

from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import new_keypair

from teleshift_cli import main as cli
from teleshift_cli.kits import CHROMIUM_FLAGS, chromium, html_to_pdf

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
OUT = ROOT / "build" / "render"

pytestmark = pytest.mark.skipif(
    not chromium() or not shutil.which("pdftoppm") or not shutil.which("pdftotext"),
    reason="needs Debian packages chromium and poppler-utils (pdftoppm, pdftotext)")


def screenshot(html, png, tmp_path, size="1100,2400"):
    profile = tmp_path / "chromium-profile"
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
           "--hide-scrollbars", f"--screenshot={png}", Path(html).resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=90, check=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000  # a real, non-blank image
    return png


def png_not_blank(png):
    """Count distinct colours in the PNG via pdftoppm's sibling: decode with Python's zlib-free check."""
    import zlib
    import struct

    data = png.read_bytes()
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw[: width * 4 * 200]))  # distinct byte values in the first rows


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    inv = tmp / "inv"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("state", "kits"))
    (inv / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n")
    people = with_lab_people(generate_people(60, seed=11))
    fr = Person(**{**people[0].__dict__, "language": "fr", "needs": frozenset({"vpn", "desktop", "phone"}),
                   "forward_mode": "no_answer", "forward_to": "+33612345678", "extension": "4242"})
    en = Person(**{**people[1].__dict__, "language": "en", "needs": frozenset({"vpn", "desktop"})})
    people[0], people[1] = fr, en
    roster = inv / "synthetic.csv"
    with open(roster, "w", encoding="utf-8", newline="") as stream:
        write_csv(people, stream)
    kits = inv / "kits"
    # emulated capability outputs (what the VPN, desktop and phone capabilities will write)
    # keys made for this run only: no key-shaped text in the repository
    private, _ = new_keypair()
    _, gateway_public = new_keypair()
    for p in (fr, en):
        write_kit_file(kits, p.id, "vpn", "wg0.conf", f"[Interface]\nPrivateKey = {private}\n"
                       f"Address = 10.100.0.42/32\n\n[Peer]\nPublicKey = {gateway_public}\n"
                       "Endpoint = 10.89.250.10:51820\nAllowedIPs = 10.89.251.0/24\n")
        write_kit_file(kits, p.id, "desktop", f"{p.id}.rdp", "full address:s:10.89.251.20\nusername:s:" + p.id + "\n")
    write_kit_file(kits, fr.id, "phone", "summary.yml", "Serveur SIP: 10.89.251.30\nUtilisateur SIP: '4242'\n")
    write_kit_file(kits, fr.id, "phone", "password", "EmulatedSipSecret\n")
    assert cli.main(["kits", "--inventory", str(inv), "--roster", str(roster), "--pdf",
                     "--person", fr.id, "--person", en.id]) == 0
    report = tmp / "report.html"
    assert cli.main(["report", "--inventory", str(inv), "--roster", str(roster), "--laptops", "5",
                     "--per-wave", "3", "--output", str(report)]) == 0
    OUT.mkdir(parents=True, exist_ok=True)
    return {"tmp": tmp, "kits": kits, "fr": fr, "en": en, "report": report}


def test_notice_html_in_browser(rendered):
    for key in ("fr", "en"):
        p = rendered[key]
        html = rendered["kits"] / p.id / "notice" / "notice.html"
        png = screenshot(html, OUT / f"notice-{key}.png", rendered["tmp"])
        assert png_not_blank(png) > 3


def test_notice_pdf_has_the_person_and_the_steps(rendered):
    fr = rendered["fr"]
    pdf = rendered["kits"] / fr.id / "notice" / "notice.pdf"
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    text = " ".join(text.split())  # columns and line breaks of the layout do not matter
    assert fr.full_name in text
    for words in ("Wifi de la box", "Câble réseau", "Partage de connexion 4G", "+33 5 55 00 00 00",
                  "10.100.0.42/32", "+33612345678"):
        assert words in text, words
    assert "EmulatedSipSecret" not in text  # secrets are on the credentials sheet
    sheet = subprocess.run(["pdftotext", str(pdf.with_name("credentials.pdf")), "-"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert "EmulatedSipSecret" in sheet and fr.full_name in sheet
    prefix = OUT / "notice-fr-pdf"
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(prefix)], check=True, timeout=60)
    pages = sorted(OUT.glob("notice-fr-pdf*.png"))
    assert pages and all(png_not_blank(p) > 3 for p in pages)


def test_qr_code_in_the_printed_notice_scans_back_to_the_profile(rendered, tmp_path):
    """The QR code of the credentials sheet, as Chromium prints it and poppler rasterises it, decodes
    (zxing-cpp) to the person's VPN profile: what a phone's WireGuard app would import."""
    import zxingcpp

    fr = rendered["fr"]
    pdf = rendered["kits"] / fr.id / "notice" / "credentials.pdf"
    subprocess.run(["pdftoppm", "-r", "150", "-gray", "-f", "1", "-l", "2", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    profile = (rendered["kits"] / fr.id / "vpn" / "wg0.conf").read_text()
    found = []
    for page in sorted(tmp_path.glob("page*.pgm")):
        data = page.read_bytes()
        magic, width, height, maxval, pixels = data.split(maxsplit=4)
        assert magic == b"P5" and maxval == b"255"
        image = memoryview(pixels[:int(width) * int(height)]).cast("B", (int(height), int(width)))
        found += [b.text for b in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode,
                                                         text_mode=zxingcpp.TextMode.Plain)]
    assert profile in found, found


def test_english_pdf(rendered, tmp_path):
    en = rendered["en"]
    html = rendered["kits"] / en.id / "notice" / "notice.html"
    pdf = tmp_path / "en.pdf"
    html_to_pdf(html, pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True).stdout
    text = " ".join(text.split())
    assert en.full_name in text and "Home wifi" in text and "4G tethering" in text and "Wifi de la box" not in text


def test_report_in_browser(rendered):
    png = screenshot(rendered["report"], OUT / "report.png", rendered["tmp"], size="1100,2600")
    assert png_not_blank(png) > 3
    pdf = rendered["tmp"] / "report.pdf"
    html_to_pdf(rendered["report"], pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Telework readiness" in text and "waiting" in text and "trunk channels" in text
