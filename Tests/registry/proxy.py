#!/usr/bin/env python3
"""A small HTTP proxy in front of a registry, for Husk's registry tests: it can demand a
Bearer token from its own token endpoint (with a scope check and optional Basic credentials),
fail requests with a status, corrupt or cut blobs, and logs every request it forwards.

usage: proxy.py PORTFILE UPSTREAM LOG [options as JSON]
  options: {"token": true, "user": "u", "password": "p",      # Bearer auth, creds for /token
            "fail": {"status": 500, "count": 2, "path": "/v2/"},  # the first COUNT matching requests
            "retry_after": 1,                                  # with a Retry-After header
            "corrupt": true,                                   # flip a byte in every blob
            "cut": 1, "cut_min": 10000,                        # close the first N blob bodies (of at
                                                               # least cut_min bytes) halfway
            "die": true,                                       # exit (the whole process) halfway
                                                               # through the first such blob
            "port": 5123}                                      # listen here (a restarted proxy)
It listens on 127.0.0.1, a free port unless "port", which it writes to PORTFILE once ready.
"""

import base64
import http.client
import http.server
import json
import os
import sys
import threading

port_file, upstream, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
lock = threading.Lock()
state = {"failed": 0, "cut": 0}
SCOPE = "repository:library/busybox:pull"


def log(line):
    with lock:
        with open(log_path, "a") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        host = "127.0.0.1:%d" % self.server.server_address[1]
        if self.path.startswith("/token"):
            return self.token()
        log("%s %s range=%s auth=%s" % (self.command, self.path, self.headers.get("Range", ""),
                                         (self.headers.get("Authorization", "") or "").split(" ")[0]))
        fail = options.get("fail")
        if fail and self.path.startswith(fail.get("path", "/v2/")):
            with lock:
                hit = state["failed"] < fail.get("count", 1 << 30)
                if hit:
                    state["failed"] += 1
            if hit:
                headers = {}
                if "retry_after" in options:
                    headers["Retry-After"] = str(options["retry_after"])
                body = json.dumps({"errors": [{"code": "TESTFAIL", "message": "injected %d" % fail["status"]}]}).encode()
                return self.reply(fail["status"], body, headers)
        if options.get("token"):
            want = "Bearer tok-" + SCOPE
            if self.headers.get("Authorization") != want:
                challenge = 'Bearer realm="http://%s/token",service="husk-test",scope="%s"' % (host, SCOPE)
                body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
                return self.reply(401, body, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
        return self.forward()

    def token(self):
        q = {}
        if "?" in self.path:
            for part in self.path.split("?", 1)[1].split("&"):
                k, _, v = part.partition("=")
                q.setdefault(k, []).append(v.replace("%3A", ":").replace("%2F", "/"))
        log("TOKEN scope=%s service=%s basic=%s" % (",".join(q.get("scope", [])), ",".join(q.get("service", [])),
                                                    "yes" if self.headers.get("Authorization", "").startswith("Basic ") else "no"))
        if "user" in options:
            want = "Basic " + base64.b64encode(("%s:%s" % (options["user"], options["password"])).encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, b'{"details":"incorrect username or password"}', {"Content-Type": "application/json"})
        if SCOPE not in q.get("scope", []):
            return self.reply(403, b'{"details":"scope"}')
        body = json.dumps({"token": "tok-" + SCOPE, "expires_in": 300}).encode()
        return self.reply(200, body, {"Content-Type": "application/json"})

    def forward(self):
        conn = http.client.HTTPConnection(upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")}
        conn.request(self.command, self.path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        is_blob = "/blobs/sha256:" in self.path and self.command == "GET" and r.status in (200, 206)
        if is_blob and options.get("corrupt") and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            if k.lower() == "location":
                v = v.replace("http://" + upstream, "http://127.0.0.1:%d" % self.server.server_address[1])
            self.send_header(k, v)
        cut = False
        if is_blob and len(body) > max(1, options.get("cut_min", 0)):
            with lock:
                if state["cut"] < options.get("cut", 0):
                    state["cut"] += 1
                    cut = True
        # A HEAD answer has no body but says the length of the GET's.
        length = r.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if is_blob and options.get("die") and len(body) > max(1, options.get("cut_min", 0)):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            log("DIE after %d of %d bytes" % (len(body) // 2, len(body)))
            os._exit(0)
        if cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", options.get("port", 0)), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
