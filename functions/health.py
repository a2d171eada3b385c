"""GET /api/health: what is configured, as booleans per setting, and which profiles exist.

Anonymous, so it says nothing an outsider could use: no values and no problem texts (those may
quote a URL or a path; they are in the function log), and no versions (they would tell an attacker
which known flaws to try); only names, booleans and profile names. Always 200: `status` says
whether every setting is usable.
"""

from __future__ import annotations

import azure.functions as func

from common.profiles import available_profiles

from .http import blueprint, json_response
from .runtime import runtime
from .settings import SETTING_NAMES

bp = blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    s = runtime().settings
    return json_response(
        {
            "status": "misconfigured" if s.faults else "ok",
            "settings": {
                name: {"present": name in s.present, "valid": name not in s.problems}
                for name in SETTING_NAMES
            },
            "profiles": available_profiles(s.profiles_dir),
        }
    )
