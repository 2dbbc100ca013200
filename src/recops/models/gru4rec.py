"""GRU4Rec: a GRU over the item sequence (Hidasi et al., ICLR 2016), trained with full CE.

Inputs are left-padded; the GRU reads them right-padded (real items first, from the zero
state), so padding never touches a real position's state and nothing needs packing: the
padding steps at the end only produce outputs that are thrown away.
"""

from __future__ import annotations

import torch
from torch import nn

from recops.config import GRU4RecConfig
from recops.models.base import SequenceModel


class GRU4Rec(SequenceModel):
    item_tables = ("item_emb.weight",)

    def __init__(self, config: GRU4RecConfig, n_items: int) -> None:
        super().__init__(n_items, config.max_len, config.history_bias)
        self.config = config
        self.item_emb = nn.Embedding(n_items + 1, config.embedding, padding_idx=0)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.embedding, config.hidden, num_layers=config.n_layers, batch_first=True)
        self.dense = nn.Linear(config.hidden, config.embedding)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        lengths = (input_ids != 0).sum(dim=1).clamp(min=1)  # (B,)
        shift = (T - lengths).unsqueeze(1)  # left padding per row
        cols = torch.arange(T, device=input_ids.device).unsqueeze(0)
        to_right = (cols + shift) % T  # left-padded -> right-padded
        x = self.drop(self.item_emb(torch.gather(input_ids, 1, to_right)))  # (B, T, E)
        out, _ = self.gru(x)  # (B, T, H), right-padded; a real position sees only real items before it
        to_left = (cols - shift) % T
        out = torch.gather(out, 1, to_left.unsqueeze(-1).expand(-1, -1, out.shape[-1]))
        return self.dense(self.drop(out))

    def output_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight
