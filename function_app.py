"""Azure Functions entry point (Python v2 model): the control plane's HTTP triggers.

Only registration lives here; each function is a blueprint in functions/. FUNCTION is the default
auth level, and every route states its own: a function key on the Event Grid webhook, the
outbound-call API and the softphone token API, anonymous on ACS callbacks (the ACS JWT is their
authentication), on Twilio's webhooks (their X-Twilio-Signature is) and on health.
"""

from __future__ import annotations

import azure.functions as func

from functions import (
    acs_token,
    callbacks,
    health,
    incoming_call,
    outbound_calls,
    twilio_status,
    twilio_voice,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for module in (incoming_call, callbacks, outbound_calls, acs_token, twilio_voice, twilio_status, health):
    app.register_functions(module.bp)
