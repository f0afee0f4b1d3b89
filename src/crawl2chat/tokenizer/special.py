"""Special tokens reserved in every vocabulary: document boundary and the chat template.

They get the first ids (0..N-1) so that the ids are the same for every vocab size.
Text typed by a user that happens to spell one of them is encoded as ordinary bytes,
never as the control token (see ``Tokenizer.encode``).
"""

from __future__ import annotations

BOS = "<|bos|>"  # document boundary: every document starts with it
PAD = "<|pad|>"
SYSTEM_START = "<|system_start|>"
SYSTEM_END = "<|system_end|>"
USER_START = "<|user_start|>"
USER_END = "<|user_end|>"
ASSISTANT_START = "<|assistant_start|>"
ASSISTANT_END = "<|assistant_end|>"  # end of an assistant turn: generation stops here

SPECIAL_TOKENS: tuple[str, ...] = (
    BOS, PAD, SYSTEM_START, SYSTEM_END, USER_START, USER_END, ASSISTANT_START, ASSISTANT_END,
)
