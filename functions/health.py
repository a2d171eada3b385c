"""GET /api/health: what is configured, as booleans per setting, and which versions run.

Anonymous, so it says nothing an outsider could use: no values and no problem texts (those may
quote a URL or a path; they are in the function log), only names, booleans, profile names and
versions. Always 200: `status` says whether every setting is usable.
"""

from __future__ import annotations

import functools
import platform
import tomllib
from importlib import metadata

import azure.functions as func

from common.profiles import APP_ROOT, available_profiles

from .http import blueprint, json_response
from .runtime import runtime
from .settings import SETTING_NAMES

bp = blueprint()

_PACKAGES = ("azure-functions", "azure-communication-callautomation")


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    s = runtime().settings
    return json_response(
        {
            "status": "misconfigured" if s.problems else "ok",
            "settings": {
                name: {"present": name in s.present, "valid": name not in s.problems}
                for name in SETTING_NAMES
            },
            "profiles": available_profiles(s.profiles_dir),
            "versions": versions(),
        }
    )


@functools.cache
def versions() -> dict[str, str]:
    found = {"app": _app_version(), "python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _app_version() -> str:
    # pyproject.toml is deployed with the app (.funcignore keeps it): one place for the version.
    try:
        with (APP_ROOT / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
