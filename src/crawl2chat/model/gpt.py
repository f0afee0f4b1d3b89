"""The GPT-2 architecture as a plain ``nn.Module``.

In: token ids ``idx[B, T]`` (and optionally ``targets[B, T]``, -100 where no loss is
wanted). Out: ``(logits[B, T, vocab], loss | None)``. Pre-LayerNorm blocks, learned
position embeddings, GELU MLP, causal attention through
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where available),
and the token embedding tied to the output head, as in GPT-2. Parameter names follow
GPT-2's (``transformer.h.0.attn.c_attn`` ...) so that export to Hugging Face is a
rename-free transpose. ``forward(..., cache=KVCache)`` feeds positions after those
already cached (incremental decoding, see :mod:`crawl2chat.model.kvcache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crawl2chat.model.kvcache import KVCache, LayerKV, attention_mask

IGNORE_INDEX = -100  # targets with this id add nothing to the loss (SFT masks prompts so)


@dataclass
class GPTConfig:
    """The shape of a GPT; saved as ``config.json`` beside the weights."""

    vocab_size: int  # rows of the embedding; padded to a multiple of 64 for fast matmuls
    block_size: int  # longest context the position embedding covers
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2 has

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of "
                             f"n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, heads, T, head_dim]
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        mask, causal = None, True
        if kv is not None:
            past = kv.length
            k, v = kv.append(k, v)
            # one new query sees every cached key: no mask. A chunk after a non-empty
            # cache needs an explicit offset mask; is_causal aligns to the top-left.
            if past and T == 1:
                causal = False
            elif past:
                mask, causal = attention_mask(T, k.size(2), x.device), False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh approximation: what GPT-2 was trained with (HF "gelu_new")
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2: embeddings, ``n_layer`` pre-LN blocks, final LN, head tied to ``wte``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix, two uses
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer), so the residual
        # stream's variance does not grow with depth
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters counted once (the tied head is the embedding); optionally without
        the position embedding and the token embedding, as scaling laws count them."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields tied ones once
        if non_embedding:
            n -= self.transformer.wpe.weight.numel() + self.transformer.wte.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (and the loss, given targets) for ``idx``. With ``cache``, ``idx`` are
        the positions after those already cached, and their keys/values are added to it."""
        start = cache.length if cache is not None else 0
        seq_len = start + idx.size(1)
        if seq_len > self.config.block_size:
            raise ValueError(f"sequence of {seq_len} tokens is longer than block_size "
                             f"{self.config.block_size}")
        pos = torch.arange(start, seq_len, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        # the loss in fp32 even under autocast: log-softmax over a large vocab in bf16 is lossy
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        return logits, loss
