"""The ``crawl2chat`` command line.

Every command is a thin shell over a library function; heavy imports happen inside
the command that needs them so that ``--help`` stays instant. While a command runs, the
``crawl2chat`` logger prints plain lines on stderr (INFO; ``-v`` DEBUG, ``-q`` WARNING),
whether or not stderr is a terminal, so DVC, Prefect and CI logs show progress too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crawl2chat import paths, runtime

DESCRIPTION = """\
crawl2chat: from a raw web crawl to a chat assistant, reproducibly.

  raw crawl (WARC) -> filtered text -> tokens (BPE) -> base model (GPT) -> SFT chat model

Each arrow is a DVC stage run as a Prefect flow, logged to MLflow and checked by a
Great Expectations suite. Typical use:

  crawl2chat run                          # compose conf/ and rebuild what is stale
  crawl2chat run experiment=smoke         # the same with Hydra overrides
  crawl2chat chat models/sft              # talk to the assistant
  crawl2chat audit models/sft             # which data made this model
"""


def _flow(file_name: str, flow_name: str, root: Path) -> Any:
    """The flow ``flow_name`` of the project's ``flows/FILE_NAME.py``, loaded from the file
    as Prefect loads a deployment's entrypoint: the flows belong to the project (as
    dvc.yaml does), not to the installed package."""
    from prefect.flows import load_flow_from_entrypoint

    file = paths.flow_file(file_name, root)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: run crawl2chat inside its project")
    return load_flow_from_entrypoint(f"{file}:{flow_name}", use_placeholder_flow=False)


def _cmd_compose(args: argparse.Namespace) -> int:
    from crawl2chat import config

    root = paths.project_root()
    if not args.saved:
        config.write_overrides(root, args.overrides)
    tree = config.compose(root)
    file = config.write_params(root, tree)
    print(f"wrote {file.relative_to(root)} (overrides: {config.read_overrides(root) or 'none'})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from crawl2chat import config

    root = paths.project_root()
    config.write_overrides(root, args.overrides)
    config.write_params(root, config.compose(root))
    pipeline = _flow("pipeline", "pipeline", root)
    runtime.quiet_libraries()
    pipeline(force=args.force)
    print("\nDone. Talk to the model:  crawl2chat chat models/sft")
    print("Data behind it:           crawl2chat audit models/sft")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    stage_flow = _flow("stages", args.name, paths.project_root())
    runtime.quiet_libraries()
    metrics = stage_flow()
    print(json.dumps({args.name: metrics}, indent=2, sort_keys=True))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from crawl2chat.audit_report import print_audit

    return print_audit(Path(args.model_dir), as_json=args.json)


def _cmd_chat(args: argparse.Namespace) -> int:
    from crawl2chat.serve.repl import run_chat

    return run_chat(Path(args.model_dir), message=args.message,
                    max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                    top_k=args.top_k, seed=args.seed)


def _cmd_generate(args: argparse.Namespace) -> int:
    from crawl2chat.model.generate import run_generate

    prompt = (args.prompt if args.prompt is not None
              else Path(args.prompt_file).read_text(encoding="utf-8"))
    return run_generate(Path(args.model_dir), prompt=prompt,
                        max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                        top_k=args.top_k, seed=args.seed, top_p=args.top_p,
                        num_samples=args.num_samples, stops=args.stop or (),
                        show_probs=args.show_probs,
                        few_shot=Path(args.few_shot) if args.few_shot else None)


def _cmd_next_token(args: argparse.Namespace) -> int:
    from crawl2chat.model.generate import run_next_token

    return run_next_token(Path(args.model_dir), prompt=args.prompt, top=args.top)


def _cmd_export(args: argparse.Namespace) -> int:
    from crawl2chat.model.checkpoint import load_model
    from crawl2chat.model.export import export_hf, hf_architecture

    model, tokenizer = load_model(Path(args.model_dir))
    export_hf(model, tokenizer, Path(args.out_dir))
    print(f"wrote {args.out_dir} (load with transformers.{hf_architecture(model.config)}"
          ".from_pretrained)")
    return 0


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _cmd_serve(args: argparse.Namespace) -> int:
    from crawl2chat.serve.server import Limits, run_server

    limits = Limits(max_tokens=args.max_tokens, max_concurrency=args.max_concurrency,
                    top_k=args.top_k)
    return run_server(Path(args.model_dir), host=args.host, port=args.port,
                      model_id=args.model_name, limits=limits)


def _cmd_synth(args: argparse.Namespace) -> int:
    import os

    from crawl2chat.synth.files import passage_seeds, topic_seeds
    from crawl2chat.synth.teacher import SynthCfg, run_synth

    seeds = topic_seeds(Path(args.topics)) if args.topics else passage_seeds(Path(args.passages))
    cfg = SynthCfg(endpoint=args.endpoint, model=args.model, out=Path(args.out), n=args.n,
                   turns=args.turns, rps=args.rps, concurrency=args.concurrency,
                   max_retries=args.max_retries, timeout_s=args.timeout,
                   max_tokens=args.max_tokens, temperature=args.temperature,
                   api_key=args.api_key or os.environ.get("OPENAI_API_KEY"))
    counts = run_synth(cfg, seeds, progress=lambda outcome: print(
        {"written": ".", "duplicate": "d", "failed": "F"}.get(outcome, ""), end="",
        flush=True))
    print(f"\n{args.out}: {counts['written']} written, {counts['already_done']} already "
          f"there, {counts['duplicate']} duplicates, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from crawl2chat.tokenizer.show import run_tokenize

    return run_tokenize(Path(args.model), args.text, as_json=args.json)


def _cmd_extract(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import extract_file

    return extract_file(Path(args.file), sys.stdout)


def _cmd_langid(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import langid_lines

    return langid_lines(sys.stdin, sys.stdout)


def _cmd_pii(args: argparse.Namespace) -> int:
    from crawl2chat.text.tools import pii_lines

    return pii_lines(sys.stdin, sys.stdout, mode=args.mode, lang=args.lang)


def _sampling_args(p: argparse.ArgumentParser, max_new_tokens: int,
                   seed: int | None = 0) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                   help="stop after this many new tokens (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature; 0 means greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=50,
                   help="sample among the k most likely tokens (default: %(default)s)")
    p.add_argument("--seed", type=int, default=seed,
                   help="random seed: the same seed gives the same text (default: "
                   + ("%(default)s)" if seed is not None else "a random one, printed)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawl2chat", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="compose the config and rebuild every stale stage",
                       description="Save OVERRIDES to conf/overrides.yaml, compose conf/ into "
                       "params.yaml, then run the pipeline flow (`dvc repro`): only stages "
                       "whose code, data or params changed are rebuilt.")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                   help="Hydra overrides, e.g. experiment=smoke base.max_steps=100")
    p.add_argument("--force", action="store_true", help="rebuild every stage")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("compose", help="resolve conf/ (+ overrides) into params.yaml",
                       description="Compose the Hydra config in conf/ with OVERRIDES and write "
                       "the resolved tree to params.yaml (what DVC and the stages read).")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides")
    p.add_argument("--saved", action="store_true",
                   help="use the overrides saved in conf/overrides.yaml (the DVC stage does)")
    p.set_defaults(func=_cmd_compose)

    p = sub.add_parser("stage", help="run one stage as a Prefect flow (what dvc.yaml calls)",
                       description="Run one pipeline stage from params.yaml: "
                       + ", ".join(paths.STAGES) + ". Writes its output folder atomically, "
                       "checks it with its quality gate and logs an MLflow run.")
    p.add_argument("name", choices=paths.STAGES, help="the stage to run")
    p.set_defaults(func=_cmd_stage)

    p = sub.add_parser("audit", help="name the data and runs behind a model",
                       description="Walk the manifest chain from MODEL_DIR back to the crawl's "
                       "WARC files, checking each link against the MLflow store.")
    p.add_argument("model_dir", help="a stage output folder, e.g. models/sft")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("chat", help="talk to a chat model (interactive, or one --message)",
                       description="Chat with an SFT model. Without --message: an interactive, "
                       "multi-turn session (empty line or Ctrl-D ends it, /reset starts over). "
                       "With --message: print one reply and exit.")
    p.add_argument("model_dir", help="a model folder, e.g. models/sft")
    p.add_argument("--message", "-m", help="send one message, print the reply, exit")
    _sampling_args(p, max_new_tokens=200)
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("generate", help="continue a text prompt with a model",
                       description="Sample a continuation of PROMPT from a base (or SFT) model. "
                       "The seed is printed on stderr; --seed repeats a run exactly.")
    p.add_argument("model_dir", help="a model folder, e.g. models/base")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", "-p", help="the text to continue")
    prompt.add_argument("--prompt-file", help="a file whose text is the prompt, as it is")
    _sampling_args(p, max_new_tokens=100, seed=None)
    p.add_argument("--top-p", type=_probability, default=1.0,
                   help="sample among the most likely tokens whose probabilities add up to "
                        "P (nucleus sampling, after --top-k); 1 keeps all (default: %(default)s)")
    p.add_argument("--num-samples", "-n", type=_positive_int, default=1,
                   help="continuations to write, the i-th with seed + i, separated by "
                   "'---' lines (default: %(default)s)")
    p.add_argument("--stop", action="append", metavar="STR",
                   help="end a continuation before this text (which is not printed), as "
                   "the server's stop does; repeatable")
    p.add_argument("--show-probs", type=_positive_int, default=0, metavar="K",
                   help="for each new token, print the one drawn and the K most likely "
                   "candidates, with the probabilities it was drawn from")
    p.add_argument("--few-shot", metavar="FILE",
                   help="a few-shot prompt (YAML or JSONL of input/output examples, see "
                   "prompts/few_shot/): PROMPT is the new input, only the answer is printed")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("next-token", help="show a model's next-token distribution",
                       description="Print the most likely tokens after PROMPT and their "
                       "probabilities (temperature 1, after <|bos|> as in training).")
    p.add_argument("model_dir", help="a model folder, e.g. models/base")
    p.add_argument("--prompt", "-p", required=True, help="the text before the token")
    p.add_argument("--top", type=_positive_int, default=10,
                   help="how many tokens to list (default: %(default)s)")
    p.set_defaults(func=_cmd_next_token)

    p = sub.add_parser("export", help="write a model as a Hugging Face model folder",
                       description="Export MODEL_DIR to OUT_DIR as the Hugging Face model that "
                                   "computes it: GPT2LMHeadModel, LlamaForCausalLM or "
                                   "Qwen3ForCausalLM (config.json, model.safetensors, tokenizer "
                                   "files); refuses, naming the options, when none does.")
    p.add_argument("model_dir", help="a model folder, e.g. models/base")
    p.add_argument("out_dir", help="the folder to write (created if missing)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API + web chat",
                       description="Serve MODEL_DIR over HTTP: POST /v1/chat/completions "
                       "(chat template, streaming or not), POST /v1/completions (plain text "
                       "continuation, for base models), GET /v1/models, and a web chat page at "
                       "/. Any OpenAI client works: base_url=http://HOST:PORT/v1, any api_key, "
                       "model=the name printed at start. Ctrl-C stops it.")
    p.add_argument("model_dir", help="a model folder, e.g. models/sft or models/base")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes it to the network, and there "
                   "is no authentication (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    p.add_argument("--model-name",
                   help="the model id clients must send (default: the folder's name)")
    p.add_argument("--max-tokens", type=_positive_int, default=512,
                   help="most new tokens one request may ask for; also the default when a "
                   "request gives none (default: %(default)s)")
    p.add_argument("--max-concurrency", type=_positive_int, default=2,
                   help="generations running at once; further requests get HTTP 429 "
                   "(default: %(default)s)")
    p.add_argument("--top-k", type=_positive_int, default=50,
                   help="sample among the k most likely tokens unless a request sets top_k "
                   "(default: %(default)s)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("synth", help="have a teacher model write conversations (OpenAI API)",
                       description="Ask a teacher model behind an OpenAI-compatible endpoint "
                       "to write conversations about seed topics or passages of crawled text "
                       "(UltraChat-style), appended to OUT as messages-format JSONL with their "
                       "provenance. Rerunning skips the conversations already in OUT. Exit "
                       "status 1 if some could not be written (rerun to retry them).")
    p.add_argument("--endpoint", required=True,
                   help="the API's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="the teacher model's id at the endpoint")
    seeds = p.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--topics", help="a text file, one topic a line")
    seeds.add_argument("--passages", help="the text stage's output (data/text) or a "
                       "documents.parquet: one conversation per document passage")
    p.add_argument("--out", required=True, help="the JSONL file to append to")
    p.add_argument("--n", type=_positive_int,
                   help="conversations OUT should hold; seeds are reused when N exceeds "
                   "them (default: one per seed)")
    p.add_argument("--turns", type=_positive_int, default=2,
                   help="user/assistant exchanges per conversation (default: %(default)s)")
    p.add_argument("--rps", type=float, default=1.0,
                   help="most requests started per second; 0 = no limit (default: %(default)s)")
    p.add_argument("--concurrency", type=_positive_int, default=2,
                   help="conversations written at once (default: %(default)s)")
    p.add_argument("--max-retries", type=int, default=5,
                   help="retries of a request after 429, 5xx or a timeout, with exponential "
                   "backoff (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for one reply (default: %(default)s)")
    p.add_argument("--max-tokens", type=_positive_int, default=300,
                   help="most tokens per teacher reply (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="the teacher's sampling temperature (default: %(default)s)")
    p.add_argument("--api-key", help="sent as a Bearer token (default: $OPENAI_API_KEY, if set)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("tokenize", help="show the ids and pieces a tokenizer cuts a text into",
                       description="Encode TEXT as ordinary text (special-token text stays "
                       "plain bytes) and print the ids and each token's piece.")
    p.add_argument("text", help="the text to encode")
    p.add_argument("--model", default="data/tokens",
                   help="folder with tokenizer.json or tokenizer/tokenizer.json, e.g. "
                   "data/tokens or models/sft (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_cmd_tokenize)

    p = sub.add_parser("extract", help="print the main text of an HTML file",
                       description="Extract the main text the way the text stage does "
                       "(trafilatura, precision mode).")
    p.add_argument("file", help="an HTML file")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("langid", help="language of each stdin line, as JSON lines",
                       description='Print {"lang": .., "score": ..} per input line '
                       "(fastText lid.176).")
    p.set_defaults(func=_cmd_langid)

    p = sub.add_parser("pii", help="redact e-mails, public IPs, phone numbers, person names "
                       "and postal addresses on stdin",
                       description="Write stdin to stdout line for line, PII replaced.")
    p.add_argument("--mode", choices=("placeholder", "fake"), default="placeholder",
                   help="<EMAIL>/<IP>/<PHONE>/<PERSON>/<ADDRESS> placeholders or realistic "
                   "fake values (default: %(default)s)")
    p.add_argument("--lang", default=None,
                   help="language of the input (default: each line's, by fastText); person "
                   "names are looked for in English only, as in the text stage")
    p.set_defaults(func=_cmd_pii)
    _verbosity_args(parser, default=0)
    for command in sub.choices.values():
        # after the command too; SUPPRESS keeps a subcommand from resetting the choice
        _verbosity_args(command, default=argparse.SUPPRESS)
    return parser


class _PlainFormatter(logging.Formatter):
    """Progress as it is (``step 10/200 | loss ...``); warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else (
            f"{record.levelname.lower()}: {text}")


@contextlib.contextmanager
def console_log(verbosity: int = 0) -> Iterator[None]:
    """The ``crawl2chat`` logger on stderr at INFO (``verbosity`` 1: DEBUG, -1: WARNING)
    while the block runs; its settings are restored afterwards. It stops propagating
    meanwhile: a root handler (Prefect installs one) would print each line twice."""
    logger = logging.getLogger("crawl2chat")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.setLevel({1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}[verbosity])
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _verbosity_args(p: argparse.ArgumentParser, default: object) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                       default=default, help="also print debug lines")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       default=default, help="print warnings and errors only")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure()
    from crawl2chat.errors import report_errors

    with console_log(args.verbosity), report_errors():
        return int(args.func(args) or 0)
    return 1


if __name__ == "__main__":
    sys.exit(main())
