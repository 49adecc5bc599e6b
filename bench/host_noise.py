"""How much of each CPU the host takes from a process that only wants to run: the noise a c=1 tail is made of.

One process pinned to each CPU spins for ``seconds``, reading the clock; a gap between two readings over 0.1 ms is
time something else ran there (another process, a kernel thread, the hypervisor). Meanwhile every thread's CPU
time is read from /proc (``schedstat``), so the report names who ran. A request at c=1 that such a gap falls in is
slower by the gap: a gap over 1 ms a few times a second, on either CPU, is ~1% of 2.5 ms requests.

    .venv/bin/python bench/host_noise.py [SECONDS]      # bench/run.py writes the same figures into its notes
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass

GAP_NS = 100_000  # a gap shorter than this is the loop itself (and the clock's own cost)


@dataclass(frozen=True)
class CpuNoise:
    cpu: int
    lost_percent: float  # of the time spent in gaps over 0.1 ms
    gaps_over_1ms: int
    gaps_over_5ms: int
    longest_ms: float


@dataclass(frozen=True)
class HostNoise:
    seconds: float
    load_average: tuple[float, float, float]
    cpus: list[CpuNoise]
    busiest: list[tuple[str, float, int]]  # (thread's name, its CPU ms, its time slices), the probe's own left out


def _spin(cpu: int, seconds: float, out) -> None:
    os.sched_setaffinity(0, {cpu})
    clock = time.perf_counter_ns
    start = last = clock()
    end = start + int(seconds * 1e9)
    lost = over_1 = over_5 = longest = 0
    while last < end:
        now = clock()
        gap = now - last
        if gap > GAP_NS:
            lost += gap
            over_1 += gap > 1_000_000
            over_5 += gap > 5_000_000
            longest = max(longest, gap)
        last = now
    out.put(CpuNoise(cpu, round(100 * lost / (last - start), 2), over_1, over_5, round(longest / 1e6, 1)))


def _threads() -> dict[tuple[str, str], tuple[str, int, int]]:
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as stat, open(f"/proc/{pid}/task/{tid}/comm") as comm:
                    ran, _, slices = stat.read().split()
                    found[(pid, tid)] = (comm.read().strip(), int(ran), int(slices))
        except OSError:  # ended while read
            continue
    return found


def measure(seconds: float = 5.0, top: int = 5) -> HostNoise:
    load = os.getloadavg()
    before = _threads()
    results = multiprocessing.get_context("fork").Queue()
    spinners = [multiprocessing.get_context("fork").Process(target=_spin, args=(cpu, seconds, results))
                for cpu in sorted(os.sched_getaffinity(0))]
    for spinner in spinners:
        spinner.start()
    cpus = sorted((results.get(timeout=seconds + 30) for _ in spinners), key=lambda noise: noise.cpu)
    after = _threads()
    for spinner in spinners:
        spinner.join()
    own = {str(spinner.pid) for spinner in spinners} | {str(os.getpid())}
    busiest = sorted(
        ((name, (ran - before[key][1]) / 1e6, slices - before[key][2])
         for key, (name, ran, slices) in after.items() if key in before and key[0] not in own),
        key=lambda row: -row[1])[:top]
    return HostNoise(seconds, load, cpus, [(name, round(ms, 1), slices) for name, ms, slices in busiest])


def describe(noise: HostNoise, when: str) -> str:
    cpus = "; ".join(f"CPU {cpu.cpu}: {cpu.lost_percent}% lost, {cpu.gaps_over_1ms} gaps > 1 ms, "
                     f"{cpu.gaps_over_5ms} > 5 ms, longest {cpu.longest_ms} ms" for cpu in noise.cpus)
    who = ", ".join(f"{name} {ms} ms in {slices} slices" for name, ms, slices in noise.busiest)
    load = ", ".join(f"{value:.2f}" for value in noise.load_average)
    return (f"host {when}: load average {load}; {noise.seconds:g} s spinning on each CPU: {cpus}. "
            f"Who else ran: {who}")


if __name__ == "__main__":
    print(describe(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0), "now"))
