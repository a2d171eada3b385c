#!/bin/sh
# azd postdeploy hook (POSIX sh; infra/hooks/postdeploy.ps1 is the same for Windows).
#
# Subscribes the function's /api/incoming-call webhook to ACS's IncomingCall events:
#   1. wait until the deployed function answers GET /api/health with 200 (bounded);
#   2. make sure two function-level keys exist (created once, then reused; never printed): `eventgrid`,
#      which opens incoming_call only, and `outbound`, which opens start_call (POST /api/calls) only.
#      The host keys open every function, so they never leave the operator's hands: a subscription
#      URL is visible to portal readers, and a key that places calls there would be a phone bill;
#   3. create or update the Event Grid subscription on the ACS system topic (a PUT, so re-running is
#      safe): webhook https://<function>/api/incoming-call?code=<eventgrid key>, IncomingCall only,
#      1 event per batch. Event Grid validates the webhook right then, which is why this runs after deploy.
#
# CALLBACK_URI_HOST and MEDIA_HOST_URL are not set here: infra/main.bicep always knows both at
# provision time (the function's own host name, and the media app's FQDN from the Container Apps
# environment's default domain), so this hook only reports /api/health's verdict on them.
#
# Inputs (azd passes its environment, i.e. main.bicep's outputs): AZURE_SUBSCRIPTION_ID (azd's own: every
# az call names it, whatever `az account show` says), AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME,
# FUNCTION_BASE_URL, ACS_SYSTEM_TOPIC_NAME. Optional:
# POSTDEPLOY_HEALTH_ATTEMPTS (60), POSTDEPLOY_HEALTH_INTERVAL (5 s), INCOMING_CALL_SUBSCRIPTION
# (incomingcall). Needs the Azure CLI, logged in (`az login`: azd's login is separate), and curl.
set -u

HINT="Fix the cause above, then re-run only this step: azd hooks run postdeploy"
KEY=""
KEY_ENCODED=""
TMP_DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP_DIR"' EXIT

say() {
    printf 'postdeploy: %s\n' "$*"
}

# Anything that may echo the webhook URL goes through here: the key never reaches the console.
redact() {
    if [ -n "$KEY" ]; then
        awk -v k="$KEY" -v e="$KEY_ENCODED" '{
            while ((i = index($0, k)) > 0) $0 = substr($0, 1, i - 1) "***" substr($0, i + length(k))
            while (e != "" && (i = index($0, e)) > 0) $0 = substr($0, 1, i - 1) "***" substr($0, i + length(e))
            print
        }'
    else
        cat
    fi
}

fail() {
    printf 'postdeploy: ERROR: %s\n' "$*" >&2
    printf 'postdeploy: %s\n' "$HINT" >&2
    exit 1
}

for name in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME FUNCTION_BASE_URL ACS_SYSTEM_TOPIC_NAME; do
    eval "value=\${$name:-}"
    # shellcheck disable=SC2154  # value is assigned by the eval above
    [ -n "$value" ] || fail "$name is not set: run 'azd provision' (or 'azd up') first, so azd has the outputs of infra/main.bicep"
done
command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
command -v curl >/dev/null 2>&1 || fail "curl is not installed"

BASE_URL=${FUNCTION_BASE_URL%/}
ATTEMPTS=${POSTDEPLOY_HEALTH_ATTEMPTS:-60}
INTERVAL=${POSTDEPLOY_HEALTH_INTERVAL:-5}
SUBSCRIPTION=${INCOMING_CALL_SUBSCRIPTION:-incomingcall}

# 1. The function must be live before Event Grid's validation handshake.
say "waiting for $BASE_URL/api/health (up to $ATTEMPTS tries, ${INTERVAL}s apart)"
attempt=1
status=""
while :; do
    status=$(curl --silent --output "$TMP_DIR/health.json" --write-out '%{http_code}' --max-time 10 \
        "$BASE_URL/api/health" 2>/dev/null) || status="000"
    [ "$status" = "200" ] && break
    [ "$attempt" -ge "$ATTEMPTS" ] && fail "the function did not answer GET $BASE_URL/api/health with 200 after $ATTEMPTS tries (last status: $status); check 'azd deploy' output and the function's logs"
    attempt=$((attempt + 1))
    sleep "$INTERVAL"
done
if grep -q '"status": *"ok"' "$TMP_DIR/health.json"; then
    say "function is live, settings ok"
else
    say "WARNING: the function is live but reports missing or invalid settings: open $BASE_URL/api/health (names only) and the function's log; calls will be refused until fixed"
fi

# 2. Function-level keys. function_key FUNCTION KEY_NAME writes the key to $TMP_DIR/key, creating it
# (with a value Azure generates) only when missing, so re-running never rotates a key in use.
function_key() {
    az functionapp function keys list --subscription "$AZURE_SUBSCRIPTION_ID" --resource-group "$AZURE_RESOURCE_GROUP" \
        --name "$AZURE_FUNCTION_APP_NAME" --function-name "$1" --query "$2" --output tsv >"$TMP_DIR/key" 2>"$TMP_DIR/az.err" \
        || { cat "$TMP_DIR/az.err" >&2; fail "could not read the keys of function $1 in $AZURE_FUNCTION_APP_NAME (is the Azure CLI logged in to a tenant with subscription $AZURE_SUBSCRIPTION_ID? az login)"; }
    [ -n "$(tr -d '\r\n' <"$TMP_DIR/key")" ] && return 0
    az functionapp function keys set --subscription "$AZURE_SUBSCRIPTION_ID" --resource-group "$AZURE_RESOURCE_GROUP" \
        --name "$AZURE_FUNCTION_APP_NAME" --function-name "$1" --key-name "$2" --query value --output tsv >"$TMP_DIR/key" 2>"$TMP_DIR/az.err" \
        || { cat "$TMP_DIR/az.err" >&2; fail "could not create the key '$2' of function $1 in $AZURE_FUNCTION_APP_NAME"; }
    [ -n "$(tr -d '\r\n' <"$TMP_DIR/key")" ] || fail "function $1 of $AZURE_FUNCTION_APP_NAME has no key '$2' yet (the host may still be starting)"
    say "created the function key '$2' of $1"
}

function_key start_call outbound
rm -f "$TMP_DIR/key"
function_key incoming_call eventgrid
KEY=$(tr -d '\r\n' <"$TMP_DIR/key")
rm -f "$TMP_DIR/key"
# Keys are base64-like: +, / and = must not be read as a space or a separator in the query string.
KEY_ENCODED=$(printf '%s' "$KEY" | sed -e 's/%/%25/g' -e 's/+/%2B/g' -e 's#/#%2F#g' -e 's/=/%3D/g')

# 3. Create or update the subscription (az ... create is a PUT: idempotent).
say "subscribing $BASE_URL/api/incoming-call to Microsoft.Communication.IncomingCall on $ACS_SYSTEM_TOPIC_NAME (subscription '$SUBSCRIPTION')"
if ! az eventgrid system-topic event-subscription create \
    --subscription "$AZURE_SUBSCRIPTION_ID" \
    --name "$SUBSCRIPTION" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --system-topic-name "$ACS_SYSTEM_TOPIC_NAME" \
    --endpoint-type webhook \
    --endpoint "$BASE_URL/api/incoming-call?code=$KEY_ENCODED" \
    --event-delivery-schema eventgridschema \
    --included-event-types Microsoft.Communication.IncomingCall \
    --max-events-per-batch 1 \
    --max-delivery-attempts 3 \
    --event-ttl 1 \
    --output none >/dev/null 2>"$TMP_DIR/az.err"; then
    redact <"$TMP_DIR/az.err" >&2
    fail "could not create or update the Event Grid subscription '$SUBSCRIPTION' (a failed validation handshake means /api/incoming-call did not answer it: check the function's log)"
fi
say "done: calls to the ACS resource's numbers now reach $BASE_URL/api/incoming-call"
say "POST $BASE_URL/api/calls takes the start_call key 'outbound' (?code=); read it with"
say "  az functionapp function keys list -g $AZURE_RESOURCE_GROUP -n $AZURE_FUNCTION_APP_NAME --function-name start_call --query outbound -o tsv --subscription $AZURE_SUBSCRIPTION_ID"
say "It calls only numbers on OUTBOUND_ALLOW_LIST (empty: none), at most OUTBOUND_CALLS_PER_MINUTE per instance."
