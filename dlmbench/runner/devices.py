"""``--device`` checked against this torch build before any work (a user mistake: exit 2, one line).

Accepted: ``cpu``; ``cuda`` / ``cuda:N`` when this build has CUDA and sees device N; ``mps`` on a build with
Metal. Jobs sent to other machines (``--backend slurm|ray``) are not checked here: the submitting node often
has no GPU while the workers do; their workers fail the job with the same message instead.
"""

from __future__ import annotations

import re

from dlmbench.errors import BadSpec

_FORM = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def check_device(device: str) -> str:
    """Return ``device`` if this torch build can use it, else raise :class:`~dlmbench.errors.BadSpec`."""
    m = _FORM.match(str(device))
    if not m:
        raise BadSpec(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or mps")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise BadSpec(f"--device {device}: there is one CPU device; use --device cpu")
        return device
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"a CUDA {torch.version.cuda} build that sees no GPU"
            raise BadSpec(f"--device {device}: torch {torch.__version__} is {build}; use --device cpu, "
                          f"or install a CUDA build of torch on a machine with a GPU")
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise BadSpec(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return device
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise BadSpec(f"--device {device}: this torch build has no Metal (MPS) support here; use --device cpu")
    return device
