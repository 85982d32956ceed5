"""Where scores come from: the harness's version and commit, torch, the device, the time."""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import bench

if TYPE_CHECKING:
    import torch


def git_sha() -> str:
    """The commit of the harness's own checkout, ``+dirty`` with uncommitted changes; ``unknown`` if not a checkout."""
    root = Path(bench.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def threads_text(count: int) -> str:
    return f"{count} thread{'' if count == 1 else 's'}"


def blas_name() -> str:
    """The BLAS libraries loaded (numpy's and scipy's wheels each bring their own), their versions and threads,
    e.g. ``openblas 0.3.30 and 0.3.31, 2 threads``; sorted, so the same libraries give the same string."""
    from threadpoolctl import threadpool_info

    pools = sorted((pool["internal_api"], pool["version"] or "version unknown", pool["num_threads"])
                   for pool in threadpool_info() if pool["user_api"] == "blas")
    if not pools:
        return "BLAS not found"
    by_count: dict[int, dict[str, list[str]]] = {}
    for library, version, count in pools:
        versions = by_count.setdefault(count, {}).setdefault(library, [])
        if version not in versions:
            versions.append(version)
    return "; ".join(" and ".join(f"{library} {' and '.join(versions)}" for library, versions in libraries.items())
                     + f", {threads_text(count)}" for count, libraries in sorted(by_count.items()))


def device_name(device: torch.device) -> str:
    """The hardware and libraries that set a unit's arithmetic, as one short string; read inside the run's threads."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}; {blas_name()})"
    # The kernel family (the vector instructions torch dispatches to) and the thread counts of torch and of the
    # BLAS that numpy, scipy and scikit-learn call change the floating-point sums, so scores reproduce bit for bit
    # only where all of them are the same.
    return (f"cpu ({platform.processor() or platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, "
            f"{threads_text(torch.get_num_threads())}; {blas_name()})")


def provenance(device: torch.device, config_hash: str, code: str) -> dict[str, str]:
    """Where a unit's scores come from; stored in its score table. ``code`` is the git SHA read when the run began."""
    import torch

    return {
        "bench_version": bench.__version__,
        "git_sha": code,
        "config_hash": config_hash,
        "torch_version": torch.__version__,
        "device": device_name(device),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
