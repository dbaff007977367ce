"""QR codes of WireGuard profiles: the PNG and SVG written by module_utils/qr.py decode back to the
profile (read with zxing-cpp's decoder from our own PNG bytes, not from the encoder's image)."""
import re
import struct
import zlib

import pytest
import zxingcpp

from ansible_collections.teleshift.toolkit.plugins.module_utils import qr

PROFILE = ("[Interface]\nPrivateKey = " + "A" * 43 + "=\nAddress = 10.100.12.34/32\nDNS = 10.89.251.53\n\n"
           "[Peer]\nPublicKey = " + "B" * 43 + "=\nEndpoint = 10.89.250.10:51820\n"
           "AllowedIPs = 10.89.251.0/24, 10.89.252.0/24\nPersistentKeepalive = 25\n")


def decode_png(data):
    """Our own minimal reader (1-bit greyscale, filter 0): pixels as a 2D buffer."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    data, idat, header = data[8:], b"", None
    while data:
        (length,) = struct.unpack(">I", data[:4])
        kind, body = data[4:8], data[8:8 + length]
        assert struct.unpack(">I", data[8 + length:12 + length])[0] == zlib.crc32(kind + body)
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        data = data[12 + length:]
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (1, 0)
    raw, stride = zlib.decompress(idat), (width + 7) // 8 + 1
    pixels = bytearray()
    for y in range(height):
        line = raw[y * stride:(y + 1) * stride]
        assert line[0] == 0
        bits = bin(int.from_bytes(line[1:], "big"))[2:].zfill((stride - 1) * 8)[:width]
        pixels += bits.replace("1", "\xff").replace("0", "\x00").encode("latin-1")
    return width, height, memoryview(bytes(pixels)).cast("B", (height, width))


def svg_pixels(text, scale):
    """Rasterise our SVG's path (a subpath per row: h1 draws a module, m1 0 skips one)."""
    size = int(re.search(r'viewBox="0 0 (\d+) ', text).group(1))
    grid = bytearray(b"\xff" * (size * scale) ** 2)
    path = re.search(r' d="([^"]*)"', text).group(1)
    for y, steps in re.findall(r"M0 (\d+)\.5((?:h1|m1 0)*)", path):
        x = 0
        for step in re.findall(r"h1|m1 0", steps):
            if step == "h1":
                for dy in range(scale):
                    row = (int(y) * scale + dy) * size * scale
                    grid[row + x * scale:row + (x + 1) * scale] = b"\x00" * scale
            x += 1
    return memoryview(bytes(grid)).cast("B", (size * scale, size * scale))


@pytest.mark.parametrize("text", [PROFILE, "x", PROFILE.replace("25", "25\n# é ü")])
def test_png_and_svg_decode_back_to_the_text(text):
    png, svg = qr.images(text)
    width, height, pixels = decode_png(png)
    assert width == height and width % 4 == 0
    found = zxingcpp.read_barcode(pixels, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain)
    assert found is not None and found.text == text
    found = zxingcpp.read_barcode(svg_pixels(svg.decode(), 4), text_mode=zxingcpp.TextMode.Plain)
    assert found is not None and found.text == text


def test_svg_is_standalone_or_inline():
    size, rows = qr.matrix("hello")
    assert qr.svg(size, rows).startswith("<?xml")
    inline = qr.svg(size, rows, scale=3, inline=True)
    assert inline.startswith("<svg") and f'width="{size * 3}"' in inline


def test_quiet_zone_is_light_and_finder_pattern_dark():
    size, rows = qr.matrix(PROFILE)
    assert set(rows[0]) == {255} and set(rows[-1]) == {255}  # quiet zone
    assert rows[4][4:11] == b"\x00" * 7  # top edge of the top-left finder pattern
