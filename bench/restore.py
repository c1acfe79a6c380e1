#!/usr/bin/env python3
"""restore.py BINARY: how fast the master replaces a SIGKILLed worker, per class.

builtin:hello -w 2 on 127.0.0.1 (port 0 picked, then passed), ten SIGKILLs to
a worker 1.3 s apart (a worker that dies within 1 s of boot counts as a fast
death and is respawned with back-off), each timed from the kill until the
master has two live children again (polled from /proc), then 20 requests.
Issue 14 closing note figures; run as: taskset -c 0 python3 bench/restore.py
target/release/runicorn.
"""
import os, signal, socket, subprocess, sys, time
BIN = sys.argv[1]
def children(pid):
    out = set()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            out |= {int(x) for x in open(f"/proc/{pid}/task/{t}/children").read().split()}
        except FileNotFoundError:
            pass
    return out
def get(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    d = s.recv(100); s.close(); return d.startswith(b"HTTP/1.1 200")
for cls in ["sync", "gthread", "green", "async"]:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    p = subprocess.Popen([BIN, "-w", "2", "-k", cls, "-b", f"127.0.0.1:{port}", "builtin:hello"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while len(children(p.pid)) < 2 or not get(port):
            time.sleep(0.01)
        time.sleep(1.3)
        times = []
        for i in range(10):
            before = children(p.pid)
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            t = time.perf_counter()
            while True:
                now = children(p.pid)
                if victim not in now and len(now) == 2:
                    break
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(1.3)
        ok = sum(get(port) for _ in range(20))
        times.sort()
        print(f"{cls}: respawn after SIGKILL, 10 kills: median {times[5]:.1f} ms, max {times[-1]:.1f} ms; 20/20 requests after: {ok}")
    finally:
        p.send_signal(signal.SIGTERM); p.wait(timeout=20)
