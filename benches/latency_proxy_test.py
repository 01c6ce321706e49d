#!/usr/bin/env python3
"""Self-test of benches/latency_proxy.py (stdlib only, a few seconds): 50 keep-alive connections
at once through the proxy (50 ms) to a local HTTP/1.1 server, each making 35 requests: GET,
range GET, HEAD, a PUT whose body arrives in three pieces 100 ms apart (delayed once, not three
times), a chunked PUT, DELETE and a listing. Checks the answers, the delay and the counts.

    python3 benches/latency_proxy_test.py
"""
import http.client, http.server, json, os, shutil, signal, subprocess, sys, tempfile, threading, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while True:
                n = int(self.rfile.readline().strip(), 16)
                if n == 0:
                    self.rfile.readline(); break
                data += self.rfile.read(n); self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))
    def reply(self, code, body, head=False):
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        if not head: self.wfile.write(body)
    def do_GET(self):
        if "Range" in self.headers: self.reply(206, b"part")
        else: self.reply(200, b"x" * 100000)
    def do_HEAD(self): self.reply(200, b"x" * 123, head=True)
    def do_PUT(self):
        b = self._body(); self.reply(200, str(len(b)).encode())
    def do_DELETE(self):
        self.send_response(204); self.end_headers()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
up = srv.server_address[1]
tmp = tempfile.mkdtemp(prefix="latency-proxy-test-")
cf = os.path.join(tmp, "c.json"); rf = os.path.join(tmp, "ready")
p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "latency_proxy.py"), "--listen", "127.0.0.1:0",
                      "--upstream", f"127.0.0.1:{up}", "--delay-ms", "50", "--counts", cf, "--ready", rf])
for _ in range(100):
    if os.path.exists(rf): break
    time.sleep(0.05)
port = int(open(rf).read())
errs = []
def worker(k):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for j in range(5):
            t = time.time(); c.request("GET", f"/b/o{k}"); r = c.getresponse(); assert r.read() == b"x" * 100000
            assert time.time() - t >= 0.05
            c.request("GET", "/b/o", headers={"Range": "bytes=0-3"}); r = c.getresponse(); assert r.status == 206 and r.read() == b"part"
            c.request("HEAD", "/b/o"); r = c.getresponse(); r.read(); assert r.status == 200
            # body in 3 pieces with 100 ms pauses: one delay (~50 ms) + 200 ms, not 3 delays
            t = time.time()
            c.putrequest("PUT", "/b/o"); c.putheader("Content-Length", "30"); c.endheaders()
            for _ in range(3):
                c.send(b"y" * 10); time.sleep(0.1)
            r = c.getresponse(); assert r.read() == b"30"
            dt = time.time() - t
            assert 0.25 <= dt < 0.33, dt
            c.putrequest("PUT", "/b/c"); c.putheader("Transfer-Encoding", "chunked"); c.endheaders()
            c.send(b"5\r\nhello\r\n"); time.sleep(0.05); c.send(b"6\r\n world\r\n0\r\n\r\n")
            r = c.getresponse(); assert r.read() == b"11"
            c.request("DELETE", "/b/o"); r = c.getresponse(); r.read(); assert r.status == 204
            c.request("GET", "/b?list-type=2&prefix=x"); c.getresponse().read()
        c.close()
    except Exception as e:
        errs.append(repr(e))
ts = [threading.Thread(target=worker, args=(k,)) for k in range(50)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join()
print("elapsed", round(time.time() - t0, 2), "errors", errs[:3], len(errs))
p.send_signal(signal.SIGUSR1); time.sleep(0.3)
d = json.load(open(cf)); print(json.dumps(d["requests"]), d["requests_total"], d["status"], d["connections"], d["unparsed_connections"])
assert d["requests"] == {"GET": 250, "range GET": 250, "HEAD": 250, "PUT": 500, "DELETE": 250, "LIST": 250}, d
assert d["connections"] == 50 and d["unparsed_connections"] == 0
p.send_signal(signal.SIGUSR2); time.sleep(0.3); d = json.load(open(cf)); assert d["requests_total"] == 0
p.terminate(); p.wait(); shutil.rmtree(tmp, ignore_errors=True)
print("ok" if not errs else "FAIL")
sys.exit(1 if errs else 0)
