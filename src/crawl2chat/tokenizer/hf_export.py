"""What ``transformers`` needs beside ``tokenizer.json``: special tokens and the chat template.

In: a tokenizer folder that already holds ``tokenizer.json``. Out: ``tokenizer_config.json``
(``PreTrainedTokenizerFast`` with ``<|bos|>`` / ``<|assistant_end|>`` / ``<|pad|>`` as
bos / eos / pad and a Jinja ``chat_template``) and ``special_tokens_map.json``.

The Jinja template is generated from :data:`crawl2chat.chat.template.TURN_TOKENS`, so it
lays out a conversation exactly as :func:`crawl2chat.chat.template.render` does (and, with
``add_generation_prompt``, as ``render_prompt``). One difference is inherent to
transformers: ``apply_chat_template`` renders a string and tokenizes it, so special-token
text inside a message becomes a control token there, while ``render`` keeps it plain.
"""

from __future__ import annotations

import json
from pathlib import Path

from crawl2chat.tokenizer import special

CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"
# the role -> (start, end) table of crawl2chat.chat.template, restated here so the
# tokenizer package does not import torch (template.py does); a test checks they agree
TURNS = {
    "system": (special.SYSTEM_START, special.SYSTEM_END),
    "user": (special.USER_START, special.USER_END),
    "assistant": (special.ASSISTANT_START, special.ASSISTANT_END),
}


def _turn(role: str, start: str, end: str) -> str:
    body = f"{{{{ message['content'] }}}}{end}"
    if role == "assistant":  # what the loss mask learns: the reply and its end token
        body = f"{{% generation %}}{body}{{% endgeneration %}}"
    return f"{start}{body}"


def chat_template() -> str:
    """Jinja source rendering ``<|bos|>`` then each turn as ``start content end``; the
    assistant's ``content end`` inside ``{% generation %}``, so ``apply_chat_template(...,
    return_assistant_tokens_mask=True)`` gives the loss mask of
    :func:`crawl2chat.chat.template.render`."""
    branches = "".join(
        f"{'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}"
        f"{_turn(role, start, end)}{{% "
        for i, (role, (start, end)) in enumerate(TURNS.items()))
    return (
        f"{{{{- '{special.BOS}' -}}}}"
        "{% for message in messages %}{% "
        f"{branches}"
        "else %}{{ raise_exception('unknown role ' ~ message['role']) }}{% endif %}"
        "{% endfor %}"
        f"{{% if add_generation_prompt %}}{special.ASSISTANT_START}{{% endif %}}"
    )


def write_config(folder: Path) -> None:
    """Write the transformers config files next to ``folder/tokenizer.json``."""
    roles = {"bos_token": special.BOS, "eos_token": special.ASSISTANT_END,
             "pad_token": special.PAD}
    extra = [t for t in special.SPECIAL_TOKENS if t not in roles.values()]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **roles,
        "additional_special_tokens": extra,
        "add_bos_token": False,  # documents and chats get <|bos|> from the pipeline
        "clean_up_tokenization_spaces": False,  # decode must give the text back as is
        "model_max_length": 1_000_000_000,
        "chat_template": chat_template(),
    }
    folder = Path(folder)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    (folder / SPECIAL_MAP_FILE).write_text(
        json.dumps({**roles, "additional_special_tokens": extra}, indent=2) + "\n")
