"""RuntimeService RPCs that need no pod: Version, Status, RuntimeConfig, UpdateRuntimeConfig;
and UNIMPLEMENTED for the pod RPCs that are not wired yet."""

import json
import os

import grpc
import pytest


def test_version_v1(daemon, pb):
    r = daemon.runtime.Version(pb.VersionRequest(version="0.1.0"))
    assert r.version == "0.1.0"  # kubelet refuses any other
    assert r.runtime_name == "husk"
    assert r.runtime_version == "0.1.0"
    assert r.runtime_api_version == "v1"


def test_version_v1alpha2(daemon, pb):
    r = daemon.unary("/runtime.v1alpha2.RuntimeService/Version", pb.VersionRequest(version="0.1.0"), pb.VersionResponse)
    assert (r.version, r.runtime_name, r.runtime_version) == ("0.1.0", "husk", "0.1.0")
    # The image service answers as v1alpha2 too.
    fs = daemon.unary("/runtime.v1alpha2.ImageService/ImageFsInfo", pb.ImageFsInfoRequest(), pb.ImageFsInfoResponse)
    assert len(fs.image_filesystems) == 1


def conditions(r):
    return {c.type: c for c in r.status.conditions}


def test_status_without_cni_config(daemon, pb):
    r = daemon.runtime.Status(pb.StatusRequest())
    c = conditions(r)
    assert set(c) == {"RuntimeReady", "NetworkReady"}
    assert c["RuntimeReady"].status is True
    assert c["NetworkReady"].status is False
    assert c["NetworkReady"].reason == "NetworkPluginNotReady"
    assert c["NetworkReady"].message == "Network plugin returns error: cni plugin not initialized"
    assert dict(r.info) == {}  # only when verbose


def test_status_verbose_info_is_json(daemon, pb):
    r = daemon.runtime.Status(pb.StatusRequest(verbose=True))
    info = {k: json.loads(v) for k, v in r.info.items()}
    assert info["config"]["root"] == daemon.root
    assert info["config"]["listen"] == daemon.socket
    assert info["cniconfig"] is None
    assert "cni plugin not initialized" in info["lastCNILoadStatus"]


def test_status_with_cni_config(start, pb, tmpdirs):
    os.makedirs(os.path.join(tmpdirs, "cni"))
    conf = {
        "cniVersion": "1.0.0", "name": "husk-test",
        "plugins": [{"type": "bridge", "bridge": "husk-test0", "ipam": {"type": "host-local", "subnet": "10.250.0.0/24"}}],
    }
    with open(os.path.join(tmpdirs, "cni", "10-test.conflist"), "w") as f:
        json.dump(conf, f)
    d = start()
    r = d.runtime.Status(pb.StatusRequest(verbose=True))
    c = conditions(r)
    assert c["RuntimeReady"].status is True
    assert c["NetworkReady"].status is True
    assert c["NetworkReady"].reason == ""
    info = json.loads(r.info["cniconfig"])
    assert info["config"]["name"] == "husk-test"
    assert info["file"].endswith("/10-test.conflist")
    assert json.loads(r.info["lastCNILoadStatus"]) == "OK"
    # Taken away: NotReady again, without a restart (kubelet polls every 5 s).
    os.remove(os.path.join(tmpdirs, "cni", "10-test.conflist"))
    assert conditions(d.runtime.Status(pb.StatusRequest()))["NetworkReady"].status is False


def test_status_with_broken_cni_config(start, pb, tmpdirs):
    os.makedirs(os.path.join(tmpdirs, "cni"))
    with open(os.path.join(tmpdirs, "cni", "10-bad.conflist"), "w") as f:
        f.write("{not json")
    d = start()
    c = conditions(d.runtime.Status(pb.StatusRequest()))
    assert c["NetworkReady"].status is False
    assert c["NetworkReady"].reason == "NetworkPluginNotReady"
    assert c["NetworkReady"].message.startswith("Network plugin returns error: ")
    assert "10-bad.conflist" in c["NetworkReady"].message


def test_runtime_config(daemon, pb):
    r = daemon.runtime.RuntimeConfig(pb.RuntimeConfigRequest())
    assert r.HasField("linux")
    assert r.linux.cgroup_driver == pb.CGROUPFS


def test_update_runtime_config(daemon, pb):
    req = pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.0.0/24")))
    daemon.runtime.UpdateRuntimeConfig(req)
    assert "10.244.0.0/24" in daemon.log()


@pytest.mark.parametrize("rpc,request_type", [
    ("CheckpointContainer", "CheckpointContainerRequest"),
])
def test_not_yet_implemented(daemon, pb, rpc, request_type):
    with pytest.raises(grpc.RpcError) as e:
        getattr(daemon.runtime, rpc)(getattr(pb, request_type)())
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert e.value.details() == f"husk serve: {rpc} is not implemented yet"


def test_streaming_rpcs_v1alpha2(daemon, pb):
    # The same handlers under v1alpha2: an empty request is refused by Exec's own checks.
    with pytest.raises(grpc.RpcError) as e:
        daemon.unary("/runtime.v1alpha2.RuntimeService/Exec", pb.ExecRequest(), pb.ExecResponse)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_pod_rpcs_v1alpha2(daemon, pb):
    r = daemon.unary("/runtime.v1alpha2.RuntimeService/ListPodSandbox", pb.ListPodSandboxRequest(), pb.ListPodSandboxResponse)
    assert list(r.items) == []
    with pytest.raises(grpc.RpcError) as e:
        daemon.unary("/runtime.v1alpha2.RuntimeService/PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id="ab" * 32),
                     pb.PodSandboxStatusResponse)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_service(daemon, pb):
    with pytest.raises(grpc.RpcError) as e:
        daemon.unary("/runtime.v9.RuntimeService/Version", pb.VersionRequest(), pb.VersionResponse)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
