"""The API actor's parameters: where it listens, and where it tells others it listens."""

import ipaddress
from typing import Annotated

import msgspec


class ApiParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Validated by `ApiActor.parse_params`; a non-loopback host fails the config load.

    The read endpoints are open (design §6), so the server must not be reachable from
    another machine: only loopback addresses (127.0.0.0/8, ::1) are accepted, as IP
    literals, because a name such as "localhost" resolves to whatever the host says.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    """TCP port; 0 binds a free one (logged, and written to `port_file`)."""
    port_file: str | None = None
    """If set, the bound port is written here (decimal, newline) once the server listens,
    so a test or a sidecar started with port 0 can find the server."""
    execution: str = "execution"
    """The execution actor whose committed order counts /metrics exports."""
    journal: str = "journal"
    """The journal actor whose committed row counts /metrics exports (none: no such rows)."""
    journal_path: str | None = "state/journal.sqlite"
    """The journal /fills reads (read-only); None: /fills answers 503."""
    token_env: str = "GRANDMODEL_API_TOKEN"
    """The environment variable holding the bearer token of the mutating endpoints."""
    token_file: str | None = None
    """A file whose first line is the token, read when `token_env` is unset. Neither:
    the mutating endpoints are disabled (said at start and in every refusal)."""

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"host must be a loopback IP address (127.0.0.0/8 or ::1), got {self.host!r}"
            )
