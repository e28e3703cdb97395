"""The daemon itself: its socket, one daemon per socket, signals, `husk serve`."""

import os
import signal
import socket
import stat
import subprocess

import pytest

from conftest import HUSK, HUSK_SERVE


def test_socket_mode(daemon):
    st = os.lstat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == os.geteuid()
    # Its directory was created traversable only.
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.socket)).st_mode) == 0o711


def test_second_daemon_on_a_live_socket_is_refused(daemon, pb):
    r = subprocess.run(
        [HUSK_SERVE, "--listen", daemon.socket, "--root", daemon.root + "-2", "--config", os.path.join(daemon.dirs, "config.json")],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"{daemon.socket}: another husk serve (pid {daemon.proc.pid}) is serving it" in r.stderr
    # The first one still serves, on the same socket.
    assert daemon.runtime.Version(pb.VersionRequest()).runtime_name == "husk"


def test_a_live_socket_of_another_server_is_refused(pb, tmpdirs):
    path = os.path.join(tmpdirs, "run", "cri.sock")
    os.makedirs(os.path.dirname(path))
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    try:
        r = subprocess.run([HUSK_SERVE, "--listen", path, "--root", os.path.join(tmpdirs, "root")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "a server answers on this socket" in r.stderr and "refusing to replace it" in r.stderr
        assert os.path.exists(path)
    finally:
        other.close()


def test_not_a_socket_is_refused(tmpdirs):
    path = os.path.join(tmpdirs, "cri.sock")
    open(path, "w").write("mine")
    r = subprocess.run([HUSK_SERVE, "--listen", path, "--root", os.path.join(tmpdirs, "root")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "is not a socket; refusing to replace it" in r.stderr
    assert open(path).read() == "mine"


def test_stale_socket_is_replaced(start, pb, tmpdirs):
    # A socket file nobody listens on any more, as a killed daemon leaves it.
    path = os.path.join(tmpdirs, "run", "cri.sock")
    os.makedirs(os.path.dirname(path))
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()
    d = start()
    assert d.socket == path
    assert d.runtime.Version(pb.VersionRequest()).runtime_name == "husk"
    assert "removed the stale socket" in d.log()


def test_sigkilled_daemon_leaves_a_socket_the_next_one_replaces(start, pb, tmpdirs):
    first = start()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert os.path.exists(first.socket)
    second = start()
    assert second.runtime.Version(pb.VersionRequest()).version == "0.1.0"


def test_sigint_stops_cleanly(start, pb):
    d = start()
    d.channel.close()
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=30) == 0
    assert not os.path.exists(d.socket)
    assert "SIGINT" in d.log()


def test_husk_serve_runs_husk_serve(start, pb, tmpdirs):
    # `husk [global flags] serve [flags]` execs husk-serve from husk's directory.
    d = start(command=[HUSK, "--max-layer-size", "1000000000", "serve"])
    assert d.runtime.Version(pb.VersionRequest()).runtime_name == "husk"
    assert os.path.basename(os.readlink(f"/proc/{d.proc.pid}/exe")) == "husk-serve"
    cmdline = open(f"/proc/{d.proc.pid}/cmdline").read().split("\0")
    assert cmdline[1:3] == ["--max-layer-size", "1000000000"]


def test_husk_serve_without_the_daemon_binary(tmpdirs):
    # husk copied somewhere without husk-serve next to it: a clear error, no crash.
    lone = os.path.join(tmpdirs, "husk")
    subprocess.run(["cp", HUSK, lone], check=True)
    r = subprocess.run([lone, "serve", "--listen", os.path.join(tmpdirs, "x.sock")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert os.path.join(tmpdirs, "husk-serve") in r.stderr
    assert "installed next to husk" in r.stderr
