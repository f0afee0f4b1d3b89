"""Byte-level BPE: training, special tokens, encoding into shards, compression report."""
