"""Runs ON the lab laptop (ts-client1), standard library only: headless Chromium opens the gate page
through the tunnel, the code is typed into the page's field and the form sent, as a person would; the
page's answer and a screenshot come back. Driven over Chromium's DevTools protocol (a WebSocket).

    python3 gate_browser.py URL CODE SCREENSHOT.png      -> one JSON line on stdout
"""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

PORT = 9333


class Cdp:
    """The smallest WebSocket client the DevTools protocol needs (text frames, masked, one at a time)."""

    def __init__(self, ws_url, timeout=30):
        rest = ws_url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.next_id = 0
        self.events = []

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        size = len(data)
        head = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", size) if size < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", size))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            buf += chunk
        return buf

    def _recv(self):
        message = b""
        while True:
            b1, b2 = self._exact(2)
            size = b2 & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._exact(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._exact(8))[0]
            message += self._exact(size)
            if b1 & 0x80:
                return json.loads(message.decode())

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._recv()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for i, msg in enumerate(self.events):
                if msg.get("method") == name:
                    del self.events[i]
                    return msg
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                self.events.append(self._recv())
            except socket.timeout:
                break
        raise RuntimeError(f"no {name} within {seconds} s")


def start_browser(profile, port, flags=(), tries=100):
    """Headless Chromium on a fresh profile, with DevTools on ``port``; returns (process, Cdp of its page)."""
    subprocess.run(["rm", "-rf", profile], check=False)
    browser = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                "--ignore-certificate-errors", "--no-first-run", f"--remote-debugging-port={port}",
                                f"--user-data-dir={profile}", *flags, "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pages = []
    for _ in range(tries):
        try:
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
            pages = [p for p in pages if p.get("type") == "page"]
            if pages:
                break
        except OSError:
            pass
        time.sleep(0.2)
    if not pages:
        stop_browser(browser)
        raise RuntimeError(f"Chromium offered no page on port {port}")
    cdp = Cdp(pages[0]["webSocketDebuggerUrl"])
    cdp.call("Page.enable")
    return browser, cdp


def stop_browser(browser):
    browser.terminate()
    try:
        browser.wait(10)
    except subprocess.TimeoutExpired:
        browser.kill()


def main(url, code, shot):
    browser, cdp = start_browser("/tmp/teleshift-gate-chromium", PORT, ["--window-size=900,700"])
    try:
        cdp.call("Page.navigate", url=url)
        cdp.wait_event("Page.loadEventFired")
        before = cdp.call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
        cdp.call("Runtime.evaluate", expression="document.getElementById('code').focus()")
        cdp.call("Input.insertText", text=code)  # typed into the focused field, as a keyboard would
        started = time.time()
        cdp.call("Runtime.evaluate", expression="document.getElementById('send').click()")
        cdp.wait_event("Page.loadEventFired")
        answered = time.time() - started
        result = cdp.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify({result: (document.getElementById('result')||{dataset:{}}).dataset.result || '', "
            "text: document.body.innerText})"))
        data = json.loads(result["result"]["value"])
        png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        with open(shot, "wb") as stream:
            stream.write(png)
        data.update(before=before["result"]["value"], answered_s=round(answered, 3), screenshot_bytes=len(png))
        print(json.dumps(data))
    finally:
        stop_browser(browser)


if __name__ == "__main__":
    main(*sys.argv[1:4])
