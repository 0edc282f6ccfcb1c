"""Numbered exit codes, stable for scripts; the same kind of failure exits the same in every command.

====  ===========  ==========================================================
code  name         meaning
====  ===========  ==========================================================
0     OK           done
1     FAILURE      it started but failed at run time (a node that did not
                   come up, an experiment that broke, an unexpected answer)
2     USAGE        the command line is wrong: an unknown option or command,
                   a bad number or address, a value out of range, a
                   missing run directory
3     CONFIG       a setting is wrong, found while configuring: a config
                   file, keys, an unknown learner or category (--weights)
4     UNREACHABLE  a node or server did not answer
5     HOME_IN_USE  another running process holds the node's home
69    NOT_BUILT    a part that must be built or installed first is missing
130   INTERRUPTED  stopped by Ctrl-C (SIGINT)
====  ===========  ==========================================================
"""

from __future__ import annotations

from metamesh.errors import ConfigError, HomeInUse, LLMNotInstalled, LLMUnavailable

OK = 0
FAILURE = 1
USAGE = 2
CONFIG = 3
UNREACHABLE = 4
#: The node's home is held by another running process (its PID is in the message).
HOME_IN_USE = 5
INTERRUPTED = 130
NOT_BUILT = 69

#: What ``metamesh --help`` prints below the commands.
EPILOG = """\
exit codes: 0 ok, 1 failed at run time, 2 usage (bad command line),
3 config (a setting, config file, key, learner or category is wrong),
4 unreachable (no answer), 5 node home in use, 69 not built,
130 interrupted (Ctrl-C)"""


def for_error(exc: BaseException) -> int:
    """The exit code for an error a command did not expect to handle itself."""
    if isinstance(exc, HomeInUse):
        return HOME_IN_USE
    if isinstance(exc, ConfigError):
        return CONFIG
    if isinstance(exc, LLMNotInstalled):
        return NOT_BUILT
    if isinstance(exc, TimeoutError | LLMUnavailable):
        return UNREACHABLE
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return FAILURE
