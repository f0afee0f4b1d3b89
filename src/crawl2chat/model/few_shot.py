"""Few-shot prompts: a base model continues a pattern it is shown a few times.

In: a YAML file (``examples`` plus optional ``template``, ``separator``, ``prefix`` and
``stop``) or a JSONL file (one ``{"input": ..., "output": ...}`` object a line, the
defaults for the rest). Out: a :class:`FewShot` whose :meth:`~FewShot.prompt` writes
the prefix, every example through the template, then the template once more with the
new input and its output left open, for the model to fill in; ``stop`` says where the
answer ends (by default, at the separator: where the next example would start)::

    prefix: "English words and their Korean translations.\\n\\n"
    template: "{input}: {output}"
    separator: "\\n"
    stop: ["\\n"]
    examples:
      - {input: teacher, output: 선생님}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crawl2chat.errors import InputError

DEFAULT_TEMPLATE = "{input}: {output}"
DEFAULT_SEPARATOR = "\n"


@dataclass
class FewShot:
    """Examples and how to write them into a prompt."""

    examples: list[tuple[str, str]]
    template: str = DEFAULT_TEMPLATE
    separator: str = DEFAULT_SEPARATOR
    prefix: str = ""
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.examples:
            raise InputError("a few-shot prompt needs at least one example")
        if self.template.count("{input}") != 1 or not self.template.endswith("{output}"):
            raise InputError(f"few-shot template {self.template!r} must hold {{input}} once "
                             "and end with {output} (the model writes what comes there)")
        if not self.stop:
            self.stop = [self.separator] if self.separator else []

    def _write(self, input_: str, output: str) -> str:
        return self.template.replace("{input}", input_).replace("{output}", output)

    def prompt(self, input_: str) -> str:
        """The text the model continues to answer ``input_``."""
        shown = [self._write(i, o) for i, o in self.examples]
        # the answer's leading space belongs to its first token (" 선생님"), not the prompt
        query = self._write(input_.strip(), "").rstrip(" ")
        return self.prefix + self.separator.join([*shown, query])


def load_few_shot(file: Path) -> FewShot:
    """A :class:`FewShot` from a ``.yaml``/``.yml`` or ``.jsonl`` file."""
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        data: dict = {"examples": rows}
    elif file.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
    else:
        raise InputError(f"{file}: a few-shot file is .yaml, .yml or .jsonl")
    unknown = set(data) - {"examples", "template", "separator", "prefix", "stop"}
    if unknown:
        raise InputError(f"{file}: unknown key(s) {sorted(unknown)}")
    try:
        examples = [(str(e["input"]), str(e["output"])) for e in data.get("examples") or []]
    except (KeyError, TypeError) as err:
        raise InputError(f"{file}: each example needs an input and an output") from err
    stop = data.get("stop") or []
    return FewShot(examples, template=data.get("template", DEFAULT_TEMPLATE),
                   separator=data.get("separator", DEFAULT_SEPARATOR),
                   prefix=data.get("prefix", ""),
                   stop=[stop] if isinstance(stop, str) else list(stop))
