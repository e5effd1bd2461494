"""Who may change anything: a bearer token for the mutating endpoints, and the Host header
checked on every request.

The token comes from the environment variable `token_env` (GRANDMODEL_API_TOKEN) or, if
that is unset, from the file `token_file` (its first line); neither configured means the
mutating endpoints are disabled, which the API says as it starts and in every refusal.
Tokens are compared in constant time. A request whose Host header names anything but the
loopback address the server listens on is refused (403) before any handler runs: a web
page that rebinds its own DNS name to 127.0.0.1 cannot reach the API from a browser.
"""

import hmac
import os
from pathlib import Path

from aiohttp import web

MIN_TOKEN_CHARS = 16
"""A shorter token is refused at start: it could be guessed."""


class TokenError(ValueError):
    """The configured token cannot be used (unreadable file, too short)."""


def load_token(token_env: str, token_file: str | None) -> str | None:
    """The configured token, or None when none is configured."""
    token = os.environ.get(token_env)
    source = f"${token_env}"
    if token is None and token_file is not None:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as error:
            raise TokenError(f"token_file {token_file}: {error.strerror or error}") from None
        token, source = (lines[0] if lines else ""), f"token_file {token_file}"
    if token is None:
        return None
    token = token.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(
            f"the API token from {source} is shorter than {MIN_TOKEN_CHARS} characters"
        )
    return token


class Authenticator:
    def __init__(self, token: str | None, token_env: str) -> None:
        self._token = token
        self._token_env = token_env

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def refusal(self, request: web.Request) -> tuple[int, str] | None:
        """(status, reason) when `request` may not mutate, else None."""
        if self._token is None:
            return 403, (
                f"mutating endpoints are disabled: no API token configured "
                f"(${self._token_env} or the api actor's token_file)"
            )
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return 401, "Authorization: Bearer <token> required"
        if not hmac.compare_digest(presented.strip().encode(), self._token.encode()):
            return 401, "invalid token"
        return None


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values that name this server: its address (and `localhost`), with
    and without the port."""
    literal = f"[{host}]" if ":" in host else host
    names = {literal, "localhost"}
    return frozenset(names | {f"{name}:{port}" for name in names})
