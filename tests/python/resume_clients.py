"""Python `websockets` clients of a resumable feed (wsdrain.resume.v1).

Each client offers the subprotocol, follows what the server gives it, and
applies the client's rules of docs/PROTOCOL.md ("Resumable sessions"): per
stream an epoch, the last seq delivered and the owning connection; on the
drain notice it opens the next connection at once (make-before-break) and
closes the old one with 1000 once the new one owns every stream; after a
Close or a dropped connection it reconnects with its resume point.

It checks what it delivers: within an epoch, seqs and the payloads' `n`
must be contiguous (no hole, nothing twice). Every 200 ms it prints one JSON
line of progress; on a line `stop` on stdin it prints the final report (one
JSON line with `"event":"report"`) and exits.
"""

import argparse
import asyncio
import json
import random
import re
import sys
import time
import urllib.parse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

SUBPROTOCOL = "wsdrain.resume.v1"
MESSAGE = re.compile(rb"m ([A-Za-z0-9_.:/-]+) ([0-9]+)")
HINT = re.compile(r"retry-after-ms=([0-9]+)")
STREAM_CONTROLS = ("wsdrain.follow", "wsdrain.resumed", "wsdrain.resync")


class Client:
    def __init__(self, base: str):
        self.base = base
        self.streams = {}  # stream -> {"epoch", "last", "owner"}
        self.generation = 0
        self.sockets = {}  # generation -> open connection
        self.tasks = set()
        # Checks and counts.
        self.delivered = 0
        self.per_epoch = {}  # (stream, epoch) -> last payload n delivered
        self.holes = []
        self.twice = []
        self.protocol_errors = []
        self.events = []  # [kind, stream, reason, generation]
        self.closes = []  # [code, reason]
        self.refused = []
        self.connections = 0

    def point(self) -> str:
        return ",".join(f"{s}@{v['epoch']}.{v['last']}" for s, v in sorted(self.streams.items()))

    def url(self) -> str:
        point = self.point()
        if not point:
            return self.base
        sep = "&" if "?" in self.base else "?"
        return self.base + sep + urllib.parse.urlencode({"wsdrain-resume": point})

    def start(self, delay: float = 0.0) -> None:
        self.generation += 1
        task = asyncio.create_task(self.connection(self.generation, delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def control(self, gen: int, c: dict) -> None:
        stream = c["stream"]
        s = self.streams.get(stream)
        if s is not None and gen < s["owner"]:
            return
        if s is None:
            self.streams[stream] = {"epoch": c["epoch"], "last": c["after"], "owner": gen}
            kind = {"wsdrain.follow": "fresh", "wsdrain.resumed": "resumed"}.get(c["type"], "resync")
        elif s["epoch"] == c["epoch"] and c["after"] <= s["last"]:
            s["owner"] = gen
            kind = "resumed"
        else:
            self.streams[stream] = {"epoch": c["epoch"], "last": c["after"], "owner": gen}
            kind = "resync"
        self.events.append([kind, stream, c.get("reason"), gen])
        # The handover is over once the newest connection owns every stream.
        if all(v["owner"] == gen for v in self.streams.values()):
            for old, ws in list(self.sockets.items()):
                if old < gen:
                    asyncio.create_task(ws.close(1000, "moved"))

    def message(self, gen: int, stream: str, seq: int, body: bytes) -> bool:
        s = self.streams.get(stream)
        if s is None:
            return False
        if s["owner"] != gen or seq <= s["last"]:
            return True
        if seq != s["last"] + 1:
            return False
        s["last"] = seq
        self.delivered += 1
        n = json.loads(body)["n"]
        key = (stream, s["epoch"])
        prev = self.per_epoch.get(key)
        step = 1 if stream == "ticker" else 10
        if prev is not None:
            if n <= prev:
                self.twice.append([stream, n])
            elif n != prev + step:
                self.holes.append([stream, prev, n])
        self.per_epoch[key] = n
        return True

    def frame(self, gen: int, data) -> bool:
        raw = data.encode() if isinstance(data, str) else data
        header, _, body = raw.partition(b"\n")
        if header == b"p":
            return True
        if header == b"c":
            c = json.loads(body)
            if c.get("type") == "wsdrain.reconnect":
                self.events.append(["notice", None, None, gen])
                if gen == self.generation:
                    self.start()  # make-before-break
            elif c.get("type") in STREAM_CONTROLS:
                self.control(gen, c)
            return True
        m = MESSAGE.fullmatch(header)
        if not m:
            return False
        return self.message(gen, m.group(1).decode(), int(m.group(2)), body)

    async def connection(self, gen: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        code, reason = 1006, ""
        try:
            async with connect(
                self.url(), subprotocols=[SUBPROTOCOL], open_timeout=5, close_timeout=5, max_queue=None
            ) as ws:
                self.connections += 1
                self.sockets[gen] = ws
                if ws.subprotocol != SUBPROTOCOL:
                    self.protocol_errors.append(f"subprotocol {ws.subprotocol!r}")
                try:
                    async for data in ws:
                        if not self.frame(gen, data):
                            self.protocol_errors.append(repr(data)[:120])
                            await ws.close(1002, "protocol error")
                            break
                except ConnectionClosed:
                    pass
                if ws.close_code is not None:
                    code, reason = ws.close_code, ws.close_reason or ""
        except InvalidStatus as e:
            self.refused.append(e.response.status_code)
        except (OSError, asyncio.TimeoutError, ConnectionClosed):
            pass
        finally:
            self.sockets.pop(gen, None)
        self.closes.append([code, reason])
        if gen != self.generation or STOP.is_set():
            return  # handed over, or done
        m = HINT.search(reason)
        wait = int(m.group(1)) / 1000 if m and code in (1001, 1012, 1013) else 0.05
        self.start(min(wait, 5.0) + random.uniform(0, 0.05))

    def summary(self) -> dict:
        kinds = {}
        for kind, stream, reason, _ in self.events:
            key = kind if reason is None else f"{kind}:{reason}"
            kinds[key] = kinds.get(key, 0) + 1
        return {
            "delivered": self.delivered,
            "holes": self.holes,
            "twice": self.twice,
            "protocol_errors": self.protocol_errors,
            "events": kinds,
            "closes": self.closes,
            "refused": self.refused,
            "connections": self.connections,
        }


STOP = asyncio.Event()


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=10)
    a = p.parse_args()
    clients = [Client(a.url) for _ in range(a.clients)]
    for c in clients:
        c.start()
    loop = asyncio.get_running_loop()
    stdin = asyncio.ensure_future(loop.run_in_executor(None, sys.stdin.readline))
    t0 = time.monotonic()
    while True:
        done, _ = await asyncio.wait({stdin}, timeout=0.2)
        progress = {
            "event": "progress",
            "t": round(time.monotonic() - t0, 3),
            "delivered_min": min(c.delivered for c in clients),
            "resumed_min": min(sum(1 for e in c.events if e[0] == "resumed") for c in clients),
            "resync_min": min(sum(1 for e in c.events if e[0] == "resync") for c in clients),
            "notices_min": min(sum(1 for e in c.events if e[0] == "notice") for c in clients),
            "connections_min": min(c.connections for c in clients),
        }
        print(json.dumps(progress), flush=True)
        if done:
            break
    STOP.set()
    for c in clients:
        for ws in list(c.sockets.values()):
            await ws.close(1000, "done")
    report = {"event": "report", "clients": [c.summary() for c in clients]}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
