"""Run-time device choice: CUDA when present, else CPU; `SERAC_DEVICE` overrides."""

import os

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    choice = preferred or os.environ.get("SERAC_DEVICE") or "auto"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was requested but CUDA is not available on this machine")
    return device
