"""The ``homerun`` command: the server processes, token administration, and the API client.

Server subcommands import their modules lazily, so the client commands keep working on a
machine (or in a checkout) where a server module cannot be imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import httpx

import wire
from homerun.client import ApiError, Client, ClientConfig, ConfigError, load_config
from homerun.watch import Watch

if TYPE_CHECKING:
    from databases import Database

__all__ = ["build_parser", "main", "watch_job"]

EXIT_OK = 0
EXIT_FAILED = 1  # the job (or the command) failed
EXIT_USAGE = 2

T = TypeVar("T")


# --- server processes ------------------------------------------------------------------


def _cmd_api(args: argparse.Namespace) -> int:
    from core.server import serve

    serve()
    return EXIT_OK


def _cmd_runner(args: argparse.Namespace) -> int:
    from runners.service import main as runner_main

    runner_main()
    return EXIT_OK


def _cmd_guard(args: argparse.Namespace) -> int:
    from guard.service import main as guard_main

    guard_main()
    return EXIT_OK


def _cmd_notifier(args: argparse.Namespace) -> int:
    from notifier.service import main as notifier_main

    notifier_main()
    return EXIT_OK


def _cmd_plugins(args: argparse.Namespace) -> int:
    import dataclasses

    from core.settings import Settings
    from plugins.manager import describe_plugins, make_plugin_manager

    settings = Settings.from_env()
    plugins = describe_plugins(make_plugin_manager(disabled=settings.disabled_plugins))
    if args.json:
        _print_json([dataclasses.asdict(plugin) for plugin in plugins], sys.stdout)
        return EXIT_OK
    rows = [("PLUGIN", "PACKAGE", "TASK TYPES", "HOOKS")]
    for plugin in plugins:
        package = " ".join(filter(None, (plugin.package, plugin.version))) or "-"
        types = ", ".join(plugin.task_types) or "-"
        rows.append((plugin.name, package, types, ", ".join(plugin.hooks)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for *padded, last in rows:
        cells = (cell.ljust(width + 2) for cell, width in zip(padded, widths, strict=True))
        print("".join(cells) + last)
    if settings.disabled_plugins:
        print(f"disabled (HOMERUN_DISABLED_PLUGINS): {', '.join(settings.disabled_plugins)}")
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from core.migrate import migrate
    from core.settings import Settings

    applied = asyncio.run(migrate(Settings.from_env().database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return EXIT_OK


async def _with_db(action: Callable[[Database], Awaitable[T]]) -> T:
    from databases import Database

    from core.settings import Settings

    db = Database(Settings.from_env().database_url)
    await db.connect()
    try:
        return await action(db)
    finally:
        await db.disconnect()


def _cmd_token(args: argparse.Namespace) -> int:
    from core import tokens

    if args.token_command == "create":
        token_id, plaintext = asyncio.run(
            _with_db(lambda db: tokens.create_token(db, args.name, admin=args.admin))
        )
        print(f"id:    {token_id}")
        print(f"token: {plaintext}")
        print("(the token is shown once; store it now)", file=sys.stderr)
    elif args.token_command == "list":
        for info in asyncio.run(_with_db(tokens.list_tokens)):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
            admin = " admin" if info.is_admin else ""
            kept = "" if info.retention_seconds is None else f" retention={info.retention_seconds}s"
            out = ""
            if info.egress_allow is not None:
                out = f" egress={','.join(info.egress_allow) or 'none'}"
            print(
                f"{info.id}  {info.name:<20} {info.created_at:%Y-%m-%d %H:%M}"
                f"  {state}{admin}{kept}{out}"
            )
    elif args.token_command == "retention":
        return _token_retention(args)
    elif args.token_command == "egress":
        return _token_egress(args)
    else:
        if not asyncio.run(_with_db(lambda db: tokens.revoke_token(db, args.token_id))):
            print(f"homerun: no active token {args.token_id}", file=sys.stderr)
            return EXIT_FAILED
        print(f"revoked {args.token_id}")
    return EXIT_OK


def _token_retention(args: argparse.Namespace) -> int:
    from core import tokens

    try:
        seconds = tokens.parse_retention(args.period)
    except ValueError as exc:
        print(f"homerun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not asyncio.run(_with_db(lambda db: tokens.set_retention(db, args.token_id, seconds))):
        print(f"homerun: no token {args.token_id}", file=sys.stderr)
        return EXIT_FAILED
    what = "the default" if seconds is None else "forever" if seconds == 0 else f"{seconds}s"
    print(f"token {args.token_id}: finished jobs kept {what}")
    return EXIT_OK


def _token_egress(args: argparse.Namespace) -> int:
    from core import tokens
    from core.settings import Settings

    words = [w.strip().lower() for w in args.entries]
    allow: tuple[str, ...] | None
    if words == ["default"]:
        allow = None
    elif words == ["none"]:
        allow = ()
    else:
        try:
            allow = tokens.narrowed_egress(Settings.from_env().egress_allow, args.entries)
        except ValueError as exc:
            print(f"homerun: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if not asyncio.run(_with_db(lambda db: tokens.set_egress(db, args.token_id, allow))):
        print(f"homerun: no token {args.token_id}", file=sys.stderr)
        return EXIT_FAILED
    what = (
        "the operator's whole allow-list"
        if allow is None
        else ", ".join(allow)
        if allow
        else "no egress"
    )
    print(f"token {args.token_id}: egress to {what}")
    return EXIT_OK


def _cmd_rekey_secrets(args: argparse.Namespace) -> int:
    from core.sealing import Keyring
    from core.settings import Settings
    from core.store import secrets as secret_store

    text = Settings.from_env().secrets_keyring
    if not text:
        print("homerun: no keyring (HOMERUN_SECRETS_KEYRING_FILE)", file=sys.stderr)
        return EXIT_USAGE
    keyring = Keyring.parse(text)
    moved = asyncio.run(_with_db(lambda db: secret_store.reseal_all(db, keyring)))
    print(f"re-sealed {moved} secrets under key {keyring.current}")
    return EXIT_OK


def _cmd_secrets_keygen(args: argparse.Namespace) -> int:
    from core.sealing import generate_line

    print(generate_line(args.key_id))
    return EXIT_OK


# --- client commands ---------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    config = load_config()
    if args.url or args.token:
        config = ClientConfig(
            url=(args.url or config.url).rstrip("/"),
            token=args.token or config.token,
            source="command line",
        )
    return Client(config)


def _print_json(value: object, out: TextIO = sys.stdout) -> None:
    """A model (or a list of them) as the API's JSON, indented, keys sorted."""
    out.write(wire.dumps(value, indent=2, sort_keys=True) + "\n")


def _job_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        body: dict[str, Any] = json.loads(text)
    else:
        if args.script is not None:
            task_type, payload = args.type or "shell", {"script": args.script}
        elif args.type:
            task_type, payload = args.type, json.loads(args.payload or "{}")
        else:
            raise ConfigError("give a job file (-f), a --script, or --type with --payload")
        task: dict[str, Any] = {"name": args.task_name, "type": task_type, "payload": payload}
        if args.timeout is not None:
            task["timeout_s"] = args.timeout
        if args.max_attempts is not None:
            task["max_attempts"] = args.max_attempts
        body = {"tasks": [task]}
    if args.name:
        body["name"] = args.name
    if args.label:
        body.setdefault("labels", {}).update(_labels(args.label))
    if args.callback_url:
        body["callback_url"] = args.callback_url
    return body


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"a label is key=value, got {pair!r}")
        labels[key] = value
    return labels


def watch_job(client: Client, job_id: str, out: TextIO, *, show_logs: bool = True) -> int:
    """Follow a job to its end, printing progress and logs; the exit code says how it ended."""
    view = Watch(out, show_logs=show_logs)

    def reconnecting(why: str) -> None:
        out.write(f"(reconnecting: {why})\n")

    for event in client.follow(job_id, on_reconnect=reconnecting):
        view.handle(event)
    return EXIT_OK if view.job_status == "succeeded" else EXIT_FAILED


def _cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(_job_body(args), idempotency_key=args.idempotency_key)
        if not args.watch:
            _print_json(job) if args.json else print(job.id)
            return EXIT_OK
        print(f"submitted job {job.id}", flush=True)
        return watch_job(client, job.id, sys.stdout, show_logs=not args.no_logs)


def _cmd_rerun(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.rerun(args.job_id, failed_only=args.failed)
        if not args.watch:
            _print_json(job) if args.json else print(job.id)
            return EXIT_OK
        taken = [t.name for t in job.tasks if t.reused_from is not None]
        print(f"re-run of {args.job_id}: job {job.id}", flush=True)
        if taken:
            print(f"taken over, not run again: {', '.join(taken)}", flush=True)
        return watch_job(client, job.id, sys.stdout, show_logs=not args.no_logs)


def _schedule_line(schedule: wire.Schedule) -> str:
    state = "paused" if schedule.paused else "active"
    upcoming = schedule.next_fire_times[0].isoformat() if schedule.next_fire_times else "-"
    return (
        f"{schedule.id}  {state:<7} {schedule.cron!r} {schedule.timezone}  next {upcoming}"
        f"  {schedule.name}"
    )


def _cmd_schedule(args: argparse.Namespace) -> int:
    with _client(args) as client:
        action = args.schedule_command
        answer: wire.Schedule | wire.SchedulePage | wire.Job | None = None
        if action == "create":
            body: dict[str, Any] = {
                "name": args.schedule_name,
                "cron": args.cron,
                "timezone": args.timezone,
                "job": _job_body(args),
                "overlap": args.overlap,
                "catchup": args.catchup,
                "paused": args.paused,
            }
            answer = client.create_schedule(body)
        elif action == "list":
            answer = client.list_schedules(limit=args.limit, cursor=args.cursor)
        elif action == "get":
            answer = client.get_schedule(args.schedule_id)
        elif action == "pause":
            answer = client.pause_schedule(args.schedule_id)
        elif action == "resume":
            answer = client.resume_schedule(args.schedule_id)
        elif action == "trigger":
            answer = client.trigger_schedule(args.schedule_id)
        else:  # rm
            client.delete_schedule(args.schedule_id)
            print(f"deleted schedule {args.schedule_id}")
            return EXIT_OK
    if args.json:
        _print_json(answer)
    elif isinstance(answer, wire.Job):
        print(answer.id)
    elif isinstance(answer, wire.SchedulePage):
        for schedule in answer.schedules:
            print(_schedule_line(schedule))
        if answer.next_cursor:
            print(f"(more: --cursor {answer.next_cursor})", file=sys.stderr)
    elif isinstance(answer, wire.Schedule):
        print(_schedule_line(answer))
        if action == "get":
            print(f"  overlap {answer.overlap}, catchup {answer.catchup}")
            for at in answer.next_fire_times:
                print(f"  fires  {at.isoformat()}")
            for tick in answer.recent_ticks:
                what = tick.job_id if tick.job_id else f"skipped: {tick.reason}"
                manual = " (trigger)" if tick.manual else ""
                print(f"  tick   {tick.tick.isoformat()}  {what}{manual}")
    return EXIT_OK


def _cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get_job(args.job_id)
    if args.json:
        _print_json(job)
        return EXIT_OK
    print(f"{job.id}  {job.status}  {job.name or ''}".rstrip())
    if job.rerun_of is not None:
        print(f"  re-run of {job.rerun_of}")
    if job.keep:
        print("  kept (retention never deletes it)")
    for task in job.tasks:
        reused = f"  (taken over from {task.reused_from})" if task.reused_from else ""
        # A task for a runner group says what it waits for (its group may be down).
        waiting = f"  ({task.waiting_for})" if task.runs_on and task.waiting_for else ""
        print(f"  {task.name:<20} {task.status:<10} {task.id}{reused}{waiting}")
        if task.map is not None:  # a map task: its instances by status, never each one
            counts = " ".join(f"{k} {v}" for k, v in sorted(task.map.counts.items()))
            print(f"    map: {task.map.instances} instance(s): {counts or 'none yet'}")
    for rerun in job.reruns:
        print(f"  re-run as {rerun}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.list_jobs(
            status=args.status,
            labels=_labels(args.label or []),
            limit=args.limit,
            cursor=args.cursor,
            schedule=args.schedule,
        )
    if args.json:
        _print_json(page)
        return EXIT_OK
    for job in page.jobs:
        print(f"{job.id}  {job.status:<10} {job.created_at.isoformat()}  {job.name or ''}".rstrip())
    if page.next_cursor:
        print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    return EXIT_OK


def _cmd_logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get_job(args.job_id)
        tasks = [t for t in job.tasks if args.task in (None, t.name, t.id)]
        if args.task and not tasks:
            raise ConfigError(f"job {args.job_id} has no task {args.task!r}")
        if args.follow:
            wanted = {t.id for t in tasks}
            names = {t.id: t.name for t in job.tasks}
            for event in client.follow(args.job_id):
                if event.event == "task.log":
                    line = event.json()
                    if line["task_id"] in wanted:
                        print(f"{names.get(line['task_id'], '?')} | {line['line']}", flush=True)
            return EXIT_OK
        for task in tasks:
            if args.attempt is None:
                result = client.get_task(args.job_id, task.id).result
                print(f"== {task.name} ({task.status})")
            else:
                attempt = client.get_attempt(args.job_id, task.id, args.attempt)
                result = attempt.result
                print(f"== {task.name} attempt {attempt.number} ({attempt.status})")
            if result is None:
                continue
            for text, truncated, stream in (
                (result.stdout, result.stdout_truncated, "stdout"),
                (result.stderr, result.stderr_truncated, "stderr"),
            ):
                if text:
                    sys.stdout.write(text if text.endswith("\n") else text + "\n")
                if truncated:
                    print(f"[{stream} truncated]")
    return EXIT_OK


def _cmd_instances(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get_job(args.job_id)
        task = next((t for t in job.tasks if args.task in (t.name, t.id)), None)
        if task is None:
            print(f"homerun: job {job.id} has no task {args.task!r}", file=sys.stderr)
            return EXIT_USAGE
        page = client.instances(
            job.id, task.id, status=args.status, limit=args.limit, cursor=args.cursor
        )
    if args.json:
        _print_json(page)
        return EXIT_OK
    for instance in page.instances:
        error = f"  {instance.error}" if instance.error else ""
        print(f"  {instance.name:<20} {instance.status:<10} {instance.id}{error}")
    if page.next_cursor:
        print(f"  more: --cursor {page.next_cursor}")
    return EXIT_OK


def _task_of(job: wire.Job, wanted: str) -> wire.Task | None:
    return next((t for t in job.tasks if wanted in (t.name, t.id)), None)


def _cmd_artifacts(args: argparse.Namespace) -> int:
    """``artifacts JOB [TASK] [-o DIR]`` lists (or downloads all); ``artifacts get JOB TASK
    PATH [-o FILE]`` downloads one (to stdout without -o)."""
    words: list[str] = args.words
    fetch_one = words[0] == "get"
    if fetch_one:
        words = words[1:]
    if (fetch_one and len(words) != 3) or (not fetch_one and not 1 <= len(words) <= 2):
        print(
            "homerun: usage: homerun artifacts JOB [TASK] [-o DIR]"
            " | homerun artifacts get JOB TASK PATH [-o FILE]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with _client(args) as client:
        job = client.get_job(words[0])
        tasks = list(job.tasks)
        if len(words) > 1:
            task = _task_of(job, words[1])
            if task is None:
                print(f"homerun: job {job.id} has no task {words[1]!r}", file=sys.stderr)
                return EXIT_USAGE
            tasks = [task]
        if fetch_one:
            return _download_one(client, job.id, tasks[0], words[2], args.output)
        listed = [(task, client.list_artifacts(job.id, task.id)) for task in tasks]
        if args.json:
            _print_json([artifacts for _, artifacts in listed])
        elif args.output is None:
            for task, artifacts in listed:
                for item in artifacts.artifacts:
                    print(f"{task.name:<16} {item.size:>12} {item.sha256[:16]}  {item.path}")
                for refused in artifacts.refused:
                    print(
                        f"{task.name:<16} {'refused':>12} {'':16}  {refused.path}: {refused.reason}"
                    )
        if args.output is not None:
            return _download_all(client, job.id, listed, Path(args.output), several=len(tasks) > 1)
    return EXIT_OK


def _download_one(
    client: Client, job_id: str, task: wire.Task, path: str, output: str | None
) -> int:
    if output is None or output == "-":
        client.download_artifact(job_id, task.id, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return EXIT_OK
    target = Path(output)
    with target.open("wb") as out:
        digest = client.download_artifact(job_id, task.id, path, out)
    print(f"{target} ({target.stat().st_size} bytes, sha256 {digest})")
    return EXIT_OK


def _download_all(
    client: Client,
    job_id: str,
    listed: list[tuple[wire.Task, wire.ArtifactList]],
    root: Path,
    *,
    several: bool,
) -> int:
    """Each artifact under ``root`` (``root/<task>/`` when several tasks), sha256 checked."""
    for task, artifacts in listed:
        base = root / task.name if several else root
        for item in artifacts.artifacts:
            target = base / item.path
            if base.resolve() not in target.resolve().parents:
                print(f"homerun: refusing to write {item.path!r} outside {base}", file=sys.stderr)
                return EXIT_FAILED
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                digest = client.download_artifact(job_id, task.id, item.path, out)
            if digest != item.sha256:
                print(f"homerun: {target}: sha256 {digest}, listed {item.sha256}", file=sys.stderr)
                return EXIT_FAILED
            print(f"{target} ({item.size} bytes, sha256 ok)")
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
    print(f"cancel requested for {args.job_id} ({job.status})")
    return EXIT_OK


def _cmd_keep(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.set_keep(args.job_id, not args.off)
    if args.json:
        _print_json(job)
    elif job.keep:
        print(f"job {job.id}: kept (retention never deletes it)")
    else:
        print(f"job {job.id}: not kept (deleted once its token's retention period has passed)")
    return EXIT_OK


def _secret_value(args: argparse.Namespace) -> str:
    if args.from_file:
        return Path(args.from_file).read_text(encoding="utf-8")
    # From stdin (a pipe, or typed): the newline that ends `echo value |` is not the value's.
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value


def _cmd_secret(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.secret_command == "set":
            info = client.put_secret(args.secret_name, _secret_value(args))
            if args.json:
                _print_json(info)
            else:
                print(f"{info.name} set (key {info.key_id})")
        elif args.secret_command == "list":
            listed = client.list_secrets()
            if args.json:
                _print_json(listed)
            for item in [] if args.json else listed.secrets:
                print(f"{item.name:<32} updated {item.updated_at:%Y-%m-%d %H:%M:%S}")
        else:
            client.delete_secret(args.secret_name)
            print(f"removed {args.secret_name}")
    return EXIT_OK


def _cmd_task_types(args: argparse.Namespace) -> int:
    with _client(args) as client:
        types = client.task_types()
    if args.json:
        _print_json(types)
        return EXIT_OK
    for item in types.task_types:
        print(f"{item.name:<16} {item.description}")
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homerun", description="homerun job pipeline")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("api", help="run the HTTP API").set_defaults(func=_cmd_api)
    sub.add_parser("runner", help="run a task runner").set_defaults(func=_cmd_runner)
    sub.add_parser(
        "guard", help="run the Docker API guard (the runner's only way to the engine)"
    ).set_defaults(func=_cmd_guard)
    sub.add_parser("notifier", help="relay events and deliver webhooks").set_defaults(
        func=_cmd_notifier
    )
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_cmd_migrate)
    plugins = sub.add_parser("plugins", help="list the loaded plugins: versions, task types, hooks")
    plugins.add_argument("--json", action="store_true", help="print them as JSON")
    plugins.set_defaults(func=_cmd_plugins)

    token = sub.add_parser("token", help="manage API tokens (talks to the database)")
    token.set_defaults(func=_cmd_token)
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true")
    token_sub.add_parser("list")
    revoke = token_sub.add_parser("revoke")
    revoke.add_argument("token_id")
    retention = token_sub.add_parser(
        "retention", help="how long the token's finished jobs are kept (its own period)"
    )
    retention.add_argument("token_id")
    retention.add_argument(
        "period", help="default (HOMERUN_RETENTION_SECONDS), forever, or e.g. 90d, 12h, 3600"
    )

    token_egress = token_sub.add_parser(
        "egress", help="narrow the token's network egress to part of the operator's allow-list"
    )
    token_egress.add_argument("token_id")
    token_egress.add_argument(
        "entries",
        nargs="+",
        metavar="ENTRY",
        help="default (the operator's whole HOMERUN_EGRESS_ALLOW), none (no egress), or"
        " entries inside it: host, host:port, *.domain[:port]",
    )

    rekey = sub.add_parser(
        "rekey-secrets",
        help="re-seal every secret under the keyring's current key (talks to the database)",
    )
    rekey.set_defaults(func=_cmd_rekey_secrets)
    keygen = sub.add_parser("secrets-keygen", help="print a new keyring line for KEY_ID")
    keygen.add_argument("key_id")
    keygen.set_defaults(func=_cmd_secrets_keygen)

    def client_command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        within: Any = sub,
    ) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = within.add_parser(name, help=help)
        cmd.add_argument("--url", help="API base URL (default: HOMERUN_URL or .homerun/env)")
        cmd.add_argument("--token", help="API token (default: HOMERUN_TOKEN or .homerun/env)")
        cmd.add_argument("--json", action="store_true", help="print the answer as JSON")
        cmd.set_defaults(func=func)
        return cmd

    def job_body_arguments(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("-f", "--file", help="a job body as JSON (- for stdin)")
        cmd.add_argument("--type", help="task type of a one-task job")
        cmd.add_argument("--payload", help="task payload as JSON (with --type)")
        cmd.add_argument("--script", help="shorthand for a one-task shell job")
        cmd.add_argument("--task-name", default="main", help="name of the one task")
        cmd.add_argument("--timeout", type=int, help="task time-out in seconds")
        cmd.add_argument("--max-attempts", type=int)
        cmd.add_argument("--label", action="append", help="key=value (repeatable)")
        cmd.add_argument("--callback-url", help="webhook for the job's terminal state")

    submit = client_command("submit", _cmd_submit, "submit a job")
    job_body_arguments(submit)
    submit.add_argument("--name", help="job name")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--watch", action="store_true", help="follow the job live")
    submit.add_argument("--no-logs", action="store_true", help="with --watch: hide task logs")

    get = client_command("get", _cmd_get, "show a job and its tasks")
    get.add_argument("job_id")

    listing = client_command("list", _cmd_list, "list jobs, newest first")
    listing.add_argument(
        "--status", action="append", help="queued, running, ... (repeatable: any of them)"
    )
    listing.add_argument("--label", action="append", help="key=value (repeatable: all of them)")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor")
    listing.add_argument("--schedule", metavar="ID", help="only the jobs this schedule fired")

    logs = client_command("logs", _cmd_logs, "show task output")
    logs.add_argument("job_id")
    logs.add_argument("task", nargs="?", help="task name or id (default: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream live output")
    logs.add_argument(
        "--attempt", type=int, metavar="N", help="that attempt's output (default: the latest)"
    )

    rerun = client_command("rerun", _cmd_rerun, "run a job again, as a new job")
    rerun.add_argument("job_id")
    rerun.add_argument(
        "--failed",
        action="store_true",
        help="only what did not succeed (and its dependents); succeeded tasks are taken over",
    )
    rerun.add_argument("--watch", action="store_true", help="follow the new job live")
    rerun.add_argument("--no-logs", action="store_true", help="with --watch: hide task logs")

    instances = client_command("instances", _cmd_instances, "list a map task's instances")
    instances.add_argument("job_id")
    instances.add_argument("task", help="the map task's name or id")
    instances.add_argument("--status", action="append", help="queued, running, ... (repeatable)")
    instances.add_argument("--limit", type=int)
    instances.add_argument("--cursor")

    artifacts = client_command(
        "artifacts",
        _cmd_artifacts,
        "list a job's artifacts (JOB [TASK]), download them (-o DIR), or one"
        " (get JOB TASK PATH [-o FILE])",
    )
    artifacts.add_argument("words", nargs="+", metavar="JOB [TASK] | get JOB TASK PATH")
    artifacts.add_argument(
        "-o", "--output", metavar="DIR|FILE", help="download into DIR (or FILE with get; - stdout)"
    )

    cancel = client_command("cancel", _cmd_cancel, "cancel a job")
    cancel.add_argument("job_id")

    keep = client_command("keep", _cmd_keep, "keep a job from retention (or, --off, no longer)")
    keep.add_argument("job_id")
    keep.add_argument(
        "--off", action="store_true", help="let the job expire with its token's period again"
    )

    client_command("task-types", _cmd_task_types, "list the registered task types")

    schedule = sub.add_parser("schedule", help="jobs fired on a cron")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True)
    screate = client_command("create", _cmd_schedule, "create a schedule", schedule_sub)
    screate.add_argument("schedule_name", metavar="NAME", help="unique among the token's")
    screate.add_argument("--cron", required=True, help="5 fields, or @hourly, @daily, ...")
    screate.add_argument("--timezone", default="UTC", help="an IANA zone (default UTC)")
    screate.add_argument("--overlap", choices=["allow", "forbid", "replace"], default="allow")
    screate.add_argument("--catchup", choices=["none", "latest", "all"], default="none")
    screate.add_argument("--paused", action="store_true", help="create it paused")
    job_body_arguments(screate)
    screate.set_defaults(name=None)  # the job's name (_job_body): the body's own, if any
    slist = client_command("list", _cmd_schedule, "list schedules, newest first", schedule_sub)
    slist.add_argument("--limit", type=int)
    slist.add_argument("--cursor")
    for action, help in [
        ("get", "a schedule, its next fire times and its newest ticks"),
        ("pause", "pause (its ticks are recorded as skipped)"),
        ("resume", "resume a paused schedule"),
        ("trigger", "a job now, as a manual tick"),
        ("rm", "delete a schedule (its jobs stay)"),
    ]:
        client_command(action, _cmd_schedule, help, schedule_sub).add_argument("schedule_id")

    secret = sub.add_parser("secret", help="a token's secrets for its tasks (/run/secrets/NAME)")
    secret_sub = secret.add_subparsers(dest="secret_command", required=True)
    sset = client_command("set", _cmd_secret, "create or replace a secret", secret_sub)
    sset.add_argument("secret_name", metavar="NAME")
    sset.add_argument("--from-file", metavar="F", help="the value is this file (default: stdin)")
    client_command("list", _cmd_secret, "the token's secrets (names, never values)", secret_sub)
    srm = client_command("rm", _cmd_secret, "delete a secret", secret_sub)
    srm.add_argument("secret_name", metavar="NAME")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ApiError as exc:
        print(f"homerun: {exc}", file=sys.stderr)
        if exc.details:
            _print_json(exc.details, sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"homerun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except httpx.HTTPError as exc:
        print(f"homerun: cannot reach the API: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (json.JSONDecodeError, OSError) as exc:
        print(f"homerun: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
