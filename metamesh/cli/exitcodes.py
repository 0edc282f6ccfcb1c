"""Numbered exit codes, stable for scripts."""

OK = 0
FAILURE = 1
USAGE = 2
CONFIG = 3
UNREACHABLE = 4
#: The node's home is held by another running process (its PID is in the message).
HOME_IN_USE = 5
INTERRUPTED = 130
NOT_BUILT = 69
