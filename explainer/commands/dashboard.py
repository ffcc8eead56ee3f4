"""`explainer dashboard`: launch the Streamlit app, on 127.0.0.1 unless told otherwise.

The dashboard can read uploaded files and run models, so by default it listens on the
loopback interface only; ``--host 0.0.0.0`` (or another address) serves others and prints a
warning. On POSIX the command *becomes* the Streamlit server (``exec``), so ending it (Ctrl-C,
SIGTERM, closing the terminal) ends the server: no child is left serving.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from explainer.errors import ExplainerError, InputError

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
#: Addresses that reach only this machine.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("dashboard", help="launch the Streamlit dashboard (on 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves the network)")
    parser.add_argument("--headless", action="store_true", help="do not open a browser")
    parser.set_defaults(func=run)


def streamlit_command(host: str, port: int, *, headless: bool) -> list[str]:
    """The ``python -m streamlit run`` command line for the dashboard on ``host:port``."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InputError(f"--port must be from 1 to 65535, got {port!r}.")
    if not host or any(char.isspace() for char in host):
        raise InputError(f"--host must be an address such as 127.0.0.1, got {host!r}.")
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port), "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--browser.serverAddress", "localhost" if host in LOOPBACK else host,
    ]
    if headless:
        command += ["--server.headless", "true"]
    return command


def run(args: argparse.Namespace) -> int:
    """Run the subcommand: replace this process by the Streamlit server (POSIX), or wait for it."""
    if not APP.is_file():
        raise ExplainerError(f"Dashboard app not found at {APP}; run from a clone of the repository.")
    command = streamlit_command(args.host, args.port, headless=args.headless)
    if args.host not in LOOPBACK:
        print(
            f"explainer dashboard: warning: serving on {args.host}:{args.port} – anyone who can reach this machine "
            "can upload files and run models on it. Use only on a trusted network; the default 127.0.0.1 serves "
            "this machine alone.",
            file=sys.stderr,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(sys.executable, command)  # this process becomes the server: its signals end the server
    return subprocess.call(command)  # pragma: no cover - Windows: Ctrl-C reaches the whole console group
