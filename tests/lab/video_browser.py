"""Runs ON the lab laptop (ts-client1), standard library only: headless Chromium with a fake camera and
microphone opens a video room's page through the person's tunnel, types the name and PIN into the form
and joins, as a person would; then, every second until ``HOLD`` seconds have passed, writes what the page
shows (its state and each received stream's size, bytes and decoded frames, from getStats) to ``OUT``
(one JSON document, replaced each time), or until a file OUT.stop appears; at the end a screenshot.

    python3 video_browser.py URL NAME PIN SHOT.png OUT.json HOLD PORT
"""
import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gate_browser import start_browser, stop_browser  # the DevTools client, copied beside this file


def value(cdp, expression, wait=False):
    result = cdp.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait)
    return result.get("result", {}).get("value")


def write(out, data):
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    os.replace(tmp, out)


def main(url, name, pin, shot, out, hold, port):
    hold, port = float(hold), int(port)
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",  # camera and microphone
             "--autoplay-policy=no-user-gesture-required", "--window-size=1000,760"]
    started = time.time()
    data = {"state": "starting", "stats": [], "t": 0}
    browser = None
    try:
        browser, cdp = start_browser(f"/tmp/teleshift-video-chromium-{port}", port, flags, tries=150)
        cdp.call("Page.navigate", url=url)
        cdp.wait_event("Page.loadEventFired", 30)
        for _ in range(50):  # the page's script has read its settings
            if value(cdp, "document.getElementById('join') !== null && !!window.teleshiftVideo"):
                break
            time.sleep(0.2)
        for field, text in (("name", name), ("pin", pin)):
            value(cdp, f"document.getElementById({field!r}).focus()")
            cdp.call("Input.insertText", text=text)  # typed into the focused field, as a keyboard would
        value(cdp, "document.getElementById('enter').click()")
        while time.time() - started < hold and not os.path.exists(out + ".stop"):
            state = value(cdp, "window.teleshiftVideo.state")
            stats = value(cdp, "window.teleshiftVideo.stats()", wait=True) or []
            data = {"state": state, "stats": stats, "t": round(time.time() - started, 1),
                    "status": value(cdp, "document.getElementById('status').textContent")}
            write(out, data)
            if state in ("refused", "noroom", "full", "error"):
                break
            time.sleep(1)
        png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        with open(shot, "wb") as stream:
            stream.write(png)
        data.update(done=True, screenshot_bytes=len(png))
        value(cdp, "document.getElementById('leave').click()")  # leave the room as a person would
        time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 (reported to the test, which fails with it)
        data.update(done=True, error=f"{type(exc).__name__}: {exc}")
    finally:
        write(out, data)
        if browser is not None:
            stop_browser(browser)


if __name__ == "__main__":
    main(*sys.argv[1:8])
