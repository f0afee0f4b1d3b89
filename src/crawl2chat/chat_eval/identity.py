"""Does a reply say who the assistant is? The identity judge of the SFT evaluation.

In:  reply texts to "who / what are you, who made you" prompts (the held-out set
     ``data/demo/chat/eval_identity.jsonl``, read by chat_eval/refusal.py ``load_prompts``).
Out: :func:`is_identity` per reply.

A reply identifies the assistant when it names it (``NAME``) and says what it is: an
assistant, a (language / chat) model, an AI, a chatbot or a program. Both are required, so
"crawl2chat is a pipeline" alone, or "I am a small model" without the name, do not count.
The words were fixed before any model was trained on the templated identity answers.
"""

from __future__ import annotations

import re

NAME = "crawl2chat"
_WHAT = re.compile(r"\b(?:assistant|(?:language |chat )?model|AI|chat ?bot|program)\b",
                   re.IGNORECASE)


def is_identity(reply: str) -> bool:
    """Whether ``reply`` gives the assistant's name and what it is."""
    return NAME in reply.lower() and bool(_WHAT.search(reply))
