#!/usr/bin/env python3
"""A latency-injecting HTTP/1.1 TCP proxy for benches/remote.sh (stdlib only).

    python3 benches/latency_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:MOTO \\
        --delay-ms 10 --counts FILE [--ready FILE] [--log FILE]

Every *request* waits --delay-ms before it is forwarded, as if the store were that far away
(one round trip per request; the answer comes back at loopback speed). The proxy follows
HTTP/1.1 framing on each connection (request line, headers, then a Content-Length or chunked
body), so a keep-alive connection's second request is delayed again while the body chunks of one
request are not. A connection whose bytes do not parse as HTTP/1.1 is relayed unchanged (its
bytes are counted, its requests after that point are not delayed).

Counts, per request: method (GET, "range GET" for a GET with a Range header, "LIST" for a GET of
a bucket listing, PUT, POST, HEAD, DELETE, other), response status, bytes each way, connections.
  SIGUSR1  write the counts as JSON to --counts (atomically: temporary file, then rename)
  SIGUSR2  reset the counts, then write the (zero) counts to --counts as an acknowledgement
  SIGTERM, SIGINT  write the counts and exit
Each write carries "seq", incremented per write, so a reader can tell a fresh file from an old
one. --log appends one line per request (time, connection, method, target, Range) to FILE. Everything runs on one asyncio event loop, so the counters need no locks.
"""

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time

MAX_HEAD = 1 << 20  # a request or response head larger than this is not HTTP as we know it


class Counts:
    def __init__(self):
        self.seq = 0
        self.reset()

    def reset(self):
        self.requests = collections.Counter()
        self.status = collections.Counter()
        self.bytes_up = 0  # client -> store
        self.bytes_down = 0  # store -> client
        self.connections = 0
        self.unparsed_connections = 0
        self.delay_s = 0.0  # total delay injected (sum over requests)
        self.since = time.time()

    def as_dict(self):
        self.seq += 1
        return {
            "seq": self.seq,
            "since": self.since,
            "at": time.time(),
            "requests_total": sum(self.requests.values()),
            "requests": dict(self.requests),
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "connections": self.connections,
            "unparsed_connections": self.unparsed_connections,
            "delay_s": round(self.delay_s, 3),
        }


C = Counts()
LOG = None  # the --log file, line-buffered


class NotHttp(Exception):
    pass


def classify(method, target, headers):
    m = method.upper()
    if m == "GET":
        if "range" in headers:
            return "range GET"
        path, _, query = target.partition("?")
        # A listing: list-type=2 (ListObjectsV2), or a GET of a bucket (path style: /bucket)
        # with a prefix, delimiter or marker (ListObjects v1).
        q = "&" + query
        if "list-type=" in query or (path.strip("/").count("/") == 0 and
                                     any(k in q for k in ("&prefix=", "&delimiter=", "&marker="))):
            return "LIST"
        return "GET"
    if m in ("PUT", "POST", "HEAD", "DELETE"):
        return m
    return "other"


async def read_head(reader):
    """Reads one message head (through the blank line); b"" at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return b""
        raise NotHttp("truncated head")
    except asyncio.LimitOverrunError:
        raise NotHttp("head too large")
    return head


def parse_headers(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = {}
    for ln in lines[1:]:
        if not ln:
            continue
        k, sep, v = ln.partition(":")
        if not sep:
            raise NotHttp("bad header line")
        k = k.strip().lower()
        v = v.strip()
        headers[k] = headers[k] + "," + v if k in headers else v
    return first, headers


async def relay_body(reader, writer, headers, count, no_body=False):
    """Copies one message body framed by Content-Length or chunked encoding."""
    if no_body:
        return
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            count(len(line))
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers, through the blank line
                while True:
                    t = await reader.readuntil(b"\r\n")
                    writer.write(t)
                    count(len(t))
                    if t == b"\r\n":
                        break
                await writer.drain()
                return
            await copy_n(reader, writer, size + 2, count)
    elif "content-length" in headers:
        n = int(headers["content-length"].split(",")[0])
        await copy_n(reader, writer, n, count)
    else:
        raise NotHttp("no framing")  # handled by the caller for responses (read to close)


async def copy_n(reader, writer, n, count):
    while n > 0:
        b = await reader.read(min(n, 1 << 16))
        if not b:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(b)
        count(len(b))
        n -= len(b)
        await writer.drain()


async def raw(reader, writer, count):
    while True:
        b = await reader.read(1 << 16)
        if not b:
            break
        writer.write(b)
        count(len(b))
        await writer.drain()


def up(n):
    C.bytes_up += n


def down(n):
    C.bytes_down += n


async def client_to_store(creader, swriter, methods, delay, conn):
    """Requests: delay each one, then forward its head and body."""
    try:
        while True:
            head = await read_head(creader)
            if not head:
                break
            first, headers = parse_headers(head)
            parts = first.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise NotHttp("bad request line")
            method, target = parts[0], parts[1]
            C.requests[classify(method, target, headers)] += 1
            if LOG:
                rng = headers.get("range")
                LOG.write(f"{time.time():.3f} c{conn} {method} {target}"
                          f"{' range=' + rng if rng else ''}\n")
            methods.put_nowait(method.upper())
            if delay > 0:
                C.delay_s += delay
                await asyncio.sleep(delay)
            swriter.write(head)
            up(len(head))
            await swriter.drain()
            await relay_body(creader, swriter, headers, up,
                             no_body=("content-length" not in headers and
                                      "chunked" not in headers.get("transfer-encoding", "").lower()))
    except NotHttp:
        C.unparsed_connections += 1
        methods.put_nowait(None)  # the response side relays raw from here on
        await raw(creader, swriter, up)
    finally:
        try:
            swriter.write_eof()
        except (OSError, RuntimeError):
            pass


async def store_to_client(sreader, cwriter, methods):
    """Responses: count the status, forward head and body (HEAD, 1xx, 204, 304: no body)."""
    try:
        while True:
            head = await read_head(sreader)
            if not head:
                break
            first, headers = parse_headers(head)
            parts = first.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise NotHttp("bad status line")
            status = int(parts[1])
            cwriter.write(head)
            down(len(head))
            if 100 <= status < 200:
                C.status[status] += 1
                await cwriter.drain()
                continue  # the final answer follows
            method = await methods.get()
            if method is None:
                raise NotHttp("request side gave up parsing")
            C.status[status] += 1
            no_body = method == "HEAD" or status in (204, 304)
            try:
                await relay_body(sreader, cwriter, headers, down, no_body=no_body)
            except NotHttp:
                await raw(sreader, cwriter, down)  # body until close
                break
            await cwriter.drain()
    except NotHttp:
        await raw(sreader, cwriter, down)
    finally:
        try:
            cwriter.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(creader, cwriter, upstream, delay):
    C.connections += 1
    conn = C.connections
    try:
        sreader, swriter = await asyncio.open_connection(*upstream, limit=MAX_HEAD)
    except OSError:
        cwriter.close()
        return
    methods = asyncio.Queue()
    tasks = [asyncio.ensure_future(client_to_store(creader, swriter, methods, delay, conn)),
             asyncio.ensure_future(store_to_client(sreader, cwriter, methods))]
    try:
        # A connection ends when the store's side ends (the client's request side may already
        # be half-closed), or when either side fails.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = any(not t.cancelled() and t.exception() is not None for t in done)
        if not failed and tasks[1] not in done:
            # The client is done sending; the store answers what is outstanding, then closes
            # (we sent it our end of stream). Bounded, in case it keeps the connection open.
            await asyncio.wait([tasks[1]], timeout=600)
    except Exception:
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (swriter, cwriter):
            try:
                w.close()
            except Exception:
                pass


def write_counts(path):
    d = C.as_dict()
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(d, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def hostport(s):
    h, _, p = s.rpartition(":")
    return h or "127.0.0.1", int(p)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT (PORT 0: pick a free one)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--counts", required=True, help="JSON file written on SIGUSR1/exit")
    ap.add_argument("--ready", help="write the listening port here once listening")
    ap.add_argument("--log", help="append one line per request to this file")
    a = ap.parse_args()
    global LOG
    if a.log:
        LOG = open(a.log, "a", buffering=1)
    delay = a.delay_ms / 1000.0
    upstream = hostport(a.upstream)
    lh, lp = hostport(a.listen)
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream, delay), lh, lp,
                                        limit=MAX_HEAD, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_usr2():
        C.reset()
        write_counts(a.counts)

    loop.add_signal_handler(signal.SIGUSR1, write_counts, a.counts)
    loop.add_signal_handler(signal.SIGUSR2, on_usr2)
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(a.ready + ".tmp", a.ready)
    print(f"latency proxy on {lh}:{port} -> {a.upstream}, {a.delay_ms} ms per request",
          file=sys.stderr)
    await stop
    server.close()
    write_counts(a.counts)
    # Connections still open are dropped with the process (no "task destroyed" noise).
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
