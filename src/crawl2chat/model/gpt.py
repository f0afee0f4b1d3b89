"""A GPT as a plain ``nn.Module``: GPT-2 by default, modern options by config.

In: token ids ``idx[B, T]`` (and optionally ``targets[B, T]``, -100 where no loss is
wanted). Out: ``(logits[B, T, vocab], loss | None)``. Pre-norm blocks, causal attention
through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where
available). The defaults are GPT-2: learned position embeddings, LayerNorm, tanh-GELU
MLP, the token embedding tied to the output head. :class:`GPTConfig` swaps in rotary
positions, RMSNorm, QK-norm, a ReLU² or SwiGLU MLP and an untied head. Parameter names
follow GPT-2's (``transformer.h.0.attn.c_attn`` ...) so that export to Hugging Face is
a rename. ``forward(..., cache=KVCache)`` feeds positions after those already cached
(incremental decoding, see :mod:`crawl2chat.model.kvcache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crawl2chat.model.kvcache import KVCache, LayerKV, attention_mask

VOCAB_MULTIPLE = 64  # embedding rows padded to a multiple of this (faster matmuls)
IGNORE_INDEX = -100  # targets with this id add nothing to the loss (SFT masks prompts so)
POSITIONS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "relu2", "swiglu")
LN_EPS = 1e-5  # nn.LayerNorm's default, and HF GPT-2's
RMS_EPS = 1e-6  # HF Llama's / Qwen3's default rms_norm_eps
SWIGLU_MULTIPLE = 64  # SwiGLU hidden width rounded up to this, as Llama does

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin: [T, head_dim]


def padded_vocab(vocab_size: int) -> int:
    """``vocab_size`` rounded up to a multiple of :data:`VOCAB_MULTIPLE`."""
    return -(-vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


@dataclass(kw_only=True)
class ModelCfg:
    """A GPT's architecture, all but its vocabulary: the ``model`` subsection of the
    ``base`` params. Fields added later have defaults that give the older model, so old
    ``config.json`` files load; the size has none (``conf/base`` gives the demo's)."""

    block_size: int  # longest context the model is fed
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2 has
    positions: str = "learned"  # learned (GPT-2) | rotary (RoPE on queries and keys)
    rope_theta: float = 10000.0  # rotary base; larger turns the slowest angles slower
    norm: str = "layernorm"  # layernorm (GPT-2) | rmsnorm
    qk_norm: bool = False  # RMSNorm on each head's queries and keys (Qwen3, OLMo 2)
    mlp: str = "gelu"  # gelu (GPT-2) | relu2 (ReLU squared) | swiglu (gated SiLU, Llama)
    tie_embeddings: bool = True  # the output head is the token embedding, as in GPT-2


@dataclass(kw_only=True)
class GPTConfig(ModelCfg):
    """The shape of a GPT: its architecture and the vocabulary the tokenizer sets; saved
    as ``config.json`` beside the weights. Raises ValueError naming a bad field."""

    vocab_size: int  # rows of the embedding; padded to a multiple of 64 for fast matmuls

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of "
                             f"n_head ({self.n_head})")
        for name, choices in (("positions", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; "
                                 f"got {getattr(self, name)!r}")
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head size; n_embd / n_head = "
                             f"{self.head_dim}")
        if self.rope_theta <= 0:
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """Width of the MLP's hidden layer: 4 x n_embd; for SwiGLU, whose three matrices
        would otherwise hold 1.5x the parameters, 8/3 x n_embd rounded up to 64."""
        if self.mlp != "swiglu":
            return 4 * self.n_embd
        return -(-8 * self.n_embd // (3 * SWIGLU_MULTIPLE)) * SWIGLU_MULTIPLE


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` computed in fp32 and returned in the input's dtype, like HF Llama's:
    under bf16 autocast, queries and keys stay bf16 as SDPA needs, their statistics exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def make_norm(cfg: GPTConfig, width: int) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(width, eps=RMS_EPS)
    return nn.LayerNorm(width, eps=LN_EPS, bias=cfg.bias)


def rotary(positions: torch.Tensor, cfg: GPTConfig) -> Rope:
    """cos and sin of each position's rotation angles, laid out as HF Llama's (the two
    halves of a head rotated together, not interleaved pairs), so weights map 1:1. They
    are computed per call, not held in buffers: it costs ~T x head_dim operations, and
    there is no buffer to go stale under dtype casts or meta-device initialisation."""
    dim = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (
        torch.arange(0, dim, 2, dtype=torch.float, device=positions.device) / dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate ``x[B, heads, T, head_dim]`` by the angles of its positions."""
    cos, sin = (t.to(x.dtype) for t in rope)  # fp32 tables; x may be bf16 under autocast
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.q_norm = RMSNorm(cfg.head_dim, eps=RMS_EPS) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, eps=RMS_EPS) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None,
                rope: Rope | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, T, heads, head_dim]
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head) for t in (q, k, v))
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)  # per head, before the rotation (as Qwen3)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # -> [B, heads, T, head_dim]
        if rope is not None:
            # keys are cached rotated: a cached key keeps the angle of its own position
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
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
    """``c_proj(act(c_fc(x)))``; SwiGLU: ``c_proj(silu(c_gate(x)) * c_fc(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        hidden = cfg.mlp_hidden
        self.c_fc = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.c_gate = (nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
                       if cfg.mlp == "swiglu" else None)
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.c_gate is not None:
            h = F.silu(self.c_gate(x)) * h
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:  # tanh approximation: what GPT-2 was trained with (HF "gelu_new")
            h = F.gelu(h, approximate="tanh")
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(cfg, cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = make_norm(cfg, cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, kv: LayerKV | None = None,
                rope: Rope | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, rope)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Embeddings, ``n_layer`` pre-norm blocks, a final norm and the output head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        modules: dict[str, nn.Module] = {"wte": nn.Embedding(cfg.vocab_size, cfg.n_embd)}
        if cfg.positions == "learned":
            modules["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        modules |= dict(drop=nn.Dropout(cfg.dropout),
                        h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
                        ln_f=make_norm(cfg, cfg.n_embd))
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix, two uses
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
        """Parameters counted once (a tied head is the embedding); optionally without the
        vocabulary and position matrices (token and position embeddings, an untied
        head), as scaling laws count them."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields tied ones once
        if non_embedding:
            n -= self.transformer.wte.weight.numel()
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
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
        x = self.transformer.wte(idx)
        rope = None
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(pos)
        else:
            rope = rotary(pos, self.config)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None, rope)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        # the loss in fp32 even under autocast: log-softmax over a large vocab in bf16 is lossy
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        return logits, loss
