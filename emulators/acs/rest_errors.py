"""ACS-shaped REST errors of the stand-in, for its Call Automation and Identity handlers alike."""

from __future__ import annotations

from aiohttp import web


class AcsRestError(Exception):
    """Raised by handlers; answered as ACS answers errors: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def acs_error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
