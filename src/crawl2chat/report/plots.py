"""The report's charts as PNG data URIs: the page carries them inline, so it needs no
network and no files beside it when viewed.

In: a :class:`~crawl2chat.report.collect.Card`. Out: chart name -> ``data:image/png;...``
(only the charts the card has data for).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from crawl2chat.report.collect import Card

_COLOURS = {"base": "#1f77b4", "sft": "#d62728"}


def _figure(draw: Callable[[Any], None], width: float = 6.4, height: float = 3.2) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display: draw to memory
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    try:
        draw(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def charts(card: Card) -> dict[str, str]:
    found: dict[str, str] = {}
    if card.funnel:
        found["funnel"] = _figure(lambda ax: _funnel(ax, card))
    if card.language_mix:
        found["language_mix"] = _figure(lambda ax: _mix(ax, card), height=2.6)
    if card.compression:
        found["compression"] = _figure(lambda ax: _compression(ax, card), height=2.4)
    curves = {s: r.histories for s, r in card.stages.items() if r.histories}
    if any("train/loss" in h for h in curves.values()):
        found["loss"] = _figure(lambda ax: _loss(ax, curves))
    if any("tokens_per_s" in h for h in curves.values()):
        found["throughput"] = _figure(lambda ax: _curve(ax, curves, "tokens_per_s",
                                                        "tokens/s"), height=2.6)
    if any("mfu" in h for h in curves.values()):
        found["mfu"] = _figure(lambda ax: _curve(ax, curves, "mfu", "MFU", percent=True),
                               height=2.6)
    return found


def _funnel(ax: Any, card: Card) -> None:
    steps = [s["step"] for s in card.funnel]
    ax.bar(steps, [s["docs_in"] for s in card.funnel], color="#c7c7c7", label="documents in")
    ax.bar(steps, [s["docs_out"] for s in card.funnel], color="#2ca02c", label="kept")
    ax.set_ylabel("documents")
    ax.set_title("Data funnel of the text stage")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()


def _mix(ax: Any, card: Card) -> None:
    langs = [lang for lang, _, _ in card.language_mix]
    x = range(len(langs))
    ax.bar([i - 0.2 for i in x], [t for _, t, _ in card.language_mix], 0.4, label="target",
           color="#9edae5")
    ax.bar([i + 0.2 for i in x], [a for _, _, a in card.language_mix], 0.4, label="achieved",
           color="#17becf")
    ax.set_xticks(list(x), langs)
    ax.set_ylabel("share of documents")
    ax.set_title("Language mix: target vs achieved")
    ax.legend()


def _compression(ax: Any, card: Card) -> None:
    names = list(card.compression)
    ax.barh(names, list(card.compression.values()), color="#9467bd")
    ax.set_xlabel("bytes per token on the validation text (higher: fewer tokens)")
    ax.set_title("Tokenizer compression")


def _loss(ax: Any, curves: dict[str, dict[str, list[tuple[int, float]]]]) -> None:
    for stage, history in curves.items():
        colour = _COLOURS.get(stage)
        for key, style in (("train/loss", "-"), ("val/loss", "o--")):
            if key in history:
                steps, values = zip(*history[key], strict=True)
                ax.plot(steps, values, style, color=colour, label=f"{stage} {key.split('/')[0]}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Loss curves: base pretraining and SFT")
    ax.legend()


def _curve(ax: Any, curves: dict[str, dict[str, list[tuple[int, float]]]], key: str,
           label: str, percent: bool = False) -> None:
    for stage, history in curves.items():
        if key in history:
            steps, values = zip(*history[key], strict=True)
            ax.plot(steps, [v * 100 if percent else v for v in values], "-",
                    color=_COLOURS.get(stage), label=stage)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{label} (%)" if percent else label)
    ax.set_title(f"{label} during training")
    ax.legend()
