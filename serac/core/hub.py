"""The project's side of the Hugging Face hub: where downloaded and converted files are kept,
and whether the hub can be reached at all (so a missing model or data set fails in seconds,
not after minutes of retries)."""

import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

_HUB_TIMEOUT_SECONDS = 2.0


def cache_dir() -> Path:
    """Where converted models, layer statistics and loaded data sets are kept: `SERAC_CACHE`, else ~/.cache/serac."""
    return Path(os.environ.get("SERAC_CACHE") or Path.home() / ".cache" / "serac")


def _offline() -> bool:
    return any(os.environ.get(flag, "").strip().lower() in ("1", "true", "yes", "on") for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (None: it can), found with one connection attempt."""
    if _offline():
        return "offline (HF_HUB_OFFLINE is set)"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=_HUB_TIMEOUT_SECONDS).close()
    except OSError as error:
        return f"unreachable ({endpoint.hostname}: {error})"
    return None
