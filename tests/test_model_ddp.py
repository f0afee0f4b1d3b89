"""Two DDP processes on the CPU (gloo), launched by torchrun as a user would.

This file is also the training script: ``torchrun --nproc_per_node 2 test_model_ddp.py
OUT`` trains the smoke preset's shape for a few steps through ``fit`` with
``strategy=ddp, devices=2``; each rank writes a digest of its weights and its logged
history. The test checks that the ranks agree, that they trained on different data
(the items each was served differ) and that one checkpoint was written, by rank 0 alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crawl2chat.model.config import TrainCfg
from crawl2chat.model.train import fit
from crawl2chat.model.windows import TokenWindows

STEPS = 6


class _Recording(TokenWindows):
    """Token windows that remember which items this rank was served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[int] = []

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.seen.append(index)
        return super().__getitem__(index)


def _worker(out: Path) -> None:
    from crawl2chat.model.gpt import GPT, GPTConfig

    rank = int(os.environ["RANK"])
    torch.manual_seed(0)  # the same initial weights on both ranks (DDP also broadcasts rank 0's)
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=2, n_head=2, n_embd=64))
    tokens = np.random.default_rng(0).integers(0, 500, 20_000).astype(np.uint16)
    cfg = TrainCfg(lr=3e-3, min_lr=3e-4, warmup_steps=2, max_steps=STEPS, batch_size=4,
                   tokens_per_step=4 * 64 * 2 * 2, eval_every=3, eval_batches=1, log_every=1,
                   checkpoint_every=2, strategy="ddp", devices=2, deterministic=True,
                   progress_bar=False)
    train = _Recording(tokens, 64, "random", count=200, seed=1)
    val = TokenWindows(tokens, 64, "strided", count=8)

    def sample_fn(m: GPT) -> list[str]:
        return ["sample"]

    rank_out = out / f"rank{rank}"
    rank_out.mkdir(parents=True, exist_ok=True)
    metrics = fit(model, train, val, cfg, rank_out, sample_fn=sample_fn,
                  checkpoint_dir=out / "ckpt")
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.float().numpy().tobytes())
    (out / f"rank{rank}.json").write_text(json.dumps({
        "digest": digest.hexdigest(), "metrics": metrics, "seen": train.seen}))


def test_two_cpu_ranks_agree_and_write_one_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         __file__, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["metrics"]["val_loss"] == ranks[1]["metrics"]["val_loss"]
    assert ranks[0]["metrics"]["train_loss"] == ranks[1]["metrics"]["train_loss"]
    assert ranks[0]["seen"] != ranks[1]["seen"]  # each rank trained on its own shard
    m = ranks[0]["metrics"]
    assert m["steps"] == STEPS and m["grad_accum"] == 2 and m["tokens_per_step"] == 1024
    assert m["tokens"] == STEPS * 1024
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last.ckpt"]
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == STEPS
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["world_size"] == 2
    # the step log and the curve come from rank 0 only
    assert (tmp_path / "rank0" / "train_log.jsonl").exists()
    assert not list((tmp_path / "rank1").iterdir())


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
