"""`taskscope-visualize [DB]`: serve the dashboard over a monitoring database."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from taskscope.store.readonly import DatabaseNotFound, locate_database, open_readonly

ALL_INTERFACES = "0.0.0.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskscope-visualize",
        description="Serve a web dashboard over a taskscope or Parsl monitoring database.",
    )
    parser.add_argument(
        "database",
        nargs="?",
        default=None,
        help="sqlite:///relative.db, sqlite:////absolute/path.db or a path (default: "
        "./monitoring.db, else ./runinfo/monitoring.db)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port to listen on (default 8080; 0 picks a free port)",
    )
    parser.add_argument(
        "--listen",
        nargs="?",
        const=ALL_INTERFACES,
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to listen on (default 127.0.0.1; --listen alone means all interfaces)",
    )
    parser.add_argument(
        "--show-files",
        action="store_true",
        help="on a non-loopback --listen address, still show the last lines of tasks' "
        "stdout/stderr files (always shown when listening on loopback)",
    )
    parser.add_argument(
        "--no-token",
        action="store_true",
        help="serve without the access token (anyone who reaches the address can read the "
        "dashboard, including every user of this machine on 127.0.0.1)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="take the access token from PATH (made, mode 0600, if missing): the same token "
        "across restarts, for scrapers and scripts",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return parser


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a network interface


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(
            f"taskscope-visualize: --port must be between 0 and 65535, not {args.port}",
            file=sys.stderr,
        )
        return 2
    try:
        located = locate_database(args.database, Path.cwd())
        open_readonly(located.path).close()
    except DatabaseNotFound as exc:
        print(f"taskscope-visualize: {exc}", file=sys.stderr)
        return 1
    from taskscope.visualize.app import create_app
    from taskscope.visualize.listen import ListenError, bind_listener, bound_port
    from taskscope.visualize.serve import serve
    from taskscope.visualize.token import TokenFileError, new_token, token_from_file

    if args.no_token and args.token_file:
        print(
            "taskscope-visualize: --no-token and --token-file contradict each other",
            file=sys.stderr,
        )
        return 2
    try:
        token = (
            None
            if args.no_token
            else (token_from_file(args.token_file) if args.token_file else new_token())
        )
    except TokenFileError as exc:
        print(f"taskscope-visualize: {exc}", file=sys.stderr)
        return 1
    try:  # before any address is printed: a taken port must not send the user elsewhere
        sock = bind_listener(args.listen, args.port)
    except ListenError as exc:
        print(f"taskscope-visualize: {exc}", file=sys.stderr)
        return 1
    args.port = bound_port(sock)
    print(f"taskscope-visualize: {located.how} (read-only)")
    if args.listen in (ALL_INTERFACES, "::"):
        print(
            "taskscope-visualize: WARNING: listening on all interfaces; the dashboard is "
            "reachable from the network. Prefer the default 127.0.0.1 with an SSH tunnel "
            "(ssh -L 8080:127.0.0.1:8080 host).",
            file=sys.stderr,
        )
    if token is None:
        print(
            "taskscope-visualize: WARNING: --no-token: anyone who can reach "
            f"{args.listen}:{args.port} can read this dashboard (on 127.0.0.1 that is every "
            "user of this machine).",
            file=sys.stderr,
        )
    show_files = args.show_files or is_loopback(args.listen)
    if not show_files:
        print(
            "taskscope-visualize: task pages will not show the contents of stdout/stderr "
            "files because the dashboard is reachable from the network; pass --show-files "
            "to show them anyway.",
            file=sys.stderr,
        )
    shown_host = "127.0.0.1" if args.listen in (ALL_INTERFACES, "::") else args.listen
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    query = f"?token={token}" if token else ""
    print(
        f"taskscope-visualize: open http://{shown_host}:{args.port}/{query} in a browser",
        flush=True,
    )
    app = create_app(
        located.path,
        debug=args.debug,
        show_files=show_files,
        token=token,
        loopback_hosts_only=is_loopback(args.listen),
        compile_templates=True,
    )
    try:
        serve(
            app,
            host=args.listen,
            port=args.port,
            log_level="debug" if args.debug else "warning",
            sock=sock,
        )
    except (OSError, SystemExit) as exc:
        if isinstance(exc, SystemExit) and not exc.code:
            return 0
        print(
            f"taskscope-visualize: could not listen on {args.listen}:{args.port} ({exc})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
