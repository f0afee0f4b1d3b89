"""The optimizer of a GPT: ``build_optimizer(model, cfg) -> torch.optim.Optimizer``.

In: a model (a :class:`~crawl2chat.model.gpt.GPT`, possibly ``torch.compile``-d) and a
:class:`~crawl2chat.model.config.TrainCfg` (``optimizer``, ``lr``, ``weight_decay``,
``beta1``/``beta2``, ``muon_lr``, ``muon_momentum``, ``grad_clip``, ``precision``). Out:

- ``optimizer="adamw"``: AdamW, weight decay on matrices only;
- ``optimizer="muon"``: :class:`MuonWithAdamW`, Muon on the hidden matrices (attention
  and MLP weights inside the blocks) and AdamW on the rest (embeddings, the output head,
  norm gains, biases), which Muon's orthogonalised update does not suit.

Parameters that do not require grad (layers frozen for fine-tuning) are left out. AdamW
uses the fused kernel where torch has one for the device (CUDA, and CPU in torch 2.13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.gpt import Block

OPTIMIZERS = ("adamw", "muon")
_FUSED_ADAMW_DEVICES = ("cuda", "cpu", "xpu", "mps")


def param_groups(params: nn.Module | Iterable[nn.Parameter],
                 weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (linear and embedding weights), not biases or norm gains. Takes a
    module or parameters; those that do not require grad are left out."""
    source = params.parameters() if isinstance(params, nn.Module) else params
    trainable = [p for p in source if p.requires_grad]  # a module yields tied ones once
    return [{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}]


def split_for_muon(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, everything else for AdamW), trainable ones only.

    Hidden matrices are the 2-D weights inside the transformer blocks; found by module
    type rather than by name so that a ``torch.compile`` wrapper changes nothing."""
    hidden = {id(p): p for block in model.modules() if isinstance(block, Block)
              for p in block.parameters() if p.dim() == 2 and p.requires_grad}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden]
    return list(hidden.values()), rest


def build_optimizer(model: nn.Module, cfg: TrainCfg) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, for the trainable parameters of ``model``."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                         f"got {cfg.optimizer!r}")
    params = list(model.parameters())
    device = params[0].device.type if params else "cpu"
    if cfg.optimizer == "adamw":
        # Lightning's mixed-precision plugin refuses to clip gradients for a fused
        # optimizer (it could unscale them itself); the foreach one costs only a few
        # percent of a step at these sizes
        fused = device in _FUSED_ADAMW_DEVICES and not (
            cfg.grad_clip and cfg.precision.endswith("-mixed"))
        return _adamw(param_groups(model, cfg.weight_decay), cfg, fused)
    hidden, rest = split_for_muon(model)
    if not hidden:
        raise ValueError("optimizer 'muon' found no trainable matrices inside the "
                         "transformer blocks; use optimizer 'adamw'")
    # the combined optimizer does not announce fused unscaling, so Lightning unscales
    # (if it scales at all) before AdamW steps: the fused kernel is safe here
    adamw = _adamw(param_groups(rest, cfg.weight_decay), cfg,
                   fused=device in _FUSED_ADAMW_DEVICES)
    # decoupled decay shrinks a weight by lr x weight_decay per step: scaled so that the
    # hidden matrices shrink as fast under Muon's larger lr as they would under AdamW
    muon = torch.optim.Muon(hidden, lr=cfg.muon_lr, momentum=cfg.muon_momentum,
                            weight_decay=cfg.weight_decay * cfg.lr / cfg.muon_lr)
    return MuonWithAdamW(adamw, muon)


def _adamw(groups: list[dict[str, Any]], cfg: TrainCfg, fused: bool) -> torch.optim.AdamW:
    groups = [g for g in groups if g["params"]]  # e.g. no trainable biases when bias=False
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


class MuonWithAdamW(torch.optim.Optimizer):
    """AdamW and Muon stepped as one optimizer, so Lightning, LR schedulers and
    checkpoints see a single one.

    Its ``param_groups`` are the inner optimizers' own group dicts (AdamW's first, so
    ``param_groups[0]["lr"]`` is the AdamW rate), and a scheduler that sets a group's
    ``lr`` steers the inner optimizer that owns it; each group's peak rate is its own
    (``lr`` or ``muon_lr``), the schedule scales both alike. ``state`` is one dict both
    inner optimizers write into (their parameters are disjoint), so ``state_dict`` has the
    standard layout and ``load_state_dict`` restores both exactly.
    """

    def __init__(self, adamw: torch.optim.AdamW, muon: torch.optim.Muon) -> None:
        self.adamw, self.muon = adamw, muon
        self._n_adamw = len(adamw.param_groups)
        # Optimizer.__init__ keeps the group dicts it is given (it does not copy them)
        super().__init__([*adamw.param_groups, *muon.param_groups], defaults={})
        self.state.update(adamw.state)
        self.state.update(muon.state)
        self._share()

    def _share(self) -> None:
        """Point both inner optimizers at this optimizer's groups and state."""
        self.adamw.param_groups = self.param_groups[:self._n_adamw]
        self.muon.param_groups = self.param_groups[self._n_adamw:]
        self.adamw.state = self.muon.state = self.state

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Run ``closure`` (forward, backward, clipping) once, then step both."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.adamw.step()
        self.muon.step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # the base class rebuilds param_groups and state as new objects: re-share them
        super().load_state_dict(state_dict)
        self._share()
