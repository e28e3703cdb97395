"""A small SPDY/3.1 client for the streaming tests (cri-semantics.md §5): the HTTP upgrade,
frames, header blocks compressed with zlib and SPDY/3's dictionary, and kubelet's stream
headers. Enough to drive exec, attach and port-forward as client-go does; not a general
SPDY implementation."""

import queue
import socket
import struct
import threading
import urllib.parse
import zlib

_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 3821447106

EXEC_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]


def http_request(url, headers):
    """POSTs to url with headers; returns (socket, status, response headers as a dict of lists, rest)."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    lines = [f"POST {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    first, *fields = head.decode().split("\r\n")
    got = {}
    for f in fields:
        k, _, v = f.partition(":")
        got.setdefault(k.strip().lower(), []).append(v.strip())
    return s, int(first.split()[1]), got, rest


class Stream:
    def __init__(self, sid, headers):
        self.id = sid
        self.headers = headers
        self.data = queue.Queue()  # bytes, then None at FIN or reset
        self.replied = threading.Event()
        self.reset = False

    def read_all(self, timeout=30):
        out = b""
        while True:
            chunk = self.data.get(timeout=timeout)
            if chunk is None:
                return out
            out += chunk


class Client:
    """An upgraded connection: open streams, send data, read what the server sends."""

    def __init__(self, url, protocols, extra_headers=()):
        headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
        headers += [("X-Stream-Protocol-Version", p) for p in protocols] + list(extra_headers)
        self.sock, self.status, self.headers, rest = http_request(url, headers)
        if self.status != 101:
            self.sock.close()
            raise UpgradeRefused(self.status, self.headers)
        self.protocol = self.headers.get("x-stream-protocol-version", [""])[0]
        self.deflate = zlib.compressobj(zdict=DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.streams = {}
        self.next_id = 1
        self.lock = threading.Lock()
        self.goaway = threading.Event()
        self.closed = threading.Event()
        self.buf = rest
        self.sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()

    def _block(self, headers):
        b = struct.pack(">I", len(headers))
        for k, v in headers:
            b += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return self.deflate.compress(b) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def _control(self, ftype, flags, body):
        with self.lock:
            self.sock.sendall(struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(body)) + body)

    def open(self, headers, fin=False):
        with self.lock:
            sid = self.next_id
            self.next_id += 2
            st = Stream(sid, dict(headers))
            self.streams[sid] = st
            body = struct.pack(">IIH", sid, 0, 0) + self._block(headers)
            self.sock.sendall(struct.pack(">HHI", 0x8003, 1, ((1 if fin else 0) << 24) | len(body)) + body)
        return st

    def send(self, stream, data, fin=False):
        with self.lock:
            self.sock.sendall(struct.pack(">II", stream.id, ((1 if fin else 0) << 24) | len(data)) + data)

    def ping(self, pid):
        self._control(6, 0, struct.pack(">I", pid))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _reader(self):
        self.pings = queue.Queue()
        try:
            while True:
                first, second = struct.unpack(">II", self._read(8))
                flags, length = second >> 24, second & 0xFFFFFF
                body = self._read(length)
                if first & 0x80000000 == 0:
                    st = self.streams.get(first)
                    if st:
                        if body:
                            st.data.put(body)
                        if flags & 1:
                            st.data.put(None)
                    continue
                ftype = first & 0xFFFF
                if ftype == 2:  # SYN_REPLY
                    sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
                    self.inflate.decompress(body[4:])
                    if sid in self.streams:
                        self.streams[sid].replied.set()
                elif ftype == 3:  # RST_STREAM
                    sid = struct.unpack(">I", body[:4])[0] & 0x7FFFFFFF
                    st = self.streams.get(sid)
                    if st:
                        st.reset = True
                        st.replied.set()
                        st.data.put(None)
                elif ftype == 6:
                    self.pings.put(struct.unpack(">I", body)[0])
                elif ftype == 7:
                    self.goaway.set()
        except (EOFError, OSError):
            pass
        finally:
            self.closed.set()
            for st in list(self.streams.values()):
                st.data.put(None)


class UpgradeRefused(Exception):
    def __init__(self, status, headers):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers


def remote_command(url, stdin=None, stdout=True, stderr=True, tty=False, resize=None, protocols=EXEC_PROTOCOLS,
                   close_stdin=True):
    """Runs an exec or attach as client-go does: opens error, stdin, stdout, stderr (resize with
    tty), sends stdin (bytes), and returns (stdout, stderr, error stream text, client)."""
    c = Client(url, protocols)
    error = c.open([("streamtype", "error")])
    streams = {}
    if stdin is not None:
        streams["stdin"] = c.open([("streamtype", "stdin")])
    if stdout:
        streams["stdout"] = c.open([("streamtype", "stdout")])
    if stderr:
        streams["stderr"] = c.open([("streamtype", "stderr")])
    if tty and resize:
        r = c.open([("streamtype", "resize")])
        c.send(r, resize)
    for st in [error] + list(streams.values()):
        assert st.replied.wait(10), f"no SYN_REPLY for stream {st.headers}"
    if stdin is not None:
        if stdin:
            c.send(streams["stdin"], stdin)
        if close_stdin:
            c.send(streams["stdin"], b"", fin=True)
    out = streams["stdout"].read_all() if stdout else b""
    err = streams["stderr"].read_all() if stderr else b""
    status = error.read_all()
    return out, err, status.decode(), c
