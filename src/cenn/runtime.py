"""Process-wide settings that make the CPU code paths fast, the check of a requested device, and the
precision networks run in on it.

The simulator and the network allocate and free large float buffers (tens to hundreds of MB)
at every batch. glibc serves allocations above its mmap threshold with fresh ``mmap`` pages,
which the kernel zero-fills on first touch: on a 2-core machine this page-faulting cost more
than the FFTs themselves (measured: 15 → 170 patches/s for CMB + dust at batch 64). Keeping
large blocks on the heap and not trimming it removes that cost, at the price of the process
holding on to its peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Largest value glibc accepts for both (a C int).
_NEVER = 2**31 - 1

_tuned = False


def tune_cpu_allocator() -> bool:
    """Serve large allocations from the reusable heap instead of fresh mmap pages (glibc only).

    Idempotent. Does nothing, and returns False, on other C libraries or when the environment
    variable ``CENN_NO_MALLOC_TUNING`` is set; returns True once the setting is in force.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("CENN_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _NEVER)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
    return _tuned


#: The Lightning accelerators ``cenn train`` accepts, and the torch devices the other commands accept.
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")
DEVICES = ("cpu", "cuda", "mps")


def check_device(name: str, option: str, accelerator: bool = False) -> None:
    """Refuse, before any work, a device this machine lacks: ``cuda`` or ``gpu`` (``cuda:N``) without
    a usable CUDA GPU (or with fewer), ``mps`` without Apple's GPU, or an unknown name. ``name`` is a
    torch device, or a Lightning accelerator when ``accelerator``; ``option`` names the setting in
    the message (``--device``, ``--accelerator``)."""
    import torch

    kind, _, index = name.lower().partition(":")
    known = ACCELERATORS if accelerator else DEVICES
    if kind not in known or (index and (accelerator or not index.isdigit())):
        raise ValueError(f"{option} {name}: unknown; use one of {', '.join(known)}")
    if kind in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ValueError(f"{option} {name}: no CUDA GPU is available on this machine "
                         f"(torch.cuda.is_available() is False): use {option} cpu")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         f"numbered from 0: use {option} cuda:0, or {option} cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{option} {name}: Apple's GPU (mps) is not available on this machine: "
                         f"use {option} cpu")


def checked_device(device: object, option: str = "device") -> torch.device:
    """``device`` (a name or a ``torch.device``) as a ``torch.device``, refused as :func:`check_device`
    says (a ``ValueError`` naming ``option`` and the fix) when this machine lacks it or it is unknown."""
    import torch

    if not isinstance(device, str | torch.device):
        raise ValueError(f"{option} must be a device name such as 'cpu' or 'cuda', got {device!r}")
    check_device(str(device), option)
    return torch.device(device)


#: Precisions a network runs in: ``auto`` (:func:`resolve_precision`), ``32`` (float32) or ``bf16``
#: (bfloat16 autocast; the output is float32 either way).
PRECISIONS = ("auto", "32", "bf16")
#: The precision of inference when none is asked for.
DEFAULT_PRECISION = "auto"
#: torch's checks of the CPU's bfloat16 units (AVX-512 BF16, AMX tiles), functions of ``torch.cpu``.
BF16_CHECKS = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def bf16_fast(device: object) -> bool:
    """Whether bfloat16 autocast speeds up inference on ``device``: a CPU device on a CPU with
    AVX-512 BF16 or AMX tiles (by torch's own checks, :data:`BF16_CHECKS`; a torch without them
    counts as neither). False on every
    other device: CUDA and MPS keep float32 unless bf16 is asked for."""
    import torch

    if torch.device(device).type != "cpu":
        return False
    return any(getattr(torch.cpu, name, lambda: False)() for name in BF16_CHECKS)


def resolve_precision(precision: str, device: object) -> str:
    """``precision`` (one of :data:`PRECISIONS`) as the one a network runs in on ``device``: ``auto``
    is ``bf16`` where :func:`bf16_fast` says bfloat16 is fast there, else ``32``; ``32`` and ``bf16``
    are kept. Raises ``ValueError`` for any other value."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if bf16_fast(device) else "32"
