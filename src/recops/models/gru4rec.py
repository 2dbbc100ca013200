"""GRU4Rec: a GRU over the item sequence (Hidasi et al., ICLR 2016), trained with full CE.

Padding is packed away so that the GRU starts every sequence from the same zero state,
however much left padding it carries.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from recops.config import GRU4RecConfig
from recops.models.base import SequenceModel


class GRU4Rec(SequenceModel):
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
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, H), right-padded
        to_left = (cols - shift) % T
        out = torch.gather(out, 1, to_left.unsqueeze(-1).expand(-1, -1, out.shape[-1]))
        return self.dense(self.drop(out))

    def output_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight
