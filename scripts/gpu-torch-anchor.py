"""PyTorch CUDA anchor for the GPU check: InfoNCE forward + backward at B = 65,536, d = 768
(float32, TF32 off, as densevec computes), median of a few runs, written as JSON.

    python3 scripts/gpu-torch-anchor.py OUT.json

Run by scripts/gpu-check.sh when `import torch` works and torch sees a GPU; otherwise the GPU
check records that the anchor was not available.
"""
import json
import sys
import time

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def info_nce(q, k, tau):
    qn = torch.nn.functional.normalize(q, dim=1)
    kn = torch.nn.functional.normalize(k, dim=1)
    logits = qn @ kn.T / tau
    labels = torch.arange(q.shape[0], device=q.device)
    return torch.nn.functional.cross_entropy(logits, labels)


def median_ms(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "gpu-torch.json"
    rows = []
    dev = torch.device("cuda")
    for b, d in [(4096, 768), (65536, 768)]:
        g = torch.Generator(device="cpu").manual_seed(7)
        qh = torch.randn(b, d, generator=g)
        kh = torch.randn(b, d, generator=g)

        def device_only():
            q = qd.detach().requires_grad_(True)
            k = kd.detach().requires_grad_(True)
            info_nce(q, k, 0.07).backward()

        def end_to_end():
            q = qh.to(dev).requires_grad_(True)
            k = kh.to(dev).requires_grad_(True)
            info_nce(q, k, 0.07).backward()
            q.grad.cpu()
            k.grad.cpu()

        qd, kd = qh.to(dev), kh.to(dev)
        reps = 3 if b > 10000 else 10
        row = {
            "row": "PyTorch CUDA infoNCE fwd+bwd",
            "shape": [b, d],
            "deviceMs": median_ms(device_only, reps),
            "endToEndMs": median_ms(end_to_end, reps),
            "peakMiB": torch.cuda.max_memory_allocated() / 2**20,
        }
        print(f"torch infoNCE B={b} d={d}: device {row['deviceMs']:.1f} ms, end to end {row['endToEndMs']:.1f} ms")
        rows.append(row)
        del qd, kd
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with open(out, "w") as f:
        json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
