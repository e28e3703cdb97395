"""Exec, Attach and PortForward through the streaming server (cri-semantics.md §4-§5): the
RPC gives a one-time URL; the client upgrades to SPDY/3.1 and speaks kubelet's remotecommand
and port-forward protocols. The client is Tests/cri/spdy.py, not Husk's code."""

import json
import os
import time
import urllib.request

import grpc
import pytest

import spdy
from test_pods import create, run_sandbox, serve, status, wait_for  # noqa: F401 (serve is a fixture)


def running(d, name, script, **kw):
    sid, config = run_sandbox(d)
    cid = create(d, sid, config, name, script, **kw)
    d.runtime.StartContainer(d.pb.StartContainerRequest(container_id=cid))
    assert wait_for(lambda: status(d, cid).state == d.pb.CONTAINER_RUNNING)
    return sid, config, cid


def exec_url(d, cid, cmd, **kw):
    return d.runtime.Exec(d.pb.ExecRequest(container_id=cid, cmd=cmd, **kw)).url


def test_exec_streams_and_status(serve, pb):
    """§5: stdout and stderr apart, the v4 status (Success; NonZeroExitCode with the code as its
    cause), stdin to the process until FIN; the URL is used once."""
    _, _, cid = running(serve, "x", "sleep 600")
    url = exec_url(serve, cid, ["sh", "-c", "echo out; echo err >&2"], stdout=True, stderr=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    out, err, st, c = spdy.remote_command(url)
    assert (out, err) == (b"out\n", b"err\n")
    assert json.loads(st) == {"metadata": {}, "status": "Success"}
    assert c.protocol == "v4.channel.k8s.io"
    c.close()
    # The token is gone after its first use.
    with pytest.raises(spdy.UpgradeRefused) as e:
        spdy.remote_command(url)
    assert e.value.status == 404

    url = exec_url(serve, cid, ["sh", "-c", "exit 3"], stdout=True, stderr=True)
    _, _, st, c = spdy.remote_command(url)
    c.close()
    s = json.loads(st)
    assert s["status"] == "Failure" and s["reason"] == "NonZeroExitCode"
    assert s["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "exit code 3" in s["message"]

    # stdin: what the client sends, then its FIN (EOF for cat).
    data = os.urandom(200 * 1024)
    url = exec_url(serve, cid, ["cat"], stdin=True, stdout=True)
    out, _, st, c = spdy.remote_command(url, stdin=data, stderr=False)
    c.close()
    assert out == data
    assert json.loads(st)["status"] == "Success"

    # v1-v3: nothing on the error stream on success, the message as text on failure.
    url = exec_url(serve, cid, ["sh", "-c", "exit 2"], stdout=True)
    _, _, st, c = spdy.remote_command(url, stderr=False, protocols=["v3.channel.k8s.io"])
    c.close()
    assert c.protocol == "v3.channel.k8s.io"
    assert st.startswith("command terminated with non-zero exit code") and "exit code 2" in st


def test_exec_terminal_and_resize(serve, pb):
    """§5: with tty one output stream; the resize stream's sizes reach the terminal."""
    _, _, cid = running(serve, "x", "sleep 600")
    url = exec_url(serve, cid, ["sh", "-c", "sleep 0.5; stty size; tty"], stdout=True, tty=True)
    out, _, st, c = spdy.remote_command(url, stderr=False, tty=True, resize=b'{"Width":101,"Height":41}')
    c.close()
    text = out.decode()
    assert "41 101" in text, text
    assert "/dev/pts/" in text, text
    assert json.loads(st)["status"] == "Success"


def test_attach_stdin_once(serve, pb):
    """§7 (critest attach): /bin/sh with stdin_once; the client's input runs, its FIN ends the
    shell and the container exits 0."""
    _, _, cid = running(serve, "sh", "exec /bin/sh", stdin=True, stdin_once=True)
    url = serve.runtime.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True)).url
    out, err, st, c = spdy.remote_command(url, stdin=b"echo -n hello\n")
    c.close()
    assert out == b"hello", (out, err)
    assert json.loads(st)["status"] == "Success"
    assert wait_for(lambda: status(serve, cid).state == pb.CONTAINER_EXITED)
    assert status(serve, cid).exit_code == 0


def test_port_forward(serve, pb):
    """§5: a data and an error stream per request; localhost:<port> in the pod's network
    namespace; a closed port gives containerd's message on the error stream."""
    sid, _, _ = running(serve, "web", "mkdir -p /w && echo hello-pod > /w/index.html && exec httpd -f -p 8080 -h /w")
    # httpd may take a moment to listen.
    assert wait_for(lambda: serve.runtime.ExecSync(pb.ExecSyncRequest(
        container_id=status_id(serve, sid), cmd=["sh", "-c", "netstat -ltn | grep -q :8080"], timeout=5)).exit_code == 0)
    url = serve.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=sid, port=[8080])).url
    c = spdy.Client(url, ["portforward.k8s.io"])
    assert c.protocol == "portforward.k8s.io"
    for rid in ("0", "1"):
        error = c.open([("streamtype", "error"), ("port", "8080"), ("requestid", rid)], fin=True)
        data = c.open([("streamtype", "data"), ("port", "8080"), ("requestid", rid)])
        c.send(data, b"GET /index.html HTTP/1.0\r\n\r\n")
        body = data.read_all()
        assert b"200 OK" in body and body.endswith(b"hello-pod\n"), body
        assert error.read_all() == b""
    error = c.open([("streamtype", "error"), ("port", "9"), ("requestid", "2")], fin=True)
    data = c.open([("streamtype", "data"), ("port", "9"), ("requestid", "2")])
    msg = error.read_all().decode()
    assert msg.startswith(f"error forwarding port 9 to pod {sid}, uid : failed to connect to localhost:9"), msg
    # A stream without a port is refused.
    bad = c.open([("streamtype", "data")])
    assert wait_for(lambda: bad.reset, timeout=5)
    # The client's pings come back.
    c.ping(7)
    assert c.pings.get(timeout=5) == 7
    c.close()


def status_id(d, sid):
    cs = d.runtime.ListContainers(d.pb.ListContainersRequest(filter=d.pb.ContainerFilter(pod_sandbox_id=sid))).containers
    return cs[0].id


def test_refusals(serve, pb):
    """§4-§5: bad requests get the RPC's or HTTP's error, and nothing runs."""
    sid, config, cid = running(serve, "x", "sleep 600")
    rt = serve.runtime

    def code(call):
        with pytest.raises(grpc.RpcError) as e:
            call()
        return e.value.code()

    assert code(lambda: rt.Exec(pb.ExecRequest(container_id=cid, cmd=["true"], tty=True, stderr=True))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: rt.Exec(pb.ExecRequest(container_id=cid, cmd=["true"]))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: rt.Exec(pb.ExecRequest(container_id="nosuch", cmd=["true"], stdout=True))) == grpc.StatusCode.NOT_FOUND
    assert code(lambda: rt.Attach(pb.AttachRequest(container_id="", stdout=True))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: rt.PortForward(pb.PortForwardRequest(pod_sandbox_id="nosuch"))) == grpc.StatusCode.NOT_FOUND
    stopped = create(serve, sid, config, "created", "true")
    assert code(lambda: rt.Exec(pb.ExecRequest(container_id=stopped, cmd=["true"], stdout=True))) == grpc.StatusCode.FAILED_PRECONDITION

    url = exec_url(serve, cid, ["touch", "/ran"], stdout=True)
    base = url.rsplit("/", 2)[0]
    # Unknown token and unknown route: 404.
    for path in ("/exec/AAAAAAAA", "/nothing/x"):
        with pytest.raises(spdy.UpgradeRefused) as e:
            spdy.Client(base + path, spdy.EXEC_PROTOCOLS)
        assert e.value.status == 404
    # No protocol offered: 400; none in common: 403 with the accepted ones.
    s, code_, _, _ = spdy.http_request(url, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
    s.close()
    assert code_ == 400
    url = exec_url(serve, cid, ["touch", "/ran"], stdout=True)
    with pytest.raises(spdy.UpgradeRefused) as e:
        spdy.Client(url, ["v9.channel.k8s.io"])
    assert e.value.status == 403
    assert "v4.channel.k8s.io" in e.value.headers["x-accepted-stream-protocol-versions"]
    # None of those ran the command.
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["test", "-e", "/ran"], timeout=5))
    assert r.exit_code == 1


def test_attach_terminal_resize(serve, pb):
    """§5 resize on attach: the sizes reach the container's own terminal (which its supervisor
    holds)."""
    _, _, cid = running(serve, "tty", "while true; do stty size; sleep 0.2; done", tty=True, stdin=True)
    url = serve.runtime.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, tty=True)).url
    c = spdy.Client(url, spdy.EXEC_PROTOCOLS)
    error = c.open([("streamtype", "error")])
    c.open([("streamtype", "stdin")])
    out = c.open([("streamtype", "stdout")])
    resize = c.open([("streamtype", "resize")])
    c.send(resize, b'{"Width":77,"Height":33}')
    seen = b""
    deadline = time.monotonic() + 10
    while b"33 77" not in seen and time.monotonic() < deadline:
        try:
            seen += out.data.get(timeout=1) or b""
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting until the deadline
            pass
    c.close()
    assert b"33 77" in seen, seen[-200:]
    assert error is not None


def test_stream_idle_timeout(start, layout, pb):
    """§5: a connection with no frame either way for --stream-idle-timeout is closed
    (containerd's stream_idle_timeout)."""
    from test_pods import REPO
    d = start("--image-source", f"{REPO}={layout.path}", "--stream-idle-timeout", "1")
    try:
        _, _, cid = running(d, "x", "sleep 600")
        url = exec_url(d, cid, ["sleep", "30"], stdin=True, stdout=True)
        c = spdy.Client(url, spdy.EXEC_PROTOCOLS)
        for t in ("error", "stdin", "stdout"):
            c.open([("streamtype", t)])
        began = time.monotonic()
        assert c.closed.wait(10), "the idle connection stayed open"
        assert 0.9 <= time.monotonic() - began < 8
        assert c.goaway.is_set()
    finally:
        from test_pods import remove_all
        remove_all(d)
