"""PyTorch Gloo all-reduce on loopback: the baseline for `cargo bench --bench all_reduce`.

    python3 worker/benches/gloo_all_reduce.py [--worlds 2,4] [--mib 1,5.5,16,64] [--iterations 5]

Prints the same table as the Rust benchmark: median time, algorithm bandwidth and bus
bandwidth (algbw * 2(n-1)/n) of `torch.distributed.all_reduce` (sum) over float32 vectors,
one process per rank on 127.0.0.1. Needs `pip install torch`.
"""

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world, port, values, iterations, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    tensor = torch.full((values,), float(rank), dtype=torch.float32)
    dist.all_reduce(tensor)  # warm-up: connects the ranks
    times = []
    for _ in range(iterations):
        tensor.fill_(float(rank))
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(tensor)
        times.append(time.perf_counter() - started)
    expected = world * (world - 1) / 2
    assert abs(tensor[0].item() - expected) < 1e-3, "wrong sum"
    if rank == 0:
        results.put(statistics.median(times))
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worlds", default="2,4")
    parser.add_argument("--mib", default="1,5.5,16,64")
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__} gloo all-reduce on loopback, median of {args.iterations}")
    print("| workers | size (MiB) | median (ms) | algbw (GB/s) | busbw (GB/s) |")
    print("|---|---|---|---|---|")
    ctx = mp.get_context("spawn")
    for world in [int(w) for w in args.worlds.split(",")]:
        for mib in [float(m) for m in args.mib.split(",")]:
            values = int(mib * 1024 * 1024 / 4)
            results = ctx.Queue()
            port = free_port()
            procs = [ctx.Process(target=rank_main, args=(r, world, port, values, args.iterations, results))
                     for r in range(world)]
            for p in procs:
                p.start()
            median = results.get(timeout=600)
            for p in procs:
                p.join(timeout=60)
            algbw = values * 4 / median / 1e9
            busbw = algbw * 2 * (world - 1) / world
            print(f"| {world} | {mib:g} | {median * 1e3:.1f} | {algbw:.2f} | {busbw:.2f} |", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    main()
