"""Fixtures of the CRI tests: a client that is not Husk's own code (Python grpcio, stubs made
from Sources/HuskCRI/Proto/api.proto at test time), the built husk-serve on a temp socket with
temp roots, and a busybox OCI layout made with umoci."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIR = os.path.join(TOP, "Sources", "HuskCRI", "Proto")
HUSK_SERVE = os.environ.get("HUSK_SERVE", os.path.join(TOP, ".build", "debug", "husk-serve"))
HUSK = os.environ.get("HUSK", os.path.join(os.path.dirname(HUSK_SERVE), "husk"))
BUSYBOX = shutil.which("busybox")
UMOCI = shutil.which("umoci")


def pytest_configure(config):
    config.addinivalue_line("markers", "images: needs umoci and busybox-static (Scripts/install-deps.sh)")


@pytest.fixture(scope="session")
def pb():
    """The generated message and stub modules, as one namespace: pb.VersionRequest, pb.RuntimeServiceStub."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="husk-cri-stubs-")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "api.proto"])
    assert rc == 0, "grpc_tools.protoc failed on api.proto"
    sys.path.insert(0, out)
    import api_pb2
    import api_pb2_grpc

    class NS:
        pass

    ns = NS()
    for mod in (api_pb2, api_pb2_grpc):
        for k in dir(mod):
            if not k.startswith("_"):
                setattr(ns, k, getattr(mod, k))
    yield ns
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)


class Layout:
    """A busybox OCI layout: tags 1.36 and latest (Cmd /bin/sh), uid (User 1000:1000), named (User nobody)."""

    def __init__(self, path):
        self.path = path

    def manifest_of(self, tag):
        """(manifest digest, manifest dict, config digest) of a tag, read from the layout."""
        index = json.load(open(os.path.join(self.path, "index.json")))
        for m in index["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                digest = m["digest"]
                manifest = json.load(open(self.blob(digest)))
                return digest, manifest, manifest["config"]["digest"]
        raise KeyError(tag)

    def blob(self, digest):
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])


@pytest.fixture(scope="session")
def layout():
    if not (UMOCI and BUSYBOX):
        pytest.skip("needs umoci and busybox-static (Scripts/install-deps.sh installs them)")
    work = tempfile.mkdtemp(prefix="husk-cri-layout-")
    lay = os.path.join(work, "layout")
    bundle = os.path.join(work, "bundle")

    def sh(*args):
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    sh("umoci", "init", "--layout", lay)
    sh("umoci", "new", "--image", lay + ":base")
    sh("umoci", "unpack", "--image", lay + ":base", bundle)
    rootfs = os.path.join(bundle, "rootfs")
    for d in ("bin", "etc", "tmp", "root"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    sh("umoci", "repack", "--image", lay + ":base", bundle)
    sh("umoci", "config", "--image", lay + ":base", "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin", "--tag", "1.36")
    sh("umoci", "tag", "--image", lay + ":1.36", "latest")
    sh("umoci", "config", "--image", lay + ":1.36", "--config.user", "1000:1000", "--tag", "uid")
    sh("umoci", "config", "--image", lay + ":1.36", "--config.user", "nobody", "--tag", "named")
    shutil.rmtree(bundle)
    yield Layout(lay)
    shutil.rmtree(work, ignore_errors=True)


class Daemon:
    """A running husk-serve and clients of both services on its socket."""

    def __init__(self, pb, dirs, args, command=None):
        import grpc

        self.pb = pb
        self.dirs = dirs
        self.socket = os.path.join(dirs, "run", "cri.sock")
        self.root = os.path.join(dirs, "root")
        self.cni = os.path.join(dirs, "cni")
        self.stderr_path = os.path.join(dirs, "husk-serve.log")
        base = command or [HUSK_SERVE]
        self.argv = base + [
            "--listen", self.socket, "--root", self.root, "--state", os.path.join(dirs, "state"),
            "--log-dir", os.path.join(dirs, "log"), "--cni-conf-dir", self.cni,
            "--config", os.path.join(dirs, "config.json"),
        ] + list(args)
        # No test reaches the network: registries only where a test serves one.
        if "--registry-config" not in args:
            self.argv.append("--no-registries")
        with open(os.path.join(dirs, "config.json"), "w") as f:
            f.write("{}")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"husk-serve exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"husk-serve did not listen on {self.socket} within 30 s: {self.log()}")
            time.sleep(0.05)
        self.channel = grpc.insecure_channel("unix://" + self.socket)
        self.runtime = pb.RuntimeServiceStub(self.channel)
        self.images = pb.ImageServiceStub(self.channel)

    def _answers(self):
        if not os.path.exists(self.socket):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def log(self):
        self.stderr.flush()
        return open(self.stderr_path).read()

    def unary(self, path, request, response_type):
        """Calls a method by its full path (/runtime.v1alpha2.RuntimeService/Version)."""
        call = self.channel.unary_unary(
            path, request_serializer=type(request).SerializeToString, response_deserializer=response_type.FromString)
        return call(request, timeout=30)

    def stop(self):
        """SIGTERM: the daemon must exit 0 and remove its socket."""
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"husk-serve did not stop within 30 s of SIGTERM: {self.log()}")
        self.stderr.close()
        return rc


@pytest.fixture
def tmpdirs():
    # Short: a unix socket path has at most 107 bytes.
    d = tempfile.mkdtemp(prefix="husk-cri-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start(pb, tmpdirs):
    """start(*args, command=None) -> Daemon; each one is stopped at the end of the test, and
    must exit 0 on SIGTERM and leave no socket."""
    started = []

    def _start(*args, command=None, dirs=None):
        d = Daemon(pb, dirs or tmpdirs, args, command=command)
        started.append(d)
        return d

    yield _start
    for d in started:
        if d.proc.poll() is None:
            rc = d.stop()
            assert rc == 0, f"husk-serve exited {rc} on SIGTERM: {d.log()}"
            assert not os.path.exists(d.socket), "husk-serve left its socket behind"


@pytest.fixture
def daemon(start):
    return start()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
