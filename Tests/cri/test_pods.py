"""Pod sandboxes and containers over CRI (cri-semantics.md §2-§4, §8): husk-serve driven by
Python grpcio as kubelet drives containerd, and kill -9 of the daemon in the middle."""

import json
import os
import signal
import subprocess
import time
import uuid

import grpc
import pytest

REPO = "docker.io/library/busybox"


@pytest.fixture
def serve(start, layout):
    d = start("--image-source", f"{REPO}={layout.path}")
    yield d
    # Whatever a test left: removed, and nothing of it stays.
    remove_all(d)


def remove_all(d):
    for s in d.runtime.ListPodSandbox(d.pb.ListPodSandboxRequest()).items:
        d.runtime.StopPodSandbox(d.pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
        d.runtime.RemovePodSandbox(d.pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    assert not d.runtime.ListPodSandbox(d.pb.ListPodSandboxRequest()).items
    pods = os.path.join(d.dirs, "state", "pods")
    assert not os.path.isdir(pods) or not os.listdir(pods), os.listdir(pods)


def sandbox_config(pb, d, name="web", attempt=0, uid=None, **kw):
    uid = uid or str(uuid.uuid4())
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="default", uid=uid, attempt=attempt),
        hostname=name, log_directory=os.path.join(d.dirs, "log", f"default_{name}_{uid}"),
        labels={"app": name}, annotations={"note": "kept"}, **kw)


def run_sandbox(d, **kw):
    pb = d.pb
    d.images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox:1.36")))
    config = sandbox_config(pb, d, **kw)
    sid = d.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
    return sid, config


def container_config(pb, name, script, **kw):
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=0), image=pb.ImageSpec(image="busybox:1.36"),
        command=["/bin/sh", "-c", script], log_path=f"{name}/0.log", labels={"c": name}, **kw)


def create(d, sid, sconfig, name, script, **kw):
    pb = d.pb
    return d.runtime.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=sid, config=container_config(pb, name, script, **kw), sandbox_config=sconfig)).container_id


def status(d, cid):
    return d.runtime.ContainerStatus(d.pb.ContainerStatusRequest(container_id=cid)).status


def wait_for(cond, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_sandbox_run_status_list_stop_remove(serve, pb):
    sid, config = run_sandbox(serve)
    assert len(sid) == 64
    s = serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True))
    st = s.status
    assert st.id == sid and st.state == pb.SANDBOX_READY
    assert (st.metadata.name, st.metadata.namespace, st.metadata.uid) == ("web", "default", config.metadata.uid)
    assert st.labels == {"app": "web"} and st.annotations == {"note": "kept"}
    assert abs(st.created_at - time.time_ns()) < 60 * 10**9
    assert st.network.ip == ""  # no CNI config in this daemon: loopback only
    assert st.linux.namespaces.options.network == pb.POD
    assert "info" in s.info
    items = serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    assert [i.id for i in items] == [sid]
    # Filters: id prefix, state, labels (ANDed).
    f = pb.PodSandboxFilter
    assert len(serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=f(id=sid[:12]))).items) == 1
    assert not serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=f(label_selector={"app": "other"}))).items
    notready = f(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert not serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=notready)).items
    # The same name and attempt again: refused (containerd reserves it).
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "failed to reserve sandbox name" in e.value.details()

    serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    st = serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == pb.SANDBOX_NOTREADY
    assert len(serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=notready)).items) == 1
    serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))  # again: OK
    serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))  # absent: OK
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_sandbox_dns_hostname_and_sysctls(serve, pb):
    sid, config = run_sandbox(serve, dns_config=pb.DNSConfig(servers=["10.0.0.10"], searches=["ns.svc"], options=["ndots:5"]),
                              linux=pb.LinuxPodSandboxConfig(sysctls={"net.ipv4.ip_unprivileged_port_start": "80"}))
    cid = create(serve, sid, config, "c", "sleep 60")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=[
        "/bin/sh", "-c", "cat /etc/resolv.conf; hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"], timeout=10))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode() == "search ns.svc\nnameserver 10.0.0.10\noptions ndots:5\nweb\n80\n"


def test_container_lifecycle(serve, pb):
    sid, config = run_sandbox(serve)
    cid = create(serve, sid, config, "app", "trap 'exit 3' TERM; echo hello; echo oops >&2; while true; do sleep 0.1; done",
                 envs=[pb.KeyValue(key="GREETING", value=b"hi there")])
    st = status(serve, cid)
    assert st.state == pb.CONTAINER_CREATED and st.metadata.name == "app"
    assert st.image.image == "busybox:1.36" and st.image_ref
    assert st.log_path == os.path.join(config.log_directory, "app/0.log")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    st = status(serve, cid)
    assert st.state == pb.CONTAINER_RUNNING and st.started_at >= st.created_at > 0
    # Starting it again is refused.
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    listed = serve.runtime.ListContainers(pb.ListContainersRequest()).containers
    assert [(c.id, c.pod_sandbox_id, c.state) for c in listed] == [(cid, sid, pb.CONTAINER_RUNNING)]
    f = pb.ContainerFilter
    assert len(serve.runtime.ListContainers(pb.ListContainersRequest(filter=f(pod_sandbox_id=sid, label_selector={"c": "app"}))).containers) == 1
    assert not serve.runtime.ListContainers(pb.ListContainersRequest(filter=f(state=pb.ContainerStateValue(state=pb.CONTAINER_EXITED)))).containers

    # ExecSync: both streams apart, the exit code, the env; a timeout is DEADLINE_EXCEEDED.
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["/bin/sh", "-c", "echo $GREETING; echo e >&2; exit 4"], timeout=10))
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi there\n", b"e\n", 4)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=1))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 10

    # The CRI log: both streams, in kubelet's format.
    log = os.path.join(config.log_directory, "app/0.log")
    assert wait_for(lambda: os.path.exists(log) and " stderr F oops\n" in open(log).read())
    assert " stdout F hello\n" in open(log).read()
    # ReopenContainerLog: after kubelet's rename, a new file.
    os.rename(log, log + ".1")
    serve.runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    assert os.path.exists(log)

    # UpdateContainerResources: accepted for a running container.
    serve.runtime.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(unified={"pids.max": "100"})))

    # StopContainer: the stop signal (the trap exits 3), EXITED with its code and reason.
    serve.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10))
    st = status(serve, cid)
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 3, "Error")
    assert st.finished_at >= st.started_at
    serve.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10))  # again: OK
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"]))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    serve.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    serve.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))  # absent: OK
    with pytest.raises(grpc.RpcError) as e:
        status(serve, cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_exit_codes_and_timeout_zero(serve, pb):
    sid, config = run_sandbox(serve)
    done = create(serve, sid, config, "done", "exit 0")
    fails = create(serve, sid, config, "fails", "exit 9")
    stubborn = create(serve, sid, config, "stubborn", "trap '' TERM; while true; do sleep 0.1; done")
    for cid in (done, fails, stubborn):
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert wait_for(lambda: status(serve, done).state == pb.CONTAINER_EXITED and status(serve, fails).state == pb.CONTAINER_EXITED)
    assert (status(serve, done).exit_code, status(serve, done).reason) == (0, "Completed")
    assert (status(serve, fails).exit_code, status(serve, fails).reason) == (9, "Error")
    # timeout 0: SIGKILL at once (no 2 s floor: that is kubelet's policy, not the runtime's).
    t0 = time.monotonic()
    serve.runtime.StopContainer(pb.StopContainerRequest(container_id=stubborn, timeout=0))
    assert time.monotonic() - t0 < 1.5
    assert status(serve, stubborn).exit_code == 137


def test_bad_requests(serve, pb):
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pb.PodSandboxConfig()))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id="0" * 64, config=container_config(pb, "c", "true")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    for rpc, req in [("StartContainer", pb.StartContainerRequest(container_id="f" * 64)),
                     ("ContainerStatus", pb.ContainerStatusRequest(container_id="f" * 64)),
                     ("StopContainer", pb.StopContainerRequest(container_id="f" * 64))]:
        with pytest.raises(grpc.RpcError) as e:
            getattr(serve.runtime, rpc)(req)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, rpc
    sid, config = run_sandbox(serve)
    # An image not in the store: NOT_FOUND, nothing created.
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image="busybox:nope"))))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="c"))))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not serve.runtime.ListContainers(pb.ListContainersRequest()).containers
    # The same container name and attempt twice in a sandbox: ALREADY_EXISTS.
    create(serve, sid, config, "c", "true")
    with pytest.raises(grpc.RpcError) as e:
        create(serve, sid, config, "c", "true")
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert len(serve.runtime.ListContainers(pb.ListContainersRequest()).containers) == 1


def test_kill_9_daemon_then_restart(start, pb, layout, tmpdirs):
    """The daemon holds no state that is not on disk: pods run on without it, a new daemon
    lists them, exec works, and an exit that happened meanwhile is reported with its code."""
    d = start("--image-source", f"{REPO}={layout.path}")
    sid, config = run_sandbox(d)
    long = create(d, sid, config, "long", "sleep 600")
    short = create(d, sid, config, "short", "sleep 1; exit 7")
    for cid in (long, short):
        d.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    d.channel.close()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    time.sleep(1.5)  # "short" exits while no daemon runs
    d2 = start("--image-source", f"{REPO}={layout.path}", dirs=tmpdirs)
    assert [s.id for s in d2.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [sid]
    assert d2.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == pb.SANDBOX_READY
    assert wait_for(lambda: status(d2, short).state == pb.CONTAINER_EXITED)
    assert status(d2, short).exit_code == 7
    assert status(d2, long).state == pb.CONTAINER_RUNNING
    r = d2.runtime.ExecSync(pb.ExecSyncRequest(container_id=long, cmd=["echo", "still"], timeout=10))
    assert r.stdout == b"still\n"
    remove_all(d2)


def test_stats(serve, pb):
    sid, config = run_sandbox(serve)
    cid = create(serve, sid, config, "busy", "dd if=/dev/zero of=/tmp/f bs=1k count=300 2>/dev/null; while true; do :; done")
    idle = create(serve, sid, config, "idle", "sleep 600")
    for c in (cid, idle):
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=c))
    time.sleep(0.5)
    s = serve.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert s.attributes.id == cid and s.attributes.metadata.name == "busy" and s.attributes.labels == {"c": "busy"}
    assert s.cpu.usage_core_nano_seconds.value > 0 and abs(s.cpu.timestamp - time.time_ns()) < 10 * 10**9
    # The writable layer holds the 300 KiB file.
    assert wait_for(lambda: serve.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats.writable_layer.used_bytes.value >= 300 * 1024)
    time.sleep(0.3)
    again = serve.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert again.cpu.usage_core_nano_seconds.value > s.cpu.usage_core_nano_seconds.value
    assert again.cpu.usage_nano_cores.value > 100_000_000  # a busy loop: more than 0.1 of a core
    listed = serve.runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
    assert sorted(x.attributes.id for x in listed) == sorted([cid, idle])
    only = serve.runtime.ListContainerStats(pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(label_selector={"c": "idle"}))).stats
    assert [x.attributes.id for x in only] == [idle]
    ps = serve.runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
    assert ps.attributes.id == sid and ps.attributes.labels == {"app": "web"}
    assert ps.linux.cpu.usage_core_nano_seconds.value >= again.cpu.usage_core_nano_seconds.value
    assert ps.linux.process.process_count.value >= 3  # pause, the loop, sleep
    assert sorted(c.attributes.id for c in ps.linux.containers) == sorted([cid, idle])
    assert [x.attributes.id for x in serve.runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest()).stats] == [sid]
    with pytest.raises(grpc.RpcError) as e:
        serve.runtime.ContainerStats(pb.ContainerStatsRequest(container_id="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_husk_pods_shows_cri_sandboxes(serve, pb):
    from conftest import HUSK
    import json as jsonlib
    sid, config = run_sandbox(serve, name="seen")
    cid = create(serve, sid, config, "c", "sleep 60")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    roots = ["--root", os.path.join(serve.dirs, "root"), "--state", os.path.join(serve.dirs, "state"),
             "--log-dir", os.path.join(serve.dirs, "log")]
    out = subprocess.run([HUSK] + roots + ["pods"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if " seen " in line]
    assert len(row) == 1 and "1/1" in row[0] and "Ready (CRI)" in row[0] and sid in row[0], out.stdout
    doc = jsonlib.loads(subprocess.run([HUSK] + roots + ["pods", "-o", "json"], capture_output=True, text=True, timeout=30).stdout)
    pod = [i for i in doc["items"] if i["metadata"]["name"] == "seen"][0]
    assert pod["metadata"]["annotations"]["husk.io/cri-sandbox-id"] == sid
    assert pod["metadata"]["uid"] == config.metadata.uid
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["containerID"] == "husk://" + cid
    # husk gc leaves a live CRI sandbox alone.
    gc = subprocess.run([HUSK] + roots + ["gc"], capture_output=True, text=True, timeout=60)
    assert gc.returncode == 0, gc.stderr
    assert serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.state == pb.SANDBOX_READY


def test_security_context_checks(serve, pb, tmpdirs):
    """critest's security specs that once failed: a group without a user, an unknown profile
    path, and a privileged container, which ignores its seccomp profile (containerd)."""
    sid, config = run_sandbox(serve)
    sc = pb.LinuxContainerSecurityContext
    bad = [
        sc(run_as_group=pb.Int64Value(value=1002)),
        sc(seccomp_profile_path="/some/file.json"),
    ]
    for i, ctx in enumerate(bad):
        with pytest.raises(grpc.RpcError) as e:
            create(serve, sid, config, f"bad{i}", "true", linux=pb.LinuxContainerConfig(security_context=ctx))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ctx
    assert not serve.runtime.ListContainers(pb.ListContainersRequest()).containers
    profile = os.path.join(tmpdirs, "no-sethostname.json")
    with open(profile, "w") as f:
        f.write('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}')
    cid = create(serve, sid, config, "priv", "sleep 60", linux=pb.LinuxContainerConfig(
        security_context=sc(privileged=True, seccomp_profile_path="localhost/" + profile)))
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["hostname", "renamed"], timeout=10))
    assert r.exit_code == 0, r.stderr
    ok = create(serve, sid, config, "user", "id -u; id -g", linux=pb.LinuxContainerConfig(
        security_context=sc(run_as_user=pb.Int64Value(value=1002), run_as_group=pb.Int64Value(value=1003))))
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=ok))
    assert wait_for(lambda: status(serve, ok).state == pb.CONTAINER_EXITED)
    log = os.path.join(config.log_directory, "user/0.log")
    assert wait_for(lambda: " stdout F 1003\n" in open(log).read())
    assert " stdout F 1002\n" in open(log).read()


def test_cni_address_and_cleanup(serve, pb, tmpdirs):
    """A pod on a CNI bridge (ipMasq): it gets an address, and StopPodSandbox's CNI DEL runs
    while the pod's network namespace still exists, so the plugin's NAT rules go too."""
    import random
    import shutil as sh
    if not os.path.exists("/usr/lib/cni/bridge") or not sh.which("iptables"):
        pytest.skip("needs containernetworking-plugins and iptables (Scripts/install-deps.sh)")
    n = random.randint(10, 250)
    bridge = f"huskt{n}"
    os.makedirs(serve.cni, exist_ok=True)
    with open(os.path.join(serve.cni, "10-test.conflist"), "w") as f:
        f.write('{"cniVersion":"0.4.0","name":"husk-test-%d","plugins":[{"type":"bridge","bridge":"%s","isGateway":true,'
                '"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.213.%d.0/24","dataDir":"%s/ipam"}}]}'
                % (n, bridge, n, tmpdirs))
    try:
        sid, config = run_sandbox(serve)
        ip = serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
        assert ip.startswith(f"10.213.{n}."), ip
        lease = os.path.join(tmpdirs, "ipam", f"husk-test-{n}", ip)
        assert os.path.exists(lease), "host-local keeps the address as a file"
        nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert sid in nat, "the bridge plugin's masquerade rule names the sandbox"
        serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        # Released at stop: RemovePodSandbox does not run DEL again when the supervisor did.
        assert not os.path.exists(lease), "the address was not released at StopPodSandbox"
        assert serve.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip == ""
        nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert sid not in nat, "NAT rules of the pod left after StopPodSandbox"
        serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def test_bidirectional_mount_propagation(serve, pb, tmpdirs):
    """A Bidirectional volume (critest's rshared spec): a mount made inside the container
    appears on the host; HostToContainer sees the host's; the container's root stays apart."""
    shared = os.path.join(tmpdirs, "shared")
    os.makedirs(os.path.join(shared, "inside"))
    subprocess.run(["mount", "--bind", shared, shared], check=True)
    try:
        subprocess.run(["mount", "--make-shared", shared], check=True)
        sid, config = run_sandbox(serve)
        cid = create(serve, sid, config, "prop", "sleep 600", mounts=[pb.Mount(
            container_path="/vol", host_path=shared, propagation=pb.PROPAGATION_BIDIRECTIONAL)],
            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(privileged=True)))
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
        r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["mount", "-t", "tmpfs", "tmpfs", "/vol/inside"], timeout=10))
        assert r.exit_code == 0, r.stderr
        target = os.path.join(shared, "inside")
        assert wait_for(lambda: os.path.ismount(target), timeout=5), "the container's mount did not reach the host"
        subprocess.run(["umount", target], check=True)
        # The container's own mounts (its overlay root, /proc, /dev...) never reach the host;
        # the pod's /dev/shm is the sandbox's, mounted on the host by design.
        root = os.path.join(serve.dirs, "root") + "/"
        leaked = [line.split()[4] for line in open("/proc/self/mountinfo")
                  if line.split()[4].startswith(root) and not line.split()[4].endswith("/shm")]
        assert not leaked, leaked
        remove_all(serve)
    finally:
        subprocess.run(["umount", "-R", shared], capture_output=True)


def test_run_as_username(serve, pb):
    """§3 (critest "RunAsUserName"): run_as_username is looked up in the image's /etc/passwd
    (containerd's WithUser), over run_as_user; run_as_group goes with it; an unknown name
    fails and creates nothing."""
    sid, config = run_sandbox(serve)
    sc = pb.LinuxContainerSecurityContext
    cid = create(serve, sid, config, "named", "id -u; id -g", linux=pb.LinuxContainerConfig(
        security_context=sc(run_as_username="nobody", run_as_user=pb.Int64Value(value=5))))
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert wait_for(lambda: status(serve, cid).state == pb.CONTAINER_EXITED)
    log = open(os.path.join(config.log_directory, "named/0.log")).read()
    assert " stdout F 65534\n" in log and log.count(" stdout F 65534\n") == 2, log
    cid = create(serve, sid, config, "grouped", "id -g", linux=pb.LinuxContainerConfig(
        security_context=sc(run_as_username="nobody", run_as_group=pb.Int64Value(value=1234))))
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert wait_for(lambda: status(serve, cid).state == pb.CONTAINER_EXITED)
    assert " stdout F 1234\n" in open(os.path.join(config.log_directory, "grouped/0.log")).read()
    with pytest.raises(grpc.RpcError) as e:
        cid = create(serve, sid, config, "ghost", "true", linux=pb.LinuxContainerConfig(
            security_context=sc(run_as_username="no-such-user")))
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert "no-such-user" in e.value.details()


def test_container_events(serve, pb):
    """GetContainerEvents (kubelet's evented PLEG, containerd's generateAndSendContainerEvent):
    the sandbox and each container are CREATED, STARTED, STOPPED (an exit of its own too) and
    DELETED, with the sandbox's status and its containers' in every event."""
    import threading

    call = serve.runtime.GetContainerEvents(pb.GetEventsRequest())
    got = []

    def read():
        try:
            for e in call:
                got.append(e)
        except grpc.RpcError:
            pass  # the daemon's SIGTERM at the end of the test ends the stream

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the subscription's baseline is taken before anything happens
    sid, config = run_sandbox(serve)
    cid = create(serve, sid, config, "quick", "exit 3")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    E = pb.ContainerEventType
    assert wait_for(lambda: (cid, E.Value("CONTAINER_STOPPED_EVENT")) in [(e.container_id, e.container_event_type) for e in got])
    serve.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    names = ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT", "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"]
    want = [E.Value(n) for n in names]
    assert wait_for(lambda: [e.container_event_type for e in got if e.container_id == sid] == want), got
    assert [e.container_event_type for e in got if e.container_id == cid] == want
    stopped = next(e for e in got if e.container_id == cid and e.container_event_type == E.Value("CONTAINER_STOPPED_EVENT"))
    assert stopped.pod_sandbox_status.id == sid
    assert [(c.id, c.state, c.exit_code) for c in stopped.containers_statuses] == [(cid, pb.CONTAINER_EXITED, 3)]
    assert all(e.created_at > 0 for e in got)
    # The stream stays open: the daemon must still stop on SIGTERM (the fixture checks).


def test_stream_list_rpcs(serve, pb):
    """The Stream* RPCs: the List reply for the same filter, in messages of at most 100."""
    sid, config = run_sandbox(serve)
    ids = [create(serve, sid, config, f"c{i}", "true") for i in range(101)]
    parts = list(serve.runtime.StreamContainers(pb.StreamContainersRequest()))
    assert [len(p.containers) for p in parts] == [100, 1]
    assert sorted(c.id for p in parts for c in p.containers) == sorted(ids)
    listed = serve.runtime.ListContainers(pb.ListContainersRequest()).containers
    assert sorted(c.id for c in listed) == sorted(ids)
    one = list(serve.runtime.StreamContainers(pb.StreamContainersRequest(
        filter=pb.ContainerFilter(label_selector={"c": "c7"}))))
    assert [[c.id for c in p.containers] for p in one] == [[ids[7]]]
    pods = list(serve.runtime.StreamPodSandboxes(pb.StreamPodSandboxesRequest()))
    assert [[s.id for s in p.pod_sandboxes] for p in pods] == [[sid]]
    stats = list(serve.runtime.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest()))
    assert [[s.attributes.id for s in p.pod_sandbox_stats] for p in stats] == [[sid]]
    # Stats are of running containers (as containerd's).
    runner = create(serve, sid, config, "runner", "sleep 60")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=runner))
    cstats = list(serve.runtime.StreamContainerStats(pb.StreamContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=sid))))
    assert [[s.attributes.id for s in p.container_stats] for p in cstats] == [[runner]]


def test_no_zombies_in_the_daemon(serve, pb):
    """A sandbox's keeper is the daemon's child: once the sandbox is removed it must be reaped,
    not left a zombie of husk serve (3 sandboxes run and removed, then none)."""
    for i in range(3):
        sid, _ = run_sandbox(serve, name=f"z{i}")
        serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))

    def zombies():
        out = []
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = open(f"/proc/{p}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z" and int(fields[1]) == serve.proc.pid:
                out.append(p)
        return out

    assert wait_for(lambda: not zombies(), timeout=5), zombies()


def test_husk_cli_on_cri_pods(serve, pb):
    """The husk CLI next to crictl (issue: `husk pods/ps/logs/exec/inspect` on CRI pods): the
    commands that take a pod find husk serve's sandboxes by name too."""
    from conftest import HUSK
    import json as jsonlib
    sid, config = run_sandbox(serve, name="cli")
    cid = create(serve, sid, config, "talker", "echo one; echo two >&2; exec sleep 60")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    other = create(serve, sid, config, "idle", "true")
    roots = ["--root", os.path.join(serve.dirs, "root"), "--state", os.path.join(serve.dirs, "state"),
             "--log-dir", os.path.join(serve.dirs, "log")]

    def husk(*args, **kw):
        return subprocess.run([HUSK] + roots + list(args), capture_output=True, text=True, timeout=30, **kw)

    ps = husk("ps", "cli")
    assert ps.returncode == 0, ps.stderr
    assert cid[:13] in ps.stdout and "Running" in ps.stdout and "talker" in ps.stdout and other[:13] not in ps.stdout
    everything = husk("ps", "-a", "-o", "json")
    ids = {c["id"]: c for c in jsonlib.loads(everything.stdout)["containers"]}
    assert ids[other]["state"] == "CONTAINER_CREATED" and ids[cid]["podSandboxId"] == sid
    assert wait_for(lambda: husk("logs", "cli", "-c", "talker").stdout == "one\n")
    logs = husk("logs", "cli", "-c", "talker")
    assert logs.stderr.endswith("two\n"), logs.stderr
    ex = husk("exec", "cli", "-c", "talker", "--", "sh", "-c", "echo in-$HOSTNAME; exit 7")
    assert ex.returncode == 7 and ex.stdout == "in-cli\n", (ex.returncode, ex.stdout, ex.stderr)
    notrunning = husk("exec", "cli", "-c", "idle", "--", "true")
    assert notrunning.returncode == 1 and "not running" in notrunning.stderr
    doc = jsonlib.loads(husk("inspect", "cli").stdout)
    assert doc["metadata"]["annotations"]["husk.io/cri-sandbox-id"] == sid
    # By sandbox id prefix as well; an unknown name is still "not found".
    assert husk("inspect", sid[:12]).returncode == 0
    missing = husk("logs", "nosuch")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_devices(serve, pb, tmpdirs):
    """§3 devices (containerd's WithDevices): a host device node made at the container path,
    with the cgroup allowing it; a directory gives all its nodes; a path that is no device
    fails the create."""
    sid, config = run_sandbox(serve)
    # A directory of device nodes: one at its top, one in a subdirectory, a plain file left out.
    tree = os.path.join(tmpdirs, "devs")
    os.makedirs(os.path.join(tree, "sub"))
    # 240-254 are the majors for local use: no driver behind them here.
    os.mknod(os.path.join(tree, "zero"), 0o620 | 0o020000, os.makedev(240, 5))
    os.mknod(os.path.join(tree, "sub", "full"), 0o666 | 0o020000, os.makedev(240, 7))
    os.chmod(os.path.join(tree, "zero"), 0o620)
    os.chmod(os.path.join(tree, "sub", "full"), 0o666)
    open(os.path.join(tree, "plain"), "w").close()
    devices = [pb.Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rwm"),
               pb.Device(container_path="/dev/ours", host_path=tree, permissions="r")]
    cid = create(serve, sid, config, "dev", "sleep 60", devices=devices)
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(
        container_id=cid, cmd=["sh", "-c", "stat -c '%t %T %F' /dev/mynull && echo ok > /dev/mynull"], timeout=10))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"1 3 character special file\n", r.stdout
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=[
        "sh", "-c", "stat -c '%n %t %T %a' /dev/ours/zero /dev/ours/sub/full; test ! -e /dev/ours/plain"], timeout=10))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"/dev/ours/zero f0 5 620\n/dev/ours/sub/full f0 7 666\n", r.stdout
    # Their permission is "r": the cgroup's device filter refuses opening one for writing
    # (EPERM); reading passes the filter and finds no driver (ENXIO).
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo x > /dev/ours/zero"], timeout=10))
    assert r.exit_code != 0 and b"Operation not permitted" in r.stderr, (r.exit_code, r.stderr)
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "cat /dev/ours/zero"], timeout=10))
    assert r.exit_code != 0 and b"No such device" in r.stderr, (r.exit_code, r.stderr)
    with pytest.raises(grpc.RpcError) as e:
        create(serve, sid, config, "nodev", "true", devices=[pb.Device(container_path="/dev/x", host_path="/etc/hostname")])
    assert "not a device" in e.value.details()


def test_pid_namespace_target(serve, pb):
    """§3 pid TARGET (kubectl debug --target): the new container joins the target container's
    pid namespace and sees its processes; a target that does not run fails the create."""
    sid, config = run_sandbox(serve)
    own = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)))
    target = create(serve, sid, config, "app", "exec sleep 4242", linux=own)
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=target))
    ns = pb.NamespaceOption(pid=pb.TARGET, target_id=target)
    linux = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=ns))
    debug = create(serve, sid, config, "debug", "sleep 60", linux=linux)
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=debug))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=debug, cmd=["ps", "-o", "pid,args"], timeout=10))
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    # The target's process is pid 1 of the namespace they share.
    assert any(l.split(None, 1) == ["1", "sleep 4242"] for l in lines), lines
    # Without TARGET a container (pid CONTAINER) sees only its own.
    alone = create(serve, sid, config, "alone", "sleep 60", linux=own)
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=alone))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=alone, cmd=["ps", "-o", "args"], timeout=10))
    assert b"sleep 4242" not in r.stdout
    stopped = create(serve, sid, config, "stopped", "true")
    with pytest.raises(grpc.RpcError) as e:
        create(serve, sid, config, "bad", "true", linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
            namespace_options=pb.NamespaceOption(pid=pb.TARGET, target_id=stopped))))
    assert "not running" in e.value.details()


def test_user_namespace_pod(serve, pb):
    """KEP-127 over CRI: userns_options mode POD with kubelet's range makes the pod's own user
    namespace (pause's); containers join it; mounts with uid/gid mappings are idmapped; a
    container asking for another user namespace than its sandbox's is refused."""
    os.chmod(serve.dirs, 0o755)  # the pod's root walks down to its rootfs
    status = serve.runtime.Status(pb.StatusRequest())
    assert [h.features.user_namespaces for h in status.runtime_handlers] == [True]
    host = 1 << 30
    ids = [pb.IDMapping(host_id=host, container_id=0, length=65536)]
    userns = pb.UserNamespace(mode=pb.POD, uids=ids, gids=ids)
    sec = pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(userns_options=userns))
    sid, config = run_sandbox(serve, linux=pb.LinuxPodSandboxConfig(security_context=sec))
    vol = os.path.join(serve.dirs, "vol")
    os.mkdir(vol)
    with open(os.path.join(vol, "f"), "w") as f:
        f.write("x")
    ctx = pb.LinuxContainerSecurityContext(namespace_options=pb.NamespaceOption(userns_options=userns))
    mount = pb.Mount(container_path="/vol", host_path=vol, uidMappings=ids, gidMappings=ids)
    cid = create(serve, sid, config, "c", "sleep 60", linux=pb.LinuxContainerConfig(security_context=ctx), mounts=[mount])
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    r = serve.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=[
        "/bin/sh", "-c", "cat /proc/self/uid_map; id -u; stat -c %u /vol/f /bin/busybox; touch /vol/g"], timeout=10))
    assert r.exit_code == 0, r.stderr
    lines = [" ".join(l.split()) for l in r.stdout.decode().splitlines()]
    assert lines == [f"0 {host} 65536", "0", "0", "0"], lines
    assert os.stat(os.path.join(vol, "g")).st_uid == 0  # written through the idmapped mount
    st = serve.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True))
    pid = json.loads(st.info["info"])["pid"]
    with open(f"/proc/{pid}/status") as f:
        assert f"Uid:\t{host}\t" in f.read()
    # Another user namespace than the sandbox's: refused.
    other = pb.UserNamespace(mode=pb.NODE)
    bad = pb.LinuxContainerSecurityContext(namespace_options=pb.NamespaceOption(userns_options=other))
    with pytest.raises(grpc.RpcError) as e:
        create(serve, sid, config, "bad", "true", linux=pb.LinuxContainerConfig(security_context=bad))
    assert "user namespace config for sandbox is different from container's" in e.value.details()
    # Two ranges for one pod: refused naming the field.
    two = pb.UserNamespace(mode=pb.POD, uids=ids + ids, gids=ids)
    sec2 = pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(userns_options=two))
    with pytest.raises(grpc.RpcError) as e:
        run_sandbox(serve, name="two", linux=pb.LinuxPodSandboxConfig(security_context=sec2))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "userns_options" in e.value.details()


def test_metrics(serve, pb):
    """ListMetricDescriptors / ListPodSandboxMetrics (kubelet's /metrics/cadvisor with
    PodAndContainerStatsFromCRI): cAdvisor names, containerd 2.2's label keys, each metric's
    values as many as its descriptor's keys, figures from the container's cgroup."""
    descs = {d.name: d for d in serve.runtime.ListMetricDescriptors(pb.ListMetricDescriptorsRequest()).descriptors}
    for name in ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_usage_bytes",
                 "container_memory_rss", "container_processes", "container_network_receive_bytes_total"]:
        assert name in descs and descs[name].help, name
    assert list(descs["container_memory_rss"].label_keys) == ["pod", "namespace", "container", "id", "image"]
    assert list(descs["container_network_receive_bytes_total"].label_keys)[-1] == "interface"
    sid, config = run_sandbox(serve)
    cid = create(serve, sid, config, "busy", "head -c 50000000 /dev/zero | tail -c 1 >/dev/null; sleep 60")
    serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
    time.sleep(1)
    pods = serve.runtime.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest()).pod_metrics
    assert [p.pod_sandbox_id for p in pods] == [sid]
    [cm] = pods[0].container_metrics
    assert cm.container_id == cid
    got = {}
    for m in list(pods[0].metrics) + list(cm.metrics):
        assert m.name in descs, m.name
        assert len(m.label_values) == len(descs[m.name].label_keys), (m.name, m.label_values)
        assert abs(m.timestamp - time.time_ns()) < 60 * 10**9
        got.setdefault(m.name, []).append(m)
    cpu = got["container_cpu_usage_seconds_total"][0]
    assert cpu.metric_type == pb.COUNTER
    assert list(cpu.label_values) == ["web", "default", "busy", cid, "busybox:1.36"]
    assert got["container_processes"][0].value.value >= 1
    # Memory figures where the host gives cgroup v2 the memory controller (not on a hybrid host).
    mount = next(l.split()[4] for l in open("/proc/self/mountinfo") if " - cgroup2 " in l)
    if os.path.exists(os.path.join(mount, "husk", sid, "busy", "memory.current")):
        usage = got["container_memory_usage_bytes"][0]
        assert usage.metric_type == pb.GAUGE and usage.value.value > 0
        assert got["container_memory_working_set_bytes"][0].value.value <= usage.value.value
    else:
        assert "container_memory_usage_bytes" not in got
    assert abs(got["container_last_seen"][0].value.value - time.time()) < 60
    # Stream: the same sandboxes.
    streamed = [p.pod_sandbox_id for r in serve.runtime.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest()) for p in r.pod_sandbox_metrics]
    assert streamed == [sid]


def test_cgroup_parent(serve, pb):
    """§2 (containerd's cgroupfs path): a sandbox's cgroup_parent holds its group,
    `<parent>/<sandbox id>`, and the containers' groups below that; removing the sandbox removes
    its group and leaves the parent (kubelet's). A parent outside /husk and the allowed roots, a
    systemd slice, or an unclean path is INVALID_ARGUMENT, and nothing is made."""
    mount = next(l.split()[4] for l in open("/proc/self/mountinfo") if " - cgroup2 " in l)
    top = f"/husk/kubepods-test-{uuid.uuid4().hex[:8]}"
    parent = f"{top}/besteffort/pod{uuid.uuid4().hex[:8]}"
    os.makedirs(mount + parent)  # as kubelet makes its pod group before RunPodSandbox
    try:
        sid, config = run_sandbox(serve, linux=pb.LinuxPodSandboxConfig(cgroup_parent=parent))
        cid = create(serve, sid, config, "app", "sleep 300")
        serve.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
        pid = json.loads(serve.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=cid, verbose=True)).info["info"])["pid"]
        v2 = next(l for l in open(f"/proc/{pid}/cgroup").read().splitlines() if l.startswith("0::"))
        assert v2 == f"0::{parent}/{sid}/app"
        pod = mount + parent + "/" + sid
        assert os.path.isdir(pod + "/app") and os.path.isdir(pod + "/pause")
        assert open(pod + "/pause/cgroup.procs").read().strip()  # pause runs there
        # Stats come from the group under the parent.
        st = serve.runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
        assert st.linux.cpu.timestamp > 0
        serve.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        serve.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        assert not os.path.exists(mount + parent + "/" + sid)
        assert os.path.isdir(mount + parent)

        for bad, why in [("/elsewhere/pod1", "--allow-cgroup-parent"),
                         ("kubepods-besteffort-pod1.slice", "systemd slice"),
                         ("/husk/../elsewhere", "clean path"),
                         ("relative/pod1", "absolute")]:
            with pytest.raises(grpc.RpcError) as e:
                run_sandbox(serve, linux=pb.LinuxPodSandboxConfig(cgroup_parent=bad))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert "config.linux.cgroup_parent" in e.value.details() and why in e.value.details(), e.value.details()
        assert not serve.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
        assert not os.path.exists(mount + "/elsewhere")
    finally:
        remove_all(serve)
        for d in [parent, os.path.dirname(parent), top]:
            if os.path.isdir(mount + d):
                os.rmdir(mount + d)


def test_keepers_share_one_executable(serve, pb):
    """DESIGN §3 (per-pod memory): the daemon starts every sandbox's keeper from one sealed
    memfd, so the keepers' code pages are shared, not one copy per pod."""
    inodes = []
    for i in range(2):
        sid, _ = run_sandbox(serve, name=f"k{i}")
        pid = int(open(os.path.join(serve.dirs, "state", "pods", sid, "keeper.pid")).read())
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:husk-keeper")
        inodes.append(os.stat(f"/proc/{pid}/exe").st_ino)
    assert inodes[0] == inodes[1], inodes
