"""Exec and Attach over WebSocket (kubelet's wsstream channel protocol, `v5.channel.k8s.io`
down to `channel.k8s.io`): each binary message is a channel byte (0 stdin, 1 stdout, 2 stderr,
3 error, 4 resize) and data; v5's channel 255 closes the channel its byte names. The client is
the `websockets` package, not Husk's code."""

import json
import os

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from test_pods import create, run_sandbox, serve, status, wait_for  # noqa: F401 (serve is a fixture)


def running(d, script, **kw):
    sid, config = run_sandbox(d)
    cid = create(d, sid, config, "x", script, **kw)
    d.runtime.StartContainer(d.pb.StartContainerRequest(container_id=cid))
    assert wait_for(lambda: status(d, cid).state == d.pb.CONTAINER_RUNNING)
    return cid


def ws_url(url):
    return "ws://" + url[len("http://"):]


def collect(ws):
    """Every message until the server closes: bytes per channel, and the channels' order."""
    got, order = {}, []
    try:
        while True:
            m = ws.recv(timeout=20)
            assert isinstance(m, bytes), m
            got[m[0]] = got.get(m[0], b"") + m[1:]
            order.append(m[0])
    except ConnectionClosed:
        pass
    return got, order


def test_websocket_exec(serve, pb):
    """v5: stdout and stderr apart, the v4 status on channel 3, stdin ended by the close signal;
    the first message is the empty one on the lowest output channel (wsstream's open)."""
    cid = running(serve, "sleep 600")
    url = serve.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"],
                                            stdout=True, stderr=True)).url
    with connect(ws_url(url), subprotocols=["v5.channel.k8s.io", "v4.channel.k8s.io"]) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        got, order = collect(ws)
    assert order[0] == 1
    assert (got[1], got[2]) == (b"out\n", b"err\n")
    st = json.loads(got[3])
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

    # stdin, then v5's close of channel 0: EOF for cat.
    data = os.urandom(100 * 1024)
    url = serve.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=["cat"], stdin=True, stdout=True)).url
    with connect(ws_url(url), subprotocols=["v5.channel.k8s.io"], max_size=None) as ws:
        for i in range(0, len(data), 16384):
            ws.send(b"\x00" + data[i:i + 16384])
        ws.send(b"\xff\x00")
        got, _ = collect(ws)
    assert got[1] == data
    assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}

    # A terminal: one output channel, and the resize channel's size reaches it.
    url = serve.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "sleep 0.5; stty size"],
                                            stdout=True, tty=True)).url
    with connect(ws_url(url), subprotocols=["v4.channel.k8s.io"]) as ws:
        assert ws.subprotocol == "v4.channel.k8s.io"
        ws.send(b"\x04" + b'{"Width":99,"Height":33}')
        got, _ = collect(ws)
    assert b"33 99" in got[1], got
    assert 2 not in got or got[2] == b""

    # channel.k8s.io (v1): nothing on the error channel on success.
    url = serve.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=["echo", "v1"], stdout=True)).url
    with connect(ws_url(url), subprotocols=["channel.k8s.io"]) as ws:
        got, _ = collect(ws)
    assert got[1] == b"v1\n" and got.get(3, b"") == b""


def test_websocket_attach_and_refusals(serve, pb):
    """Attach over v5; an unknown sub-protocol, a used token and a port-forward are refused."""
    cid = running(serve, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    url = serve.runtime.Attach(pb.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
    with connect(ws_url(url), subprotocols=["v5.channel.k8s.io"]) as ws:
        seen = b""
        while b"tick" not in seen:
            m = ws.recv(timeout=10)
            seen += m[1:] if m[0] == 1 else b""
    assert b"tick" in seen

    url = serve.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True)).url
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(url), subprotocols=["base64.channel.k8s.io"])
    assert e.value.response.status_code == 400
    assert b"not supported" in e.value.response.body
    with pytest.raises(InvalidStatus) as e:  # the token went with the refused attempt
        connect(ws_url(url), subprotocols=["v5.channel.k8s.io"])
    assert e.value.response.status_code == 404

    pods = serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    url = serve.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=pods[0].id, port=[80])).url
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(url))
    assert e.value.response.status_code == 400 and b"SPDY" in e.value.response.body
