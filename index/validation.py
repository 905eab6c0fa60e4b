"""Checks applied to every value before it reaches SQLite or FAISS.

Bad values are rejected here with InvalidEditError (a ValueError) naming what is wrong,
instead of surfacing later as an opaque sqlite/faiss error or a silently wrong search.
"""

import json
import numbers
from typing import Any

import numpy as np

from index.errors import EditNotFoundError, InvalidEditError

MAX_TEXT_CHARS = 4000
LARGEST_EDIT_ID = 2**63 - 1  # SQLite's integer ids (and FAISS's labels) are signed 64-bit


def check_positive_int(value: Any, what: str) -> int:
    """Return `value` if it is an int >= 1 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def check_text(value: Any, what: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The text if it is usable, else a TypeError / ValueError naming what was wrong.

    The one text check of the package: the memory wraps it in InvalidEditError, and the
    editors (`serac.core.text_checks`) use it as is.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty or whitespace only")
    if len(value) > max_chars:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone surrogate (e.g. from a badly decoded file) is not text any tokenizer or SQLite can store.
        raise ValueError(f"{what} is not valid Unicode text: a lone surrogate {value[error.start]!r} at position {error.start}") from None
    return value


def metadata_to_json(value: Any) -> str:
    """Encode edit metadata (a JSON-serialisable dict, or None for {}) as JSON text."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidEditError(f"metadata must be a dict or None, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise InvalidEditError(f"metadata must be JSON-serialisable: {error}") from error


def check_edit_id(value: Any) -> int:
    """Return `value` as an int edit id (numpy integers accepted, bools rejected).

    An int no edit can have (negative, or past SQLite's 64-bit range) is EditNotFoundError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidEditError(f"an edit id must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= LARGEST_EDIT_ID:
        raise EditNotFoundError(f"no edit with id {value}: ids are ints from 1 to {LARGEST_EDIT_ID}")
    return int(value)


def _as_float32_array(value: Any, what: str) -> np.ndarray:
    try:
        return np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InvalidEditError(f"{what} cannot be read as a float32 array: {error}") from error


def as_vector_matrix(value: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """Return `value` as a C-contiguous float32 array of shape (n, dim) with finite values."""
    matrix = _as_float32_array(value, what)
    if matrix.shape == (0,):
        # An empty batch, e.g. add_many([], [], []).
        matrix = matrix.reshape(0, dim)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise InvalidEditError(f"{what} must have shape (n, {dim}), got {matrix.shape}")
    finite_rows = np.isfinite(matrix).all(axis=1)
    if not finite_rows.all():
        first_bad = int(np.argmin(finite_rows))
        raise InvalidEditError(f"{what} row {first_bad} contains NaN or infinite values")
    return matrix


def as_vector(value: Any, dim: int, what: str = "vector") -> np.ndarray:
    """Return one vector as a float32 array of shape (dim,) with finite values."""
    vector = _as_float32_array(value, what)
    if vector.shape != (dim,):
        raise InvalidEditError(f"{what} must have shape ({dim},), got {vector.shape}")
    return as_vector_matrix(vector[None, :], dim, what)[0]


def as_query_matrix(value: Any, dim: int) -> np.ndarray:
    """Return queries as an (n, dim) float32 array; a single (dim,) vector is one query."""
    queries = _as_float32_array(value, "query_vectors")
    return as_vector_matrix(queries[None, :] if queries.ndim == 1 else queries, dim, "query_vectors")


def as_id_array(value: Any) -> np.ndarray:
    """Return ids as a 1-D int64 array of non-negative values (negative ids mean "none" in FAISS)."""
    ids = np.asarray(value)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise InvalidEditError(f"ids must be a 1-D sequence of ints, got shape {ids.shape} dtype {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if (ids < 0).any():
        raise InvalidEditError("ids must be >= 0")
    return ids
