"""Commands of the web app: serve it, and manage its users from the command line."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from oversight.cli.common import DbOpt, JsonOpt, app, console, err, user_errors

users_app = typer.Typer(help="Users of the web app: add, list, change roles, make API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")

RoleOpt = Annotated[str, typer.Option("--role", help="admin (manages users) | reviewer (labels) | viewer (reads)")]


@app.command("web")
def web_command(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="directory of eval runs for the Runs page")] = Path("runs"),
    lock_minutes: Annotated[float, typer.Option(help="how long a claimed queue item stays with its reviewer")] = 10.0,
    session_hours: Annotated[float, typer.Option(help="sessions end this long after sign-in")] = 12.0,
    batch_size: Annotated[int, typer.Option(help="items the queue draws per batch")] = 20,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="send cookies over HTTPS only (behind TLS)")] = False,
) -> None:
    """Serve the web app: dashboard, transcripts, review queue, eval runs and the JSON API."""
    import uvicorn

    from oversight.store import accounts, open_store
    from oversight.web import WebSettings, create_app

    with user_errors():
        store = open_store(db)
        if accounts.count_users(store) == 0:
            err.print("[yellow]no users yet[/]: create the first admin with [bold]oversight users add NAME --role admin[/]" + (f" --db {db}" if db else ""))
        settings = WebSettings(
            runs_dir=runs_dir,
            lock_for=timedelta(minutes=lock_minutes),
            session_lifetime=timedelta(hours=session_hours),
            batch_size=batch_size,
            secure_cookies=secure_cookies,
        )
        application = create_app(store, settings)
        application.state.ctx.cache.warm_in_background()  # a large store's aggregates, before the first visitor
        console.print(f"oversight web on [bold]http://{host}:{port}/[/] · store {store.url} · runs {runs_dir}")
        try:
            uvicorn.run(application, host=host, port=port, log_level="warning", proxy_headers=False)
        finally:
            store.close()


def _password(stdin: bool) -> str:
    if stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def _user_json(user: Any) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "active": user.active, "created_at": user.created_at.isoformat()}


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="user name (letters, digits, _.@-)")],
    role: RoleOpt = "reviewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from the first line of stdin")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a user (the first one should be an admin). The password is asked for, or read from stdin."""
    from oversight.store import accounts, open_store

    with user_errors():
        accounts.check_name(name)
        accounts.check_role(role)
        password = _password(password_stdin)
        with open_store(db) as store:
            user = accounts.add_user(store, name, password, role)
        if json_out:
            print(json.dumps(_user_json(user)))
        else:
            console.print(f"added [bold]{user.name}[/] ({user.role})")


@users_app.command("list")
def users_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List users and their roles."""
    from oversight.store import accounts, open_store

    with user_errors(), open_store(db) as store:
        users = accounts.list_users(store)
    if json_out:
        print(json.dumps({"users": [_user_json(u) for u in users]}))
        return
    if not users:
        console.print("no users; add one with [bold]oversight users add NAME --role admin[/]")
    for u in users:
        console.print(f"{u.name:<24} {u.role:<9} {'active' if u.active else 'disabled':<9} since {u.created_at:%Y-%m-%d}")


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[str, typer.Argument(help="admin | reviewer | viewer")],
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a user's role (recorded in the audit log)."""
    from oversight.store import accounts, open_store

    with user_errors(), open_store(db) as store:
        user = accounts.set_role(store, name, role)
    if json_out:
        print(json.dumps(_user_json(user)))
    else:
        console.print(f"{user.name} is now {user.role}")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="the user the token acts as")],
    label: Annotated[str, typer.Option("--name", help="what the token is for")] = "cli",
    expires_days: Annotated[int | None, typer.Option(help="days until it expires (default: never)")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make an API token for scripts (sent as Authorization: Bearer …); it is printed once."""
    from oversight.store import accounts, open_store

    with user_errors(), open_store(db) as store:
        expires = None if expires_days is None else timedelta(days=expires_days)
        secret, info = accounts.create_token(store, name, label, expires_in=expires)
    if json_out:
        print(json.dumps({"token": secret, "user": info.user, "name": info.name, "id": info.id, "expires_at": info.expires_at.isoformat() if info.expires_at else None}))
        return
    err.print(f"API token [bold]{info.name}[/] for {info.user} (shown once; keep it secret):")
    print(secret)
