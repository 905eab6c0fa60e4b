"""`serac-serve`: serve a saved editor over HTTP.

    SERAC_SERVE_TOKEN=... serac-serve outputs/demo/train/editor --port 8000
    serac-serve EDITOR --token-file token.txt --open-reads --upstream http://gpu-box:8000/v1

The editor's kind is read from the folder (`editor.json`); any editor of the project serves.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import torch
import uvicorn

from serac.core.memory_editor import MemoryEditor
from serac.core.registry import editor_class
from serac.core.saving import saved_editor_name
from serac.server.app import create_app
from serac.server.auth import TOKEN_ENV, TokenError, read_token
from serac.server.settings import ServerSettings

UPSTREAM_KEY_ENV = "SERAC_UPSTREAM_API_KEY"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="serac-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parse.add_argument("editor", type=Path, help="a saved editor folder (any kind: serac, cache, mend, ft, rome, memit, ...)")
    parse.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parse.add_argument("--port", type=int, default=8000)
    parse.add_argument("--token-file", type=Path, help=f"file whose first line is the bearer token (else ${TOKEN_ENV})")
    parse.add_argument("--open-reads", action="store_true", help="answer queries and list edits without a token (edits still need it)")
    parse.add_argument("--upstream", help="OpenAI base URL (with /v1) of a server that answers as the base model")
    parse.add_argument("--upstream-model", help="the model to ask the upstream for (default: the first it lists)")
    parse.add_argument("--model-id", default="", help="the model name clients use (default: the editor folder's name)")
    parse.add_argument("--device", help="cpu, cuda, ... (default: the editor's choice)")
    parse.add_argument("--max-batch", type=int, default=16, help="most prompts per call of the model")
    parse.add_argument("--batch-window-ms", type=float, default=5.0, help="how long a query waits for others to batch with")
    parse.add_argument("--max-tokens", type=int, default=256, help="the largest max_tokens a request may ask for")
    parse.add_argument("--max-body-bytes", type=int, default=1_000_000)
    parse.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    return parse


def serve_main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServerSettings(
            editor_path=args.editor,
            token=read_token(args.token_file),
            model_id=args.model_id,
            open_reads=args.open_reads,
            max_body_bytes=args.max_body_bytes,
            max_tokens=args.max_tokens,
            max_batch=args.max_batch,
            batch_window_ms=args.batch_window_ms,
            upstream_url=args.upstream,
            upstream_model=args.upstream_model,
            upstream_api_key=os.environ.get(UPSTREAM_KEY_ENV) or None,
        )
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        editor = editor_class(saved_editor_name(args.editor)).load(args.editor, device=args.device)
    except (TokenError, ValueError, OSError) as error:
        sys.exit(f"serac-serve: {error}")
    try:
        app = create_app(editor, settings)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    except ValueError as error:
        sys.exit(f"serac-serve: {error}")
    finally:
        if isinstance(editor, MemoryEditor):
            editor.close()
