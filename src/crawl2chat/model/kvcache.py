"""Per-layer key/value cache for incremental decoding.

In: the keys and values each attention layer computes for the positions it is fed.
Out: the keys and values of every position fed so far, so that decoding one new token
costs attention over the cache plus one position of compute, not a pass over the whole
prefix. A cache belongs to one sequence batch; :meth:`KVCache.reset` empties it (the
generator does so when the context outgrows ``block_size`` and must be re-cropped).
"""

from __future__ import annotations

import torch


class LayerKV:
    """One layer's keys and values ``[B, heads, block_size, head_dim]``, filled up to
    ``length``. Buffers are allocated on the first append, in the dtype and device of
    the keys, so the cache follows the model (fp32, bf16, GPU) without being told."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` (``[B, heads, T, head_dim]``) after the cached positions;
        return the keys and values of all positions so far."""
        end = self.length + k.size(2)
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; {end} requested")
        if self._k is None or self._k.shape[0] != k.shape[0] or self._k.dtype != k.dtype:
            shape = (k.size(0), k.size(1), self.capacity, k.size(3))
            self._k = k.new_empty(shape)
            self._v = v.new_empty(shape)
        assert self._v is not None
        # preallocated buffers: an append is a copy of T positions, not a torch.cat of all
        self._k[:, :, self.length:end] = k
        self._v[:, :, self.length:end] = v
        self.length = end
        return self._k[:, :, :end], self._v[:, :, :end]


class KVCache:
    """The caches of all ``n_layer`` layers of one model, advanced in step."""

    def __init__(self, n_layer: int, block_size: int) -> None:
        self.layers = [LayerKV(block_size) for _ in range(n_layer)]

    @property
    def length(self) -> int:
        """Positions cached so far (the position id the next token gets)."""
        return self.layers[0].length

    @property
    def capacity(self) -> int:
        return self.layers[0].capacity

    def reset(self) -> None:
        """Forget every position; the buffers are kept for reuse."""
        for layer in self.layers:
            layer.length = 0


def attention_mask(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    """Boolean mask letting query ``i`` (position ``kv_len - q_len + i``) see keys up to
    its own position: causal attention for a chunk appended to a non-empty cache."""
    offset = kv_len - q_len
    rows = torch.arange(q_len, device=device)[:, None] + offset
    return torch.arange(kv_len, device=device)[None, :] <= rows
