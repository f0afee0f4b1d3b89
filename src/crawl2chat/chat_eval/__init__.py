"""Evaluation of a chat model: held-out loss, format compliance, refusal rates, the SFT report."""
