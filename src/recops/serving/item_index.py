"""Exact top-k over a large catalogue from an 8-bit copy of the item table.

Scoring one session against a million items reads the whole fp32 item table (256 MB at 64
dimensions), which takes 20-40 ms on two CPU cores: the product is bound by memory bandwidth,
not arithmetic. ``QuantizedItemIndex`` keeps a copy of the table in int8 (a quarter of the
bytes, one scale per dimension) and finds the top k in two steps:

1. **Prune.** One pass over the int8 copy gives every item an approximate score ``a_i``. With
   the scale ``s_d`` of dimension ``d``, each stored component is within ``s_d / 2`` of the
   real one, so the exact score is within ``b = sum_d |h_d| s_d / 2`` of ``a_i`` (plus a
   margin for float rounding). The pass also keeps the best approximate score of each block of
   ``BLOCK`` items; the k-th best of those, less ``b``, is a score that at least k items are
   certain to reach (``tau``). Every item whose score could reach ``tau`` is a candidate:
   ``a_i + b >= tau``.
2. **Re-rank.** The candidates, usually a few dozen, are scored exactly with the fp32 table,
   as ``predict`` scores them, and sorted.

No item outside the candidates can be in the top k, so the answer is the top k of the full
product (up to float rounding between two nearly equal scores), with no recall loss as an
approximate nearest-neighbour index would have. When the bound cannot prune (k larger than the
number of blocks, too few eligible items) the caller scores the whole table as before.
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK = 2048  # items per block: the pass keeps one maximum per block
MIN_ITEMS = 200_000  # below this the fp32 product takes a few ms and the index is not built
QUANTIZE_ROWS = 64 * BLOCK  # rows quantized at a time while building (bounded temporaries)
ROUNDING_MARGIN = 1e-4  # of sum_d |h_d| max_i |e_id|: float rounding of both products, generously

_kernel = None


def _score_blocks():  # numba is imported on first use: only large catalogues pay for it
    global _kernel
    if _kernel is None:
        import numba

        def score_blocks(codes, query, out, block_max):  # pragma: no cover - compiled
            n_blocks, dims, width = codes.shape
            for b in numba.prange(n_blocks):
                acc = np.zeros(width, np.float32)
                for d in range(dims):
                    weight = query[d]
                    row = codes[b, d]
                    for i in range(width):
                        acc[i] += weight * np.float32(row[i])
                best = acc[0]
                for i in range(width):
                    out[b * width + i] = acc[i]
                    best = max(best, acc[i])
                block_max[b] = best

        options = {"parallel": True, "fastmath": True, "boundscheck": False}
        try:  # compiled once, then loaded from numba's cache (beside this file, else ~/.cache)
            _kernel = numba.njit(cache=True, **options)(score_blocks)
        except RuntimeError:  # nowhere writable to cache (a read-only image): compile each start
            _kernel = numba.njit(**options)(score_blocks)
    return _kernel


class QuantizedItemIndex:
    """The int8 copy of an (n_items + 1, D) item table whose row 0 is padding."""

    def __init__(self, items: torch.Tensor) -> None:
        table = items.detach()[1:].float().cpu().numpy()  # a view, no copy
        self.n_items, self.dims = table.shape
        self.column_max = np.abs(table).max(axis=0).astype(np.float64)
        self.scale = np.where(self.column_max > 0, self.column_max / 127.0, 1.0)
        n_blocks = -(-self.n_items // BLOCK)
        self.codes = np.zeros((n_blocks, self.dims, BLOCK), dtype=np.int8)  # block, dim, item
        for start in range(0, self.n_items, QUANTIZE_ROWS):
            rows = table[start : start + QUANTIZE_ROWS]
            chunk = np.zeros((-(-len(rows) // BLOCK) * BLOCK, self.dims), dtype=np.int8)
            chunk[: len(rows)] = np.rint(rows / self.scale)
            first = start // BLOCK
            blocks = chunk.reshape(-1, BLOCK, self.dims).transpose(0, 2, 1)
            self.codes[first : first + len(blocks)] = blocks
        self._scores = np.empty(n_blocks * BLOCK, dtype=np.float32)
        self._block_max = np.empty(n_blocks, dtype=np.float32)
        self.last_candidates = 0  # how many items the last query re-ranked exactly
        # compile (or load from numba's cache) the kernel now, at load, not in the first request
        self.candidates(np.zeros(self.dims, dtype=np.float32), 1)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes

    def bound(self, hidden: np.ndarray) -> float:
        """How far an approximate score may be from the exact one, for the query ``hidden``."""
        weights = np.abs(hidden.astype(np.float64))
        return float(weights @ self.scale / 2 + ROUNDING_MARGIN * (weights @ self.column_max))

    def candidates(self, hidden: np.ndarray, k: int, excluded: np.ndarray | None = None) -> np.ndarray | None:
        """Item indices (1-based, ascending) that hold the ``k`` best exact scores for the query
        ``hidden`` (D,) among the items not in ``excluded`` (1-based); None when the bound
        cannot prune and the caller must score every item."""
        n_blocks = len(self._block_max)
        if not 1 <= k <= n_blocks:
            return None
        import numba

        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        scores, block_max = self._scores, self._block_max
        _score_blocks()(self.codes, (hidden * self.scale).astype(np.float32), scores, block_max)
        scores[self.n_items :] = -np.inf  # the last block's padding
        touched = [n_blocks - 1]
        if excluded is not None and len(excluded):
            scores[np.asarray(excluded, dtype=np.int64) - 1] = -np.inf
            touched.extend(np.unique((np.asarray(excluded, dtype=np.int64) - 1) // BLOCK).tolist())
        for b in set(touched):
            block_max[b] = scores[b * BLOCK : (b + 1) * BLOCK].max()
        kth = np.partition(block_max, n_blocks - k)[n_blocks - k]
        if not np.isfinite(kth):
            return None  # fewer than k blocks hold an eligible item
        threshold = kth - 2 * self.bound(hidden)
        blocks = np.flatnonzero(block_max >= threshold)  # only these can hold a candidate
        rows, columns = np.nonzero(scores.reshape(n_blocks, BLOCK)[blocks] >= threshold)
        found = blocks[rows] * BLOCK + columns + 1  # ascending: blocks ascending, row-major
        self.last_candidates = len(found)
        return found


def wanted(n_items: int, device: torch.device, model: object) -> bool:
    """Whether ``auto`` builds the index: a large catalogue scored by dot products, on the CPU."""
    from recops.models import SequenceModel

    dot_product = type(model).predict is SequenceModel.predict
    return dot_product and device.type == "cpu" and n_items >= MIN_ITEMS
