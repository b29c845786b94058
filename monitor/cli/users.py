"""``user add|list|remove|password``: the admin side's users (passwords kept only as scrypt hashes)."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monitor.cli.common import EXIT_OK, UsageError, load

if TYPE_CHECKING:  # the database layer is imported by the user commands only, not by every genstatus start
    from sqlalchemy.orm import Session

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def add_user_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("user", parents=[common], help="admin users of the status page's /admin side",
                       description="Add, list and remove the users who may sign in at /admin.")
    user_sub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    q = user_sub.add_parser("add", parents=[common], help="add a user (the password is asked for twice)",
                            description="Add an admin user. The password is asked for twice without echo, or read "
                                        "as one line from standard input with --password-stdin. Exit 2 when the "
                                        "name is taken or the password is empty or short.")
    q.add_argument("name", help="user name (letters, digits, . _ @ -; at most 64)")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input (one line)")
    q.set_defaults(func=cmd_user_add)
    q = user_sub.add_parser("password", parents=[common], help="set a new password for a user",
                            description="Set a new password; the user's open sessions end.")
    q.add_argument("name", help="user name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input (one line)")
    q.set_defaults(func=cmd_user_password)
    q = user_sub.add_parser("list", parents=[common], help="list the users", description="List the admin users.")
    q.set_defaults(func=cmd_user_list)
    q = user_sub.add_parser("remove", parents=[common], help="remove a user and revoke their API tokens",
                            description="Remove an admin user; their API tokens go with them and their sessions end.")
    q.add_argument("name", help="user name")
    q.set_defaults(func=cmd_user_remove)


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[Session]:
    """The config's database, migrated to the latest schema, in one transaction."""
    from sqlalchemy.orm import Session

    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade

    config = load(args)
    engine = make_engine(config.database)
    try:
        upgrade(engine)
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _read_password(args: argparse.Namespace) -> str:
    from web.admin.passwords import WeakPassword, check_strength

    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    try:
        check_strength(password)
    except WeakPassword as exc:
        raise UsageError(str(exc)) from None
    return password


def _valid_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"invalid user name {name!r} (letters, digits, . _ @ -; at most 64, starting with a letter or digit)")
    return name


def cmd_user_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from monitor.store.models import User
    from web.admin.passwords import hash_password

    name = _valid_name(args.name)
    with _database(args) as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise UsageError(f"user {name!r} already exists (change the password with 'genstatus user password {name}')")
        session.add(User(name=name, password_hash=hash_password(_read_password(args))))
    print(f"added user {name}")
    return EXIT_OK


def cmd_user_password(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from monitor.store.models import User
    from web.admin.passwords import hash_password

    with _database(args) as session:
        user = session.scalar(select(User).where(User.name == args.name))
        if user is None:
            raise UsageError(f"no user {args.name!r}")
        user.password_hash = hash_password(_read_password(args))
    print(f"password of {args.name} changed; their sessions have ended")
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from monitor.store.models import User

    with _database(args) as session:
        users = session.scalars(select(User).order_by(User.name)).all()
        for user in users:
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if user.last_login_at else "never"
            print(f"{user.name}\tadded {user.created_at:%Y-%m-%d}\tlast login {last}")
    if not users:
        print("no users yet: add one with 'genstatus user add NAME'", file=sys.stderr)
    return EXIT_OK


def cmd_user_remove(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from monitor.store.models import ApiToken, User

    with _database(args) as session:
        user = session.scalar(select(User).where(User.name == args.name))
        if user is None:
            raise UsageError(f"no user {args.name!r}")
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()
        for token in tokens:
            session.delete(token)
        session.delete(user)
    print(f"removed user {args.name} ({len(tokens)} API tokens with them)")
    return EXIT_OK
