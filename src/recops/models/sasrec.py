"""SASRec: causal self-attention over the item sequence (Kang & McAuley, ICDM 2018).

Pre-LayerNorm transformer blocks, learned positional embeddings counted back from the most
recent item (so left-padding and truncation do not move positions), output tied to the
item embedding, trained with full softmax cross-entropy at every position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recops.config import SASRecConfig
from recops.models.base import SequenceModel


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        assert config.hidden % config.n_heads == 0
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.proj = nn.Linear(config.hidden, config.hidden)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        # No dropout on attention weights: on CPU, sampling a (B, T, T) mask per layer cost as
        # much as the attention itself, and residual dropout regularises enough.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.hidden)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.hidden)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden, config.ffn_multiplier * config.hidden),
            nn.GELU(),
            nn.Linear(config.ffn_multiplier * config.hidden, config.hidden),
            nn.Dropout(config.dropout),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x), attn_mask))
        return x + self.mlp(self.ln2(x))


class SASRec(SequenceModel):
    item_tables = ("item_emb.weight", "out_emb.weight")  # out_emb only with untied output

    def __init__(self, config: SASRecConfig, n_items: int) -> None:
        super().__init__(n_items, config.max_len, config.history_bias)
        self.config = config
        self.item_emb = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.hidden)
        self.out_emb = None if config.tie_embeddings else nn.Embedding(n_items + 1, config.hidden)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        assert self.max_len >= T, f"sequence length {T} exceeds max_len {self.max_len}"
        valid = input_ids != 0  # (B, T)
        positions = torch.arange(self.max_len - T, self.max_len, device=input_ids.device)
        x = self.item_emb(input_ids) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        x = self.drop(x) * valid.unsqueeze(-1)
        causal = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()
        # attend to earlier real items, and always to itself (a padding row must not be all-masked)
        attn_mask = (causal & valid.unsqueeze(1)) | torch.eye(T, dtype=torch.bool, device=input_ids.device)
        attn_mask = attn_mask.unsqueeze(1)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, attn_mask) * valid.unsqueeze(-1)
        return self.ln_f(x)

    def output_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight if self.out_emb is None else self.out_emb.weight
