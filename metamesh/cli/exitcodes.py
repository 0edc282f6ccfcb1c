"""Numbered exit codes, stable for scripts."""

OK = 0
FAILURE = 1
USAGE = 2
CONFIG = 3
UNREACHABLE = 4
INTERRUPTED = 130
NOT_BUILT = 69
