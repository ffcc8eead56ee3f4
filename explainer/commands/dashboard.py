"""`explainer dashboard`: launch the Streamlit app."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from explainer.cli import print_json
from explainer.commands._options import add_json_option
from explainer.errors import ExplainerError

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("dashboard", help="launch the Streamlit dashboard")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--headless", action="store_true", help="do not open a browser")
    add_json_option(parser)  # prints {"url", "command"} before the server starts
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    if not APP.is_file():
        raise ExplainerError(f"Dashboard app not found at {APP}; run from a clone of the repository.")
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(args.port), "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]
    if args.headless:
        command += ["--server.headless", "true"]
    if args.json:
        print_json({"url": f"http://localhost:{args.port}", "command": command})
        sys.stdout.flush()
    return subprocess.call(command)
