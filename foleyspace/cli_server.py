"""CLI commands around the job server: ``serve``, ``submit``, ``status``, ``cancel``, ``jobs``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from foleyspace.errors import FoleySpaceError


def add_server_commands(sub: argparse._SubParsersAction, spatialize_args) -> None:
    """Register the server subcommands; ``spatialize_args(parser)`` adds the job options."""
    sp = sub.add_parser("serve", help="run the job server (hosts the pipeline; editors talk to it)")
    sp.add_argument("--bind", default=None, help="ZeroMQ endpoint (default tcp://127.0.0.1:5571)")
    sp.add_argument("--workers", type=int, default=1, help="worker processes, one job each at a time (default 1)")
    sp.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (for model backends)")
    sp.add_argument("--root", action="append", type=Path, default=None, metavar="DIR",
                    help="folder jobs may read and write (repeatable; default: home and temp folders)")
    sp.add_argument("--max-queued", type=int, default=256, help="queued jobs before refusing more")
    sp.add_argument("--allow-remote", action="store_true", help="permit a non-loopback --bind")
    sp.add_argument("--job-timeout", type=float, default=6 * 3600.0, metavar="S",
                    help="stop a job that runs longer than this (seconds, default 21600)")
    sp.add_argument("--stall-timeout", type=float, default=1800.0, metavar="S",
                    help="stop a job that reports no progress for this long (seconds, default 1800)")

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", metavar="ADDR", help="server address (default: the running server's)")
        p.add_argument("--timeout", type=float, default=3.0, help="seconds per request attempt (default 3)")

    su = sub.add_parser("submit", help="queue a spatialize job on the server")
    spatialize_args(su)
    su.add_argument("--wait", action="store_true",
                    help="show progress until the job ends (exit 0 done, 2 failed or cancelled; "
                         "Ctrl-C stops waiting, exit 130, the job goes on)")
    su.add_argument("--json", action="store_true",
                    help='print JSON: {"job": ID}, with --wait the final status (as status --json)')
    client_args(su)
    st = sub.add_parser("status", help="show a job's state")
    st.add_argument("job")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    client_args(st)
    ca = sub.add_parser("cancel", help="cancel a queued or running job")
    ca.add_argument("job")
    ca.add_argument("--json", action="store_true", help='print the reply as JSON: {"job": ID, "state": STATE}')
    client_args(ca)
    jb = sub.add_parser("jobs", help="list recent jobs")
    jb.add_argument("--limit", type=int, default=20)
    jb.add_argument("--json", action="store_true", help="print JSON")
    client_args(jb)


def run_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from foleyspace.device import resolve_device
    from foleyspace.protocol import DEFAULT_ADDRESS
    from foleyspace.server.app import JobServer, ServerConfig

    if args.device != "auto":  # a GPU that is not there: one line now, not a failure per job
        resolve_device(args.device)  # ('auto' is resolved by each worker: no PyTorch import here)

    config = ServerConfig(bind=args.bind or DEFAULT_ADDRESS, workers=args.workers, device=args.device,
                          max_queued=args.max_queued, allow_remote=args.allow_remote,
                          job_timeout_s=args.job_timeout, stall_timeout_s=args.stall_timeout)
    if args.root:
        missing = [r for r in args.root if not r.is_dir()]
        if missing:
            raise FoleySpaceError(f"--root {missing[0]}: not a folder")
        config = replace(config, roots=tuple(r.resolve() for r in args.root))
    if not logging.getLogger().isEnabledFor(logging.WARNING):
        logging.getLogger().setLevel(logging.WARNING)
    server = JobServer(config)
    print(f"foleyspace server listening on {server.address} (state in {server.home})", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        print("foleyspace server stopped", file=sys.stderr)
    return 0


def _client(args: argparse.Namespace):
    from foleyspace.client import Client

    return Client(args.server, timeout=args.timeout)


#: Envelope fields of a reply (protocol version, request id, success flag): not part of the job.
_ENVELOPE = ("v", "re", "ok")


def _body(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply without its envelope: a status as ``jobs --json`` lists it, a cancel's job and state."""
    return {k: v for k, v in reply.items() if k not in _ENVELOPE}


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1), flush=True)


def _describe(status: dict[str, Any]) -> str:
    line = f"{status['job']}  {status['state']:<9}  {status.get('video') or ''}"
    if "progress" in status:
        line += f"  [{status['progress']['stage']} {status['progress']['fraction'] * 100:.0f}%]"
    if "error" in status:
        line += f"  {status['error']['code']}: {status['error']['message']}"
    if "result" in status and status["result"]:
        line += f"  -> {status['result'].get('stem')}"
    return line


def run_submit(args: argparse.Namespace, spec: dict[str, Any], quiet: bool) -> int:
    """Queue ``spec`` on the server, which validates it against its own backends (plug-ins
    installed only there included); ``--wait`` shows progress until the job ends.

    With ``--json`` stdout holds one JSON value only: ``{"job": id}``, or with ``--wait`` the
    final status (progress stays on stderr). Ctrl-C while waiting leaves the job to the server:
    one line on stderr naming it, exit 130.
    """
    from foleyspace.client import ClientError
    from foleyspace.console import StageProgress

    as_json = getattr(args, "json", False)
    client = _client(args)
    jid: str | None = None
    bar = None
    try:
        jid = client.submit(spec)
        if not args.wait:
            if as_json:
                _print_json({"job": jid})
            else:
                print(jid, flush=True)
            return 0
        if not as_json:  # with --json the final status names the job
            print(jid, flush=True)
        bar = None if quiet else StageProgress()

        def on_event(event: dict[str, Any]) -> None:
            if bar is not None and event.get("event") == "progress":
                bar(event["stage"], event["fraction"])

        final = _body(client.wait(jid, on_event=on_event))
        if bar is not None:
            bar.finish()
    except ClientError as exc:
        raise FoleySpaceError(str(exc)) from exc
    except KeyboardInterrupt:
        if jid is None:  # interrupted before the server named the job: the generic "interrupted"
            raise
        if bar is not None and bar.tty and bar.stage is not None:
            sys.stderr.write("\n")  # end the bar's line; its stage did not finish
        server = f" --server {args.server}" if args.server else ""
        print(f"foleyspace: stopped waiting; job {jid} goes on on the server "
              f"(foleyspace status {jid}{server}, foleyspace cancel {jid}{server})", file=sys.stderr, flush=True)
        return 130
    finally:
        client.close()
    if as_json:
        _print_json(final)
    if final["state"] == "done":
        if not as_json:
            print(f"wrote {final['result']['stem']}")
        return 0
    error = final.get("error") or {"code": final["state"], "message": f"the job was {final['state']}"}
    print(f"foleyspace: error: job {jid} {final['state']}: {error['message']}", file=sys.stderr)
    return 2


def run_client_command(args: argparse.Namespace) -> int:
    from foleyspace.client import ClientError

    client = _client(args)
    try:
        if args.command == "status":
            status = _body(client.status(args.job))
            if args.json:
                _print_json(status)
            else:
                print(_describe(status))
        elif args.command == "cancel":
            reply = _body(client.cancel(args.job))
            if args.json:
                _print_json(reply)
            else:
                print(f"{reply['job']}  {reply['state']}{' (cancelling)' if reply['state'] == 'running' else ''}")
        else:
            jobs = client.jobs(args.limit)
            if args.json:
                _print_json(jobs)
            else:
                for status in jobs:
                    print(_describe(status))
    except ClientError as exc:
        raise FoleySpaceError(str(exc)) from exc
    finally:
        client.close()
    return 0
