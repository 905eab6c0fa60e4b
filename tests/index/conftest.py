"""Fixtures shared by the edit memory tests: small random unit vectors and memory folders.

Helpers are fixtures rather than importable functions: tests/ folders have no
__init__.py, so `import conftest` could pick up another folder's conftest.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from index import EditMemory, MemoryConfig

DIM = 16


@pytest.fixture(autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """These indexes are tiny: OpenMP threads only add waiting, badly so on a busy machine."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture
def unit_vectors() -> Callable[..., np.ndarray]:
    """unit_vectors(count, seed=0, dim=16): random float32 rows of norm 1."""

    def make(count: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
        vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return make


@pytest.fixture
def memory_path(tmp_path: Path) -> Path:
    return tmp_path / "memory"


@pytest.fixture
def open_memory(memory_path: Path) -> Iterator[Callable[..., EditMemory]]:
    """open_memory(config=MemoryConfig(), dim=16, encoder="test-encoder") opens (or reopens)
    the test memory; every memory opened through it is closed at teardown."""
    opened: list[EditMemory] = []

    def open_(config: MemoryConfig = MemoryConfig(), dim: int = DIM, encoder: str = "test-encoder") -> EditMemory:
        memory = EditMemory(memory_path, dim, encoder, config)
        opened.append(memory)
        return memory

    yield open_
    for memory in opened:
        memory.close()


@pytest.fixture
def add_numbered() -> Callable[[EditMemory, np.ndarray], list[int]]:
    """add_numbered(memory, vectors): one edit per vector, prompt "prompt i", target "target i"."""

    def add(memory: EditMemory, vectors: np.ndarray) -> list[int]:
        count = len(vectors)
        return memory.add_many([f"prompt {i}" for i in range(count)], [f"target {i}" for i in range(count)], vectors)

    return add
