"""The saved vector index of a memory folder, and the manifest that says what it reflects.

vectors.faiss  the FAISS index, as VectorIndex.save writes it.
vectors.json   IndexManifest: the settings the index was built with, how many vectors it
               holds, the store generation it reflects, and the size and CRC-32 of
               vectors.faiss (so truncation or corruption is caught before faiss reads it).

The index is only a cache of the store: load_index_files raises IndexFileError whenever
the files cannot be trusted, and the caller rebuilds from the store.
"""

import json
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from index.config import MemoryConfig
from index.errors import IndexFileError
from index.vectors import VectorIndex

INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "vectors.json"
_CHECKSUM_CHUNK_BYTES = 1 << 24
# Settings that shape the saved structure; ef_search and nprobe apply at search time.
_SETTINGS_FIXED_AT_BUILD = {"flat": (), "flat_l2": (), "hnsw": ("hnsw_m",), "ivf": ("ivf_nlist",)}


@dataclass(frozen=True)
class IndexManifest:
    build_settings: dict[str, Any]
    dim: int
    count: int
    store_generation: int
    file_bytes: int
    file_crc32: int


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
    partial = folder / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps(asdict(manifest), indent=2))
    os.replace(partial, folder / MANIFEST_FILE)


def save_index_files(folder: Path, index: VectorIndex, store_generation: int) -> IndexManifest:
    """Write vectors.faiss, then the manifest describing it."""
    index.save(folder / INDEX_FILE)
    file_bytes, file_crc32 = _file_fingerprint(folder / INDEX_FILE)
    manifest = IndexManifest(
        build_settings=build_settings(index.config),
        dim=index.dim,
        count=len(index),
        store_generation=store_generation,
        file_bytes=file_bytes,
        file_crc32=file_crc32,
    )
    write_manifest(folder, manifest)
    return manifest


def _read_manifest(folder: Path) -> IndexManifest:
    path = folder / MANIFEST_FILE
    try:
        return IndexManifest(**json.loads(path.read_text()))
    except FileNotFoundError as error:
        raise IndexFileError(f"{path} is missing") from error
    except (ValueError, TypeError) as error:
        raise IndexFileError(f"{path} is not a valid index manifest: {error}") from error


def load_index_files(
    folder: Path, dim: int, config: MemoryConfig, store_generation: int, store_count: int
) -> tuple[VectorIndex, IndexManifest]:
    """The saved index, if it is intact and reflects the store as it is now; IndexFileError otherwise."""
    manifest = _read_manifest(folder)
    index_path = folder / INDEX_FILE
    if manifest.build_settings != build_settings(config):
        raise IndexFileError(f"{index_path} was built with {manifest.build_settings}; the config asks for {build_settings(config)}")
    if manifest.dim != dim:
        raise IndexFileError(f"{index_path} holds vectors of dim {manifest.dim}, not {dim}")
    if manifest.store_generation != store_generation or manifest.count != store_count:
        raise IndexFileError(
            f"{index_path} is stale: it reflects store generation {manifest.store_generation} with {manifest.count} edits; "
            f"the store is at generation {store_generation} with {store_count} edits"
        )
    try:
        fingerprint = _file_fingerprint(index_path)
    except FileNotFoundError as error:
        raise IndexFileError(f"{index_path} is missing") from error
    if fingerprint != (manifest.file_bytes, manifest.file_crc32):
        raise IndexFileError(
            f"{index_path} is truncated or corrupt: {fingerprint[0]} bytes with CRC-32 {fingerprint[1]}, "
            f"expected {manifest.file_bytes} bytes with CRC-32 {manifest.file_crc32}"
        )
    index = VectorIndex.load(index_path, dim, config)
    if len(index) != store_count:
        raise IndexFileError(f"{index_path} holds {len(index)} vectors; the store holds {store_count} edits")
    return index, manifest
