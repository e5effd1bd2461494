"""Fault injection: SIGKILL this process at a named point of the delivery protocol.

Off unless `GRANDMODEL_FAULT` is set (tests set it for one run), and then armed once:

    GRANDMODEL_FAULT=<actor>:<point>:<n>:<marker file>

kills the node hosting `<actor>` with SIGKILL the `n`-th time that actor reaches
`<point>`, unless the marker file exists; the marker is created first, so the restarted
node runs on without dying again. Points:

- `before_publish`: a message is stamped and encoded, no ring written yet;
- `between_rings`: a fan-out publish wrote the first ring and not the others;
- `after_handler`: a handler returned, its effects are not committed yet;
- `mid_save`: a state save wrote half its snapshot slot.

A disabled hook costs one attribute test (`armed`) per point reached.
"""

import os
import signal

POINTS = ("before_publish", "between_rings", "after_handler", "mid_save")
ENV = "GRANDMODEL_FAULT"


class FaultPlan:
    def __init__(self, spec: str) -> None:
        try:
            actor, point, count, marker = spec.split(":", 3)
            self.after = int(count)
        except ValueError:
            raise ValueError(f"{ENV}={spec!r}: expected <actor>:<point>:<n>:<marker>") from None
        if point not in POINTS:
            raise ValueError(f"{ENV}: unknown point {point!r} (one of {', '.join(POINTS)})")
        self.actor = actor
        self.point = point
        self.marker = marker
        self.reached = 0

    def hit(self, who: str, point: str) -> None:
        """`who` is an actor, or the owner of its durable store (`actor.<name>`)."""
        if point != self.point or who not in (self.actor, f"actor.{self.actor}"):
            return
        self.reached += 1
        if self.reached < self.after or os.path.exists(self.marker):
            return
        with open(self.marker, "w") as marker:
            marker.write(f"{who} {point} {self.reached} pid {os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)


_spec = os.environ.get(ENV, "")
plan: FaultPlan | None = FaultPlan(_spec) if _spec else None
armed = plan is not None


def hit(who: str, point: str) -> None:
    """Call only behind `if faults.armed:` (keeps the disabled cost to one test)."""
    if plan is not None:
        plan.hit(who, point)
