"""Peer measurements: other engines' order paths, measured the way `bench e2e` measures ours.

Each peer module runs its engine in a child process (the peer's packages are never imported
into the bench process) and offers `available() -> str | None` and
`measure(ticks, orders, seed) -> PeerResult`.
"""
