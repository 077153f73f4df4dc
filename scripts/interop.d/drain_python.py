"""Python `websockets` clients through a real SIGTERM of a wsdrain server.

Opens N sessions to ws://ADDR/ws, checks each one echoes, sends SIGTERM to
PID, then checks that every session saw Close 1001 with a reason matching
`retry-after-ms=([0-9]+)`, ended with ConnectionClosedOK and was closed
cleanly (Close frames both ways). Prints one JSON line with the counts.
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from collections import Counter

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK, ConnectionClosed

HINT = re.compile(r"retry-after-ms=([0-9]+)")  # the documented regex, ASCII digits


async def session(uri: str, opened: asyncio.Queue, go: asyncio.Event) -> dict:
    async with connect(uri, open_timeout=10, close_timeout=10, max_queue=None) as ws:
        await ws.send("ping")
        echoed = await asyncio.wait_for(ws.recv(), 10)
        await opened.put(echoed == "ping")
        await go.wait()
        ok_exc = False
        try:
            while True:
                await ws.recv()
        except ConnectionClosedOK:
            ok_exc = True
        except ConnectionClosed:
            ok_exc = False
        await ws.wait_closed()
        rcvd = ws.protocol.close_rcvd
        m = HINT.search(ws.close_reason or "")
        return {
            "code": ws.close_code,
            "reason": ws.close_reason,
            "hint": int(m.group(1)) if m else None,
            "closed_ok": ok_exc,
            # Clean: the server's Close arrived first, and we answered it.
            "clean": rcvd is not None and ws.protocol.close_rcvd_then_sent is True,
            "at": time.monotonic(),
        }


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--sessions", type=int, default=300)
    p.add_argument("--hint-min", type=int, required=True)
    p.add_argument("--hint-max", type=int, required=True)
    a = p.parse_args()
    uri = f"ws://{a.addr}/ws"
    opened: asyncio.Queue = asyncio.Queue()
    go = asyncio.Event()
    tasks = [asyncio.create_task(session(uri, opened, go)) for _ in range(a.sessions)]
    echoed = 0
    for _ in range(a.sessions):
        echoed += await asyncio.wait_for(opened.get(), 30)
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGTERM)  # a real signal to the real server process
    go.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if isinstance(r, dict)]
    good = [
        r for r in ok
        if r["code"] == 1001 and r["hint"] is not None
        and a.hint_min <= r["hint"] <= a.hint_max
        and r["closed_ok"] and r["clean"]
    ]
    bad = [r for r in ok if r not in good]
    hints = [r["hint"] for r in ok if r["hint"] is not None]
    last = max((r["at"] for r in ok), default=t0) - t0
    print(json.dumps({
        "client": "python-websockets",
        "version": websockets.__version__,
        "python": sys.version.split()[0],
        "sessions": a.sessions,
        "echoed": echoed,
        "code_1001_hint_clean": len(good),
        "bad": bad[:5],
        "errors": errors[:5],
        "codes": dict(Counter(str(r["code"]) for r in ok)),
        "distinct_hints": len(set(hints)),
        "last_close_s": round(last, 3),
    }))
    return 0 if len(good) == a.sessions and echoed == a.sessions else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
