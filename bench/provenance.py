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


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    # The kernel family (the vector instructions torch dispatches to) and the thread count change the
    # floating-point sums, so scores reproduce bit for bit only where both are the same.
    return (f"cpu ({platform.processor() or platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} thread{'' if torch.get_num_threads() == 1 else 's'})")


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
