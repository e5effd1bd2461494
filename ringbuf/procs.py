"""Process identity that survives pid reuse: (pid, start time in clock ticks)."""


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def is_alive(pid: int, ticks: int | None = None) -> bool:
    """True when `pid` runs and, if `ticks` is given, is the same process as before."""
    if pid <= 0:
        return False
    current = start_ticks(pid)
    if current is None:
        return False
    return ticks is None or ticks == 0 or current == ticks


def identity_word(pid: int) -> int:
    """Pack a pid and the low 32 bits of its start time into one claimable u64."""
    ticks = start_ticks(pid) or 0
    return (pid & 0xFFFFFFFF) | ((ticks & 0xFFFFFFFF) << 32)


def holder_alive(word: int) -> bool:
    """Whether the process packed in an identity word still runs."""
    if word == 0:
        return False
    pid = word & 0xFFFFFFFF
    ticks = word >> 32
    current = start_ticks(pid)
    return current is not None and (current & 0xFFFFFFFF) == ticks
