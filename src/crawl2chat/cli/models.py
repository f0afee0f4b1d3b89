"""Commands that use a trained model: chat, generate, next-token, export, eval, serve."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from crawl2chat.cli.args import positive_int, probability, sampling_args
from crawl2chat.model.sampling import SamplingCfg


def _cmd_chat(args: argparse.Namespace) -> int:
    from crawl2chat.serve.repl import run_chat

    sampling = SamplingCfg(temperature=args.temperature, top_k=args.top_k)
    return run_chat(Path(args.model_dir), message=args.message,
                    max_new_tokens=args.max_new_tokens, sampling=sampling, seed=args.seed)


def _cmd_generate(args: argparse.Namespace) -> int:
    from crawl2chat.model.generate import run_generate

    prompt = (args.prompt if args.prompt is not None
              else Path(args.prompt_file).read_text(encoding="utf-8"))
    sampling = SamplingCfg(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    return run_generate(Path(args.model_dir), prompt=prompt,
                        max_new_tokens=args.max_new_tokens, sampling=sampling, seed=args.seed,
                        num_samples=args.num_samples, stops=args.stop or (),
                        show_probs=args.show_probs,
                        few_shot=Path(args.few_shot) if args.few_shot else None)


def _cmd_next_token(args: argparse.Namespace) -> int:
    from crawl2chat.model.generate import run_next_token

    return run_next_token(Path(args.model_dir), prompt=args.prompt, top=args.top)


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from crawl2chat.model.checkpoint import CONFIG, is_chat, load_model
    from crawl2chat.model.export import export_hf, hf_architecture

    model, tokenizer = load_model(Path(args.model_dir))
    saved = json.loads((Path(args.model_dir) / CONFIG).read_text()).get("crawl2chat")
    export_hf(model, tokenizer, Path(args.out_dir), chat=is_chat(saved))
    print(f"wrote {args.out_dir} (load with transformers.{hf_architecture(model.config)}"
          ".from_pretrained)")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from crawl2chat.serve.server import Limits, run_server

    limits = Limits(max_tokens=args.max_tokens, max_concurrency=args.max_concurrency,
                    top_k=args.top_k, max_body_bytes=args.max_body_bytes,
                    api_key=args.api_key or os.environ.get("CRAWL2CHAT_API_KEY") or None,
                    allowed_hosts=tuple(args.allowed_host))
    return run_server(Path(args.model_dir), host=args.host, port=args.port,
                      model_id=args.model_name, limits=limits)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    import mlflow

    from crawl2chat.digest import file_digest
    from crawl2chat.lineage import EXPERIMENT
    from crawl2chat.model.checkpoint import load_model
    from crawl2chat.model.mc_eval import evaluate, load_items

    data = Path(args.data)
    items = load_items(data, args.task, args.limit)
    model, tok = load_model(Path(args.model_dir))
    score = evaluate(model, tok, items, args.task)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"eval {args.task}"):
        mlflow.set_tags({"stage": "eval", "model.path": args.model_dir})
        mlflow.log_params({"task": args.task, "data": str(data),
                           "data.sha256": file_digest(data), "limit": str(args.limit)})
        mlflow.log_metrics(score.metrics())
    print(json.dumps({"model": args.model_dir, "data": str(data), **score.metrics()}))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands."""
    p = sub.add_parser("chat", help="talk to a chat model (interactive, or one --message)",
                       description="Chat with an SFT model. Without --message: an interactive, "
                       "multi-turn session (empty line or Ctrl-D ends it, /reset starts over). "
                       "With --message: print one reply and exit.")
    p.add_argument("model_dir", help="a model folder, e.g. models/sft")
    p.add_argument("--message", "-m", help="send one message, print the reply, exit")
    sampling_args(p, max_new_tokens=200)
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("generate", help="continue a text prompt with a model",
                       description="Sample a continuation of PROMPT from a base (or SFT) model. "
                       "The seed is printed on stderr; --seed repeats a run exactly.")
    p.add_argument("model_dir", help="a model folder, e.g. models/base")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", "-p", help="the text to continue")
    prompt.add_argument("--prompt-file", help="a file whose text is the prompt, as it is")
    sampling_args(p, max_new_tokens=100, seed=None)
    p.add_argument("--top-p", type=probability, default=SamplingCfg().top_p,
                   help="sample among the most likely tokens whose probabilities add up to "
                        "P (nucleus sampling, after --top-k); 1 keeps all (default: all)")
    p.add_argument("--num-samples", "-n", type=positive_int, default=1,
                   help="continuations to write, the i-th with seed + i, separated by "
                   "'---' lines (default: %(default)s)")
    p.add_argument("--stop", action="append", metavar="STR",
                   help="end a continuation before this text (which is not printed), as "
                   "the server's stop does; repeatable")
    p.add_argument("--show-probs", type=positive_int, default=0, metavar="K",
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
    p.add_argument("--top", type=positive_int, default=10,
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

    p = sub.add_parser("eval", help="multiple-choice evaluation (HellaSwag, ARC, MMLU)",
                       description="Score MODEL_DIR on a local JSONL file in the public "
                       "HellaSwag, ARC or MMLU schema by log-likelihood: prints acc and "
                       "acc_norm as JSON and logs them to MLflow as eval.<task>.acc / "
                       "eval.<task>.acc_norm (crawl2chat.model.mc_eval).")
    p.add_argument("model_dir", help="a model folder, e.g. models/base")
    p.add_argument("--task", required=True, choices=["hellaswag", "arc", "mmlu"],
                   help="the file's schema")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="the JSONL file, e.g. hellaswag_val.jsonl")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="score only the first N items (default: all)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API + web chat",
                       description="Serve MODEL_DIR over HTTP: POST /v1/chat/completions "
                       "(chat template, streaming or not), POST /v1/completions (plain text "
                       "continuation, for base models), GET /v1/models, and a web chat page at "
                       "/. Any OpenAI client works: base_url=http://HOST:PORT/v1, api_key=the "
                       "--api-key (any when none is set), model=the name printed at start. "
                       "Ctrl-C stops it.")
    p.add_argument("model_dir", help="a model folder, e.g. models/sft or models/base")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes it to the network: set "
                   "--api-key then (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    p.add_argument("--model-name",
                   help="the model id clients must send (default: the folder's name)")
    p.add_argument("--max-tokens", type=positive_int, default=512,
                   help="most new tokens one request may ask for; also the default when a "
                   "request gives none (default: %(default)s)")
    p.add_argument("--max-concurrency", type=positive_int, default=2,
                   help="generations running at once; further requests get HTTP 429 "
                   "(default: %(default)s)")
    p.add_argument("--top-k", type=positive_int, default=SamplingCfg().top_k,
                   help="sample among the k most likely tokens unless a request sets top_k "
                   "(default: %(default)s)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1 (default: "
                   "$CRAWL2CHAT_API_KEY; none: no authentication)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name the server answers to besides localhost, 127.0.0.1, "
                   "[::1] and --host (requests naming others are refused: DNS rebinding); "
                   "repeatable; '*' allows any")
    p.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                   help="larger request bodies get HTTP 413 (default: %(default)s)")
    p.set_defaults(func=_cmd_serve)
