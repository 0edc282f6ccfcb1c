"""``metamesh deploy systemd``: a unit file for a node on a LAN host."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import grp
import io
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from metamesh.cli import exitcodes

HELP = "render deployment files (systemd units) for LAN hosts"

DESCRIPTION = """\
Prints a systemd unit that runs a node (or, with --coordinator, the
coordinator) with the flags you give after --; they are checked as the node
would check them. The unit runs as you (the user running this command) unless
--user names another; then the steps that create that user and give it the
home are printed on stderr. Install it with:

  metamesh deploy systemd --name n1 --home /var/lib/metamesh/n1 -- \\
      --profile lan --host 0.0.0.0 --beacon --keys /var/lib/metamesh/n1/keys \\
      | sudo tee /etc/systemd/system/metamesh-n1.service > /dev/null
  sudo systemctl daemon-reload && sudo systemctl enable --now metamesh-n1

  metamesh deploy systemd --coordinator --name coord --home /var/lib/metamesh/coord -- \\
      --profile lan --host 0.0.0.0 --router-port 5556 --pub-port 5555 --beacon \\
      | sudo tee /etc/systemd/system/metamesh-coord.service > /dev/null
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    dsub = p.add_subparsers(dest="deploy_command", metavar="TARGET", required=True)
    s = dsub.add_parser(
        "systemd",
        help="print a systemd unit for a node",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--name", required=True, help="node name, used for the unit and the node id")
    s.add_argument("--home", type=Path, required=True, help="the node's directory on the host")
    s.add_argument(
        "--coordinator", action="store_true", help="run `metamesh coordinator` instead of `metamesh node`"
    )
    s.add_argument("--user", help="user to run as (default: you, the user running this command)")
    s.add_argument(
        "--python", default=sys.executable, help="python with metamesh installed (default: this one)"
    )
    s.add_argument(
        "node_args", nargs=argparse.REMAINDER, help="-- then flags for `metamesh node` (or `coordinator`)"
    )
    s.set_defaults(run=run)


#: Node flags that always take a path, and those that take a path or a built-in name.
PATH_FLAGS = ("--config", "--keys")
MAYBE_PATH_FLAGS = ("--dataset", "--pool")


def _absolute(flag: str, value: str) -> str:
    """A path made absolute, so the unit does not depend on where this command ran."""
    if flag in PATH_FLAGS or (flag in MAYBE_PATH_FLAGS and ("/" in value or Path(value).exists())):
        return os.path.abspath(os.path.expanduser(value))
    return value


def _absolute_paths(args: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("--"):
            out.append(f"{flag}={_absolute(flag, value)}")
        else:
            out.append(_absolute(args[i - 1], arg) if i else arg)
    return out


def _check(command: str, args: Sequence[str]) -> str | None:
    """Parse ``args`` as ``metamesh COMMAND`` would and resolve the config: an error line or None."""
    from metamesh.cli.main import build_parser
    from metamesh.cli.node_cmd import NODE_SETTINGS
    from metamesh.errors import MetameshError
    from metamesh.node.config import load_config

    if "--home" in args or any(a.startswith("--home=") for a in args):
        return "give --home before --, not in the node flags"
    if "-h" in args or "--help" in args:
        return "give the node's flags after --, not --help"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = build_parser().parse_args([command, *args])
    except SystemExit:
        lines = err.getvalue().strip().splitlines() or ["bad node flags"]
        return f"{command} flags: {lines[-1].split(' error: ', 1)[-1]}"
    overrides = {k: v for k, v in vars(parsed).items() if k in NODE_SETTINGS}
    overrides.pop("home", None)
    try:
        load_config(profile=parsed.profile, env={}, overrides=overrides)
    except MetameshError as exc:
        return f"{command} flags: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    from metamesh.deploy.systemd import render_unit, user_steps

    command = "coordinator" if args.coordinator else "node"
    node_args = _absolute_paths([a for a in args.node_args if a != "--"])
    problem = _check(command, node_args)
    if problem is not None:
        sys.stderr.write(f"metamesh deploy: {problem}\n")
        return exitcodes.USAGE
    home = PurePosixPath(os.path.abspath(args.home.expanduser()))
    python = PurePosixPath(os.path.abspath(os.path.expanduser(args.python)))
    if not os.access(python, os.X_OK):
        sys.stderr.write(f"metamesh deploy: note: {python} is not executable here; the host needs it\n")
    me = getpass.getuser()
    user = args.user or me
    try:
        group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        exists = True
    except KeyError:
        group, exists = user, False
    if user != me or not exists:
        steps = "\n".join(f"  {step}" for step in user_steps(user, home, exists=exists))
        sys.stderr.write(
            f"metamesh deploy: the unit runs as {user}; before starting it, run as root:\n{steps}\n"
        )
    sys.stdout.write(
        render_unit(
            name=args.name,
            home=home,
            args=["--name", args.name, *node_args],
            user=user,
            group=group,
            python=python,
            command=command,
            description=f"metamesh {command}",
        )
    )
    return exitcodes.OK
