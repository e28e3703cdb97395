#!/usr/bin/env python3
"""The CRI benchmark's client (Scripts/bench-cri.sh): one persistent gRPC connection per
runtime (Python grpcio, stubs made from Sources/HuskCRI/Proto/api.proto), the same requests to
each, the runtimes alternating in every round so that both see the same machine.

    cri-bench.py PROTO RUNS 'NAME|DAEMON-PID|unix:///sock|LOGDIR|IMAGE|PROCESSES' ...  (the first is the reference)
    cri-bench.py PROTO --cleanup 'NAME|DAEMON-PID|unix:///sock|LOGDIR|IMAGE|PROCESSES' ...

PROCESSES is a regular expression for the command lines of the runtime's per-pod processes.

Measured (milliseconds, medians over RUNS rounds; the first round is a warm-up, not counted):
  start-1      RunPodSandbox + CreateContainer + StartContainer (busybox `sleep`)
  exec-true    ExecSync `true` in that container
  stop-rm-1    StopPodSandbox + RemovePodSandbox of that pod
  start-10     RunPodSandbox + 10 x (CreateContainer + StartContainer)
  stop-rm-10   StopPodSandbox + RemovePodSandbox of that pod
  list-100     ListContainers with 100 containers (created, in one pod)
Then, one runtime at a time: 30 pods of 1 container each; the PSS of the processes the pods
added whose command line matches the runtime's PROCESSES (shims and pause; supervisors,
keepers and pause), per pod; and the daemon's RSS idle and with the 30 pods.
"""

import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid


def stubs(proto):
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="husk-cri-bench-")
    d, f = os.path.split(os.path.abspath(proto))
    if protoc.main(["protoc", f"-I{d}", f"--python_out={out}", f"--grpc_python_out={out}", f]) != 0:
        sys.exit("cri-bench: protoc failed on " + proto)
    sys.path.insert(0, out)
    import api_pb2
    import api_pb2_grpc
    # Loaded: the generated files are not needed any more (nothing of the run is left in /tmp).
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)
    return api_pb2, api_pb2_grpc


class Runtime:
    def __init__(self, pb, grpcmod, spec):
        import grpc

        self.name, pid, addr, self.logdir, self.image, processes = spec.split("|", 5)
        self.pid = int(pid)
        self.processes = re.compile(processes)
        self.pb = pb
        self.channel = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 16 << 20)])
        self.rt = grpcmod.RuntimeServiceStub(self.channel)
        self.img = grpcmod.ImageServiceStub(self.channel)

    def sandbox_config(self, name):
        pb = self.pb
        uid = str(uuid.uuid4())
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace="bench", uid=uid, attempt=0), hostname=name,
            log_directory=os.path.join(self.logdir, f"bench_{name}_{uid}"),
            linux=pb.LinuxPodSandboxConfig(cgroup_parent="/husk-bench-cri"))

    def container_config(self, name, command):
        pb = self.pb
        return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name, attempt=0), image=pb.ImageSpec(image=self.image),
                                  command=command, log_path=f"{name}.log", linux=pb.LinuxContainerConfig())

    def run_pod(self, name, count, start=True, command=("sleep", "100000")):
        pb = self.pb
        sc = self.sandbox_config(name)
        sid = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=sc), timeout=60).pod_sandbox_id
        cids = []
        for i in range(count):
            cid = self.rt.CreateContainer(pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=self.container_config(f"c{i}", list(command)), sandbox_config=sc), timeout=60).container_id
            if start:
                self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
            cids.append(cid)
        return sid, cids

    def remove_pod(self, sid):
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)

    def cleanup(self):
        for s in self.rt.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=60).items:
            if s.metadata.namespace == "bench":
                self.remove_pod(s.id)


def timed(f):
    t = time.perf_counter()
    r = f()
    return (time.perf_counter() - t) * 1000, r


def pids():
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def kb(pid, field, path="smaps_rollup"):
    try:
        for line in open(f"/proc/{pid}/{path}"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    proto, runs_arg, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    pb, grpcmod = stubs(proto)
    rts = [Runtime(pb, grpcmod, s) for s in specs]
    if runs_arg == "--cleanup":
        for r in rts:
            try:
                r.cleanup()
            except Exception as e:  # noqa: BLE001 - cleanup goes on with the next runtime
                print(f"cri-bench: cleanup of {r.name}: {e}", file=sys.stderr)
        return
    runs = int(runs_arg)
    for r in rts:
        # containerd's PullImage always asks the registry: its image was imported instead.
        if not r.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=r.image)), timeout=60).image.id:
            r.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=r.image)), timeout=120)
        r.cleanup()
    results = {r.name: {k: [] for k in ("start-1", "exec-true", "stop-rm-1", "start-10", "stop-rm-10", "list-100")} for r in rts}
    listed = {r.name: r.run_pod("list", 100, start=False) for r in rts}
    for i in range(runs + 1):
        order = rts if i % 2 == 0 else list(reversed(rts))
        for r in order:
            res = results[r.name]
            ms, (sid, cids) = timed(lambda: r.run_pod(f"p{i}", 1))
            e, out = timed(lambda: r.rt.ExecSync(pb.ExecSyncRequest(container_id=cids[0], cmd=["true"], timeout=10), timeout=30))
            assert out.exit_code == 0
            s, _ = timed(lambda: r.remove_pod(sid))
            ms10, (sid10, _) = timed(lambda: r.run_pod(f"q{i}", 10))
            s10, _ = timed(lambda: r.remove_pod(sid10))
            l, got = timed(lambda: r.rt.ListContainers(pb.ListContainersRequest(), timeout=30))
            assert len(got.containers) >= 100
            if i > 0:
                for k, v in (("start-1", ms), ("exec-true", e), ("stop-rm-1", s), ("start-10", ms10), ("stop-rm-10", s10), ("list-100", l)):
                    res[k].append(v)
    for r in rts:
        r.remove_pod(listed[r.name][0])

    # Memory: one runtime at a time, 30 pods each.
    mem = {}
    for r in rts:
        idle = kb(r.pid, "VmRSS", "status")
        before = pids()
        command = ("sleep", "100001")
        pods = [r.run_pod(f"m{i}", 1, command=command)[0] for i in range(30)]
        time.sleep(3)
        new = [p for p in pids() - before if r.processes.search(cmdline(p))]
        pss = sum(kb(p, "Pss") for p in new)
        rss = sum(kb(p, "Rss") for p in new)
        busy = kb(r.pid, "VmRSS", "status")
        kinds = sorted({cmdline(p).split(" ")[0].rsplit("/", 1)[-1] or "?" for p in new})
        mem[r.name] = (pss / 30, rss / 30, idle, busy, len(new), kinds)
        for sid in pods:
            r.remove_pod(sid)

    ref = rts[0].name
    print(f"{'measure (ms, median)':<22}" + "".join(f"{r.name:>14}" for r in rts) + "".join(f"{r.name + '/' + ref:>18}" for r in rts[1:]))
    for k in results[ref]:
        med = {r.name: statistics.median(results[r.name][k]) for r in rts}
        print(f"{k:<22}" + "".join(f"{med[r.name]:>14.1f}" for r in rts) + "".join(f"{med[r.name] / med[ref]:>17.2f}x" for r in rts[1:]))
    print(f"\n{runs} rounds, runtimes alternating; first round not counted.")
    print(f"\n{'memory (30 pods)':<22}" + "".join(f"{r.name:>14}" for r in rts) + "".join(f"{r.name + '/' + ref:>18}" for r in rts[1:]))
    rows = [("PSS per pod, KB", 0), ("RSS per pod, KB", 1), ("daemon RSS idle, KB", 2), ("daemon RSS 30 pods, KB", 3)]
    for label, j in rows:
        print(f"{label:<22}" + "".join(f"{mem[r.name][j]:>14.0f}" for r in rts)
              + "".join(f"{(mem[r.name][j] / mem[ref][j] if mem[ref][j] else 0):>17.2f}x" for r in rts[1:]))
    for r in rts:
        print(f"{r.name}: {mem[r.name][4]} processes for 30 pods: {', '.join(mem[r.name][5])}")


if __name__ == "__main__":
    main()
