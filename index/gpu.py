"""Optional GPU copies of exact (flat) FAISS indexes, used for search only."""

from functools import cache

import faiss


def gpu_search_available() -> bool:
    """True when faiss was built with GPU support and torch sees a CUDA device."""
    if not hasattr(faiss, "StandardGpuResources"):
        return False
    # Imported here: torch is slow to import and only matters for a GPU build of faiss.
    import torch

    return torch.cuda.is_available()


@cache
def _gpu_resources() -> "faiss.StandardGpuResources":  # quoted: only GPU builds of faiss have it
    # One set of resources (streams, scratch memory) for the whole process.
    return faiss.StandardGpuResources()


def copy_to_gpu(index: faiss.Index) -> faiss.Index:
    """A GPU copy of a CPU index, for search; the CPU index stays the one that is changed and saved."""
    return faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
