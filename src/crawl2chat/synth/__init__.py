"""Synthetic conversations: a teacher model behind an OpenAI-compatible endpoint writes them."""
