"""Exact full-softmax cross-entropy without the (positions x catalogue) logit matrix.

``F.cross_entropy(hidden @ W.T, targets)`` holds N x V floats for the forward pass and as much
again for the backward one: with 12,800 positions and a million items, about 51 GB each. Here
the catalogue is taken ``chunk_items`` items at a time: the forward pass keeps a running
log-sum-exp per position (the online softmax), the backward pass recomputes each chunk's logits
and turns them into gradients at once (recomputation, as in Apple's Cut Cross-Entropy, 2024).
Peak memory is N x ``chunk_items``; the result equals the full computation up to float
rounding (tests/unit/test_chunked_ce.py: loss and every gradient within 1e-5).

The history bias (recops.models.base) enters as sparse (row, item) pairs with one shared value,
added to those logits in each chunk, so it too never needs an N x V tensor.
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_CHUNK_ITEMS = 65_536


def _chunk_logits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    start: int,
    stop: int,
    rows: torch.Tensor,
    items: torch.Tensor,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of items ``start:stop`` (0-based) for every row, with the history bias of the
    pairs in that range added; also the mask of those pairs."""
    logits = hidden @ weight[start:stop].T
    in_chunk = (items >= start) & (items < stop)
    if bias is not None and bool(in_chunk.any()):
        logits = logits.index_put(
            (rows[in_chunk], items[in_chunk] - start), bias.expand(int(in_chunk.sum())), accumulate=True
        )
    return logits, in_chunk


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        rows: torch.Tensor,
        items: torch.Tensor,
        bias: torch.Tensor | None,
        chunk: int,
    ) -> torch.Tensor:
        hidden32, weight32 = hidden.float(), weight.float()
        bias32 = None if bias is None else bias.float()
        n = hidden.shape[0]
        lse = torch.full((n,), float("-inf"), device=hidden.device)
        target_logit = torch.zeros(n, device=hidden.device)
        for start in range(0, weight.shape[0], chunk):
            stop = min(start + chunk, weight.shape[0])
            logits, _ = _chunk_logits(hidden32, weight32, start, stop, rows, items, bias32)
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
            here = (targets >= start) & (targets < stop)
            if bool(here.any()):
                idx = here.nonzero(as_tuple=True)[0]
                target_logit[idx] = logits[idx, targets[idx] - start]
        ctx.save_for_backward(hidden, weight, targets, rows, items, lse, *(() if bias is None else (bias,)))
        ctx.chunk, ctx.has_bias = chunk, bias is not None
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, weight, targets, rows, items, lse, *rest = ctx.saved_tensors
        bias = rest[0] if ctx.has_bias else None
        hidden32, weight32 = hidden.float(), weight.float()
        bias32 = None if bias is None else bias.float()
        n = hidden.shape[0]
        scale = grad_out.float() / n
        grad_hidden = torch.zeros_like(hidden32)
        grad_weight = torch.zeros_like(weight32)
        grad_bias = torch.zeros((), device=hidden.device)
        for start in range(0, weight.shape[0], ctx.chunk):
            stop = min(start + ctx.chunk, weight.shape[0])
            logits, in_chunk = _chunk_logits(hidden32, weight32, start, stop, rows, items, bias32)
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, this chunk's columns (in place)
            here = (targets >= start) & (targets < stop)
            if bool(here.any()):
                idx = here.nonzero(as_tuple=True)[0]
                grad[idx, targets[idx] - start] -= 1.0
            grad.mul_(scale)
            grad_hidden.addmm_(grad, weight32[start:stop])
            torch.mm(grad.T, hidden32, out=grad_weight[start:stop])
            if bias is not None and bool(in_chunk.any()):
                grad_bias += grad[rows[in_chunk], items[in_chunk] - start].sum()
        return (
            grad_hidden.to(hidden.dtype),
            grad_weight.to(weight.dtype),
            None,
            None,
            None,
            grad_bias.to(bias.dtype) if bias is not None else None,
            None,
        )


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    history: tuple[torch.Tensor, torch.Tensor] | None = None,
    bias: torch.Tensor | None = None,
    chunk_items: int = DEFAULT_CHUNK_ITEMS,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` (plus ``bias`` at the ``history`` (row,
    0-based item) pairs) against 0-based ``targets``, computed ``chunk_items`` items at a time.
    Equal to ``F.cross_entropy`` on the full logits."""
    if chunk_items < 1:
        raise ValueError(f"chunk_items must be at least 1, got {chunk_items}")
    if history is None:
        empty = torch.zeros(0, dtype=torch.long, device=hidden.device)
        rows, items = empty, empty
    else:
        rows, items = history
    return _ChunkedCrossEntropy.apply(hidden, weight, targets, rows, items, bias, chunk_items)
