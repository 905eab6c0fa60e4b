"""The saved vector index of a memory folder, and the manifest that says what it reflects.

vectors.faiss  the FAISS index, as VectorIndex.save writes it.
vectors.json   IndexManifest: the settings the index was built with, how many vectors it
               holds, the store it reflects (the store's UUID, generation and a digest of
               its edits, so an index file from another memory, even one with as many
               edits, is never trusted), and the size and CRC-32 of vectors.faiss (so
               truncation or corruption is caught before faiss reads it).

The index is only a cache of the store: load_index_files raises IndexFileError whenever
the files cannot be trusted, and the caller rebuilds from the store.
"""

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from index.config import MemoryConfig
from index.errors import IndexFileError
from index.ivf_build import Approximation
from index.safe_files import write_bytes_atomically
from index.store import StoreState
from index.vectors import VectorIndex

INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "vectors.json"
_CHECKSUM_CHUNK_BYTES = 1 << 24
# Settings that shape the saved structure; ef_search and nprobe apply at search time.
# "auto" loads either structure it saves (exact, or IVF with its measurements).
_SETTINGS_FIXED_AT_BUILD = {"flat": (), "flat_l2": (), "hnsw": ("hnsw_m",), "ivf": ("ivf_nlist",), "auto": ()}


@dataclass(frozen=True)
class IndexManifest:
    build_settings: dict[str, Any]
    dim: int
    count: int
    store_generation: int
    store_uuid: str
    store_digest: str
    file_bytes: int
    file_crc32: int
    approximation: dict[str, Any] | None = None  # "auto": what its trained IVF index measured

    def reflects(self, state: StoreState) -> bool:
        return (self.store_uuid, self.store_generation, self.count, self.store_digest) == (
            state.store_uuid, state.generation, state.count, state.digest
        )


def build_settings(config: MemoryConfig) -> dict[str, Any]:
    """The index kind and the settings an index file was built with; a file built otherwise is rebuilt."""
    return {"index_kind": config.index_kind, **{name: getattr(config, name) for name in _SETTINGS_FIXED_AT_BUILD[config.index_kind]}}


def _file_fingerprint(path: Path) -> tuple[int, int]:
    """(size in bytes, CRC-32) of a file."""
    crc = 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHECKSUM_CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
    return path.stat().st_size, crc


def write_manifest(folder: Path, manifest: IndexManifest) -> None:
    """Write vectors.json atomically: a crash leaves the old manifest, which then no longer matches."""
    write_bytes_atomically(folder / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode())


def save_index_files(folder: Path, index: VectorIndex, state: StoreState) -> IndexManifest:
    """Write vectors.faiss, then the manifest describing it (`state`: the store it reflects)."""
    index.save(folder / INDEX_FILE)
    file_bytes, file_crc32 = _file_fingerprint(folder / INDEX_FILE)
    manifest = IndexManifest(
        build_settings=build_settings(index.config),
        dim=index.dim,
        count=len(index),
        store_generation=state.generation,
        store_uuid=state.store_uuid,
        store_digest=state.digest,
        file_bytes=file_bytes,
        file_crc32=file_crc32,
        approximation=index.approximation.as_dict() if index.approximation is not None else None,
    )
    write_manifest(folder, manifest)
    return manifest


def read_manifest(folder: Path) -> IndexManifest:
    """The manifest of the index file in `folder`; IndexFileError if it is missing or unreadable."""
    path = folder / MANIFEST_FILE
    try:
        return IndexManifest(**json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise IndexFileError(f"{path} is missing") from error
    except (OSError, ValueError, TypeError) as error:
        raise IndexFileError(f"{path} is not a valid index manifest: {error}") from error


def load_index_files(folder: Path, dim: int, config: MemoryConfig, state: StoreState) -> tuple[VectorIndex, IndexManifest]:
    """The saved index, if it is intact and reflects the store as it is now; IndexFileError otherwise."""
    manifest = read_manifest(folder)
    index_path = folder / INDEX_FILE
    if manifest.build_settings != build_settings(config):
        raise IndexFileError(f"{index_path} was built with {manifest.build_settings}; the config asks for {build_settings(config)}")
    if manifest.dim != dim:
        raise IndexFileError(f"{index_path} holds vectors of dim {manifest.dim}, not {dim}")
    if manifest.store_uuid != state.store_uuid:
        raise IndexFileError(f"{index_path} was written for another edit store (store {manifest.store_uuid}, not {state.store_uuid})")
    if not manifest.reflects(state):
        raise IndexFileError(
            f"{index_path} is stale: it reflects store generation {manifest.store_generation} with {manifest.count} edits; "
            f"the store is at generation {state.generation} with {state.count} edits"
        )
    try:
        fingerprint = _file_fingerprint(index_path)
    except FileNotFoundError as error:
        raise IndexFileError(f"{index_path} is missing") from error
    except OSError as error:
        raise IndexFileError(f"{index_path} cannot be read: {error.strerror}") from error
    if fingerprint != (manifest.file_bytes, manifest.file_crc32):
        raise IndexFileError(
            f"{index_path} is truncated or corrupt: {fingerprint[0]} bytes with CRC-32 {fingerprint[1]}, "
            f"expected {manifest.file_bytes} bytes with CRC-32 {manifest.file_crc32}"
        )
    try:
        approximation = Approximation(**manifest.approximation) if manifest.approximation is not None else None
    except TypeError as error:
        raise IndexFileError(f"{folder / MANIFEST_FILE} has unreadable index measurements: {error}") from error
    index = VectorIndex.load(index_path, dim, config, approximation)
    if len(index) != state.count:
        raise IndexFileError(f"{index_path} holds {len(index)} vectors; the store holds {state.count} edits")
    return index, manifest
