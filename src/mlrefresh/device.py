"""Turn `device.name` (auto, cpu, cuda, cuda:N) into a torch.device, or say why not.

Checked before any data is loaded, so `device=cuda` on a machine without CUDA stops at once.

Example:
    >>> from mlrefresh.device import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
"""

import torch

from mlrefresh.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available, else the CPU."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            raise ConfigError(
                f"device={name} but CUDA is not available here (torch {torch.__version__}, "
                f"{build}); use device=cpu or device=auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name} but this machine has {torch.cuda.device_count()} GPU(s); "
                "use device=cuda:0"
            )
        return device
    raise ConfigError(f"unknown device {name!r}; use device=auto, device=cpu or device=cuda")
