"""How the next token is picked: :class:`SamplingCfg`, the one place the sampling
defaults live (temperature 0.8, top-k 50, no top-p).

In:  a temperature, top-k and top-p, from ``params.yaml`` (``base.sampling``,
     ``sft.eval.sampling``), a command line or an API request.
Out: a validated, frozen :class:`SamplingCfg` that
     :func:`crawl2chat.model.generate.generate` samples with.

Kept apart from generate.py, which needs torch, so that the command line can take its
option defaults from here and still answer ``--help`` without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawl2chat.errors import ConfigError


@dataclass(frozen=True)
class SamplingCfg:
    """How the next token is picked from the model's distribution (``base.sampling``,
    ``sft.eval.sampling``, the CLI's and the server's defaults)."""

    temperature: float = 0.8  # 0 = greedy
    top_k: int | None = 50  # sample among the k most likely ids; None = all
    top_p: float | None = None  # nucleus: the most likely ids reaching this mass; None = all

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1 or null, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] or null, got {self.top_p}")

    def describe(self) -> str:
        """``temperature 0.8, top-k 50`` (the cuts that are on), or ``greedy``."""
        if self.temperature == 0:
            return "greedy"
        parts = [f"temperature {self.temperature:g}"]
        if self.top_k is not None:
            parts.append(f"top-k {self.top_k}")
        if self.top_p is not None:
            parts.append(f"top-p {self.top_p:g}")
        return ", ".join(parts)
