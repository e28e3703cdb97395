"""ImageService over Husk's image store, pulling from OCI layouts made with umoci."""

import json
import os
import subprocess
import time

import grpc
import pytest

from conftest import sha256_file

REPO = "docker.io/library/busybox"


@pytest.fixture
def serve(start, layout):
    """A daemon whose image source is the busybox layout (as docker.io/library/busybox)."""
    return start("--image-source", f"{REPO}={layout.path}")


def spec(pb, text):
    return pb.ImageSpec(image=text)


def test_image_fs_info(serve, pb):
    before = time.time_ns()
    r = serve.images.ImageFsInfo(pb.ImageFsInfoRequest())
    assert len(r.image_filesystems) == 1
    fs = r.image_filesystems[0]
    assert fs.fs_id.mountpoint == os.path.join(serve.root, "images")
    assert before - 5 * 10**9 <= fs.timestamp <= time.time_ns()
    assert fs.HasField("used_bytes") and fs.HasField("inodes_used")
    empty = (fs.used_bytes.value, fs.inodes_used.value)
    assert empty[0] > 0 and empty[1] > 0  # the store's own directories
    serve.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox:1.36")))
    fs = serve.images.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    # busybox-static (~1-2 MB) and an inode per applet link.
    assert fs.used_bytes.value > empty[0] + 500_000
    assert fs.inodes_used.value > empty[1] + 100


def test_pull_list_status_remove(serve, pb, layout):
    manifest_digest, manifest, config_digest = layout.manifest_of("1.36")
    size = os.path.getsize(layout.blob(manifest_digest)) + manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"])

    r = serve.images.PullImage(pb.PullImageRequest(
        image=spec(pb, "busybox:1.36"), auth=pb.AuthConfig(username="ignored", password="for layouts")))
    assert r.image_ref == config_digest
    assert sha256_file(layout.blob(config_digest)) == config_digest

    images = serve.images.ListImages(pb.ListImagesRequest()).images
    assert len(images) == 1
    img = images[0]
    assert img.id == config_digest
    assert list(img.repo_tags) == [f"{REPO}:1.36"]
    assert list(img.repo_digests) == [f"{REPO}@{manifest_digest}"]
    assert img.size == size
    assert not img.HasField("uid") and img.username == ""  # no User in the config

    # The same image by tag, ID, ID prefix and digest.
    for text in ("busybox:1.36", f"{REPO}:1.36", config_digest, config_digest[7:19], f"{REPO}@{manifest_digest}"):
        st = serve.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, text)))
        assert st.HasField("image"), text
        assert st.image == img, text
        assert dict(st.info) == {}

    verbose = serve.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, "busybox:1.36"), verbose=True))
    info = json.loads(verbose.info["info"])
    config = json.load(open(layout.blob(config_digest)))
    assert info["imageSpec"] == config
    assert info["imageSpec"]["config"]["Cmd"] == ["/bin/sh"]
    assert info["chainID"] == config["rootfs"]["diff_ids"][0]  # one layer: the chain is its diff_id

    # Filters select by spec; a spec no image has gives none.
    assert [i.id for i in serve.images.ListImages(pb.ListImagesRequest(filter=pb.ImageFilter(image=spec(pb, "busybox:1.36")))).images] == [img.id]
    assert list(serve.images.ListImages(pb.ListImagesRequest(filter=pb.ImageFilter(image=spec(pb, "busybox:2")))).images) == []
    streamed = [i for part in serve.images.StreamImages(pb.StreamImagesRequest()) for i in part.images]
    assert streamed == [img]

    # A second tag of the same image: one image, two tags; removing by one tag removes it all.
    assert serve.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox"))).image_ref == config_digest
    images = serve.images.ListImages(pb.ListImagesRequest()).images
    assert len(images) == 1 and sorted(images[0].repo_tags) == [f"{REPO}:1.36", f"{REPO}:latest"]

    serve.images.RemoveImage(pb.RemoveImageRequest(image=spec(pb, "busybox:1.36")))
    assert list(serve.images.ListImages(pb.ListImagesRequest()).images) == []
    for text in ("busybox:1.36", "busybox:latest", config_digest):
        assert not serve.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, text))).HasField("image")
    # Absent: still OK, as containerd.
    serve.images.RemoveImage(pb.RemoveImageRequest(image=spec(pb, "busybox:1.36")))
    serve.images.RemoveImage(pb.RemoveImageRequest(image=spec(pb, config_digest)))
    # The store's blobs and snapshots went with it.
    assert os.listdir(os.path.join(serve.root, "images", "blobs", "sha256")) == []


def test_image_user(serve, pb):
    serve.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox:uid")))
    serve.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox:named")))
    uid = serve.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, "busybox:uid"))).image
    assert uid.HasField("uid") and uid.uid.value == 1000 and uid.username == ""
    named = serve.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, "busybox:named"))).image
    assert not named.HasField("uid") and named.username == "nobody"


def test_pull_missing_image(serve, pb, layout):
    for text, ref in (("busybox:nope", f"{REPO}:nope"), ("other/image:1", "docker.io/other/image:1")):
        with pytest.raises(grpc.RpcError) as e:
            serve.images.PullImage(pb.PullImageRequest(image=spec(pb, text)))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
        details = e.value.details()
        assert f'"{text}"' in details and ref in details
        assert layout.path in details  # what was tried
        assert "registries" in details
    assert list(serve.images.ListImages(pb.ListImagesRequest()).images) == []


def test_pull_without_sources(daemon, pb):
    with pytest.raises(grpc.RpcError) as e:
        daemon.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox:1.36")))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no image source is configured" in e.value.details()


def test_bad_requests(daemon, pb):
    calls = [
        lambda: daemon.images.PullImage(pb.PullImageRequest()),
        lambda: daemon.images.PullImage(pb.PullImageRequest(image=spec(pb, ""))),
        lambda: daemon.images.ImageStatus(pb.ImageStatusRequest()),
        lambda: daemon.images.RemoveImage(pb.RemoveImageRequest(image=spec(pb, ""))),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith("image.image: ")
    with pytest.raises(grpc.RpcError) as e:
        daemon.images.PullImage(pb.PullImageRequest(image=spec(pb, "Busybox:UPPER")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image.image: " in e.value.details() and "Busybox:UPPER" in e.value.details()


def test_status_of_absent_image(daemon, pb):
    # Absent is an empty reply, not an error (kubelet: "not present").
    for text in ("busybox:1.36", "sha256:" + "0" * 64, "not a reference!"):
        r = daemon.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, text)))
        assert not r.HasField("image")


def test_pull_from_a_corrupt_layout(start, pb, layout, tmpdirs):
    # A layer whose bytes no longer match its digest: the pull fails, nothing is kept.
    import shutil

    bad = os.path.join(tmpdirs, "bad-layout")
    shutil.copytree(layout.path, bad)
    _, manifest, _ = layout.manifest_of("1.36")
    layer = os.path.join(bad, "blobs", "sha256", manifest["layers"][0]["digest"].split(":", 1)[1])
    size = os.path.getsize(layer)
    with open(layer, "r+b") as f:
        f.write(b"\0" * size)
    d = start("--image-source", f"{REPO}={bad}")
    with pytest.raises(grpc.RpcError) as e:
        d.images.PullImage(pb.PullImageRequest(image=spec(pb, "busybox:1.36")))
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert manifest["layers"][0]["digest"] in e.value.details() and "nothing was kept" in e.value.details()
    assert list(d.images.ListImages(pb.ListImagesRequest()).images) == []


def test_pull_from_registry_with_auth(start, layout, pb, tmpdirs):
    """PullImage from a registry (issue 14) with CRI's AuthConfig: refused without
    credentials or with wrong ones (naming the registry, never the password), pulled with
    them; the image then has a repo digest from that registry."""
    import socket
    for tool in ("/usr/bin/docker-registry", "/usr/bin/htpasswd", "/usr/bin/skopeo"):
        if not os.path.exists(tool):
            pytest.skip(f"needs {tool} (Scripts/install-deps.sh installs it)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    reg = os.path.join(tmpdirs, "registry")
    os.makedirs(reg)
    htpasswd = subprocess.run(["htpasswd", "-Bbn", "kube", "pw-kube"], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(reg, "htpasswd"), "w") as f:
        f.write(htpasswd)
    with open(os.path.join(reg, "config.yml"), "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {reg}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: husk\n    path: {reg}/htpasswd\n")
    proc = subprocess.Popen(["docker-registry", "serve", os.path.join(reg, "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "kube:pw-kube",
                        f"oci:{layout.path}:1.36", f"docker://127.0.0.1:{port}/library/busybox:1.36"],
                       check=True, capture_output=True)
        os.makedirs(os.path.join(tmpdirs, "certs.d"), exist_ok=True)
        d = start("--registry-config", os.path.join(tmpdirs, "certs.d"))
        image = f"127.0.0.1:{port}/library/busybox:1.36"
        with pytest.raises(grpc.RpcError) as e:
            d.images.PullImage(pb.PullImageRequest(image=spec(pb, image)))
        assert "no basic auth credentials" in e.value.details(), e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            d.images.PullImage(pb.PullImageRequest(image=spec(pb, image), auth=pb.AuthConfig(username="kube", password="bad-pw")))
        assert "authorization failed" in e.value.details() and "bad-pw" not in e.value.details()
        ref = d.images.PullImage(pb.PullImageRequest(image=spec(pb, image), auth=pb.AuthConfig(username="kube", password="pw-kube"))).image_ref
        st = d.images.ImageStatus(pb.ImageStatusRequest(image=spec(pb, image))).image
        assert st.id == ref
        assert any(x.startswith(f"127.0.0.1:{port}/library/busybox@sha256:") for x in st.repo_digests), st.repo_digests
    finally:
        proc.kill()
        proc.wait()
