"""Talking to a model: the OpenAI-compatible server with its web page, and the terminal chat."""
