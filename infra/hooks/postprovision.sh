#!/bin/sh
# azd postprovision hook (POSIX sh; infra/hooks/postprovision.ps1 is the same for Windows, keep the two
# in step: tests/infra compares them).
#
# Writes the deployed endpoints and ids into the git-ignored .env at the repo root, so `make up` runs
# against them with your own login (`az login`: AZURE_PRINCIPAL_ID has the data roles, infra/modules/
# roles.bicep). Only a block between two marker lines is the hook's: it is replaced on every provision,
# and every other line of .env stays as it was. Endpoints and ids only, never a key: no key exists
# (local auth is off on every resource), only the names below are copied, and a value that is not a
# plain URL, id or name (`;`, `=`, `?`, spaces, a long run of letters and digits) is skipped.
#
#   AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT   `make up` talks to the deployed model (Entra ID)
#   ACS_RESOURCE_ID                                  the JWT audience (the emulator replaces it while ACS is emulated)
#   # ACS_ENDPOINT                                   commented out: uncommented, `make up` calls through the
#                                                    deployed ACS, which needs CALLBACK_URI_HOST and
#                                                    MEDIA_HOST_URL at a tunnel (docs/deploy.md, "Connect a real ACS number to a laptop")
#   the function, media host, resource group and Application Insights, as comments
#
# Values come from `azd env get-values`; from the environment azd hands its hooks when azd is not on
# PATH. Optional: POSTPROVISION_ENV_FILE, another file than <repo>/.env, or `none` to write nothing.
set -u

HINT="Re-run only this step: azd hooks run postprovision"
BEGIN='# >>> azd: the deployed resources (infra/hooks/postprovision.*, rewritten by each azd provision; edit outside this block)'
END='# <<< azd'
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd) || exit 1
ENV_FILE=${POSTPROVISION_ENV_FILE:-$ROOT/.env}
TMP_DIR=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP_DIR"' EXIT

say() {
    printf 'postprovision: %s\n' "$*"
}

fail() {
    printf 'postprovision: ERROR: %s\n' "$*" >&2
    printf 'postprovision: %s\n' "$HINT" >&2
    exit 1
}

if [ "$ENV_FILE" = "none" ]; then
    say "POSTPROVISION_ENV_FILE=none: no .env written"
    exit 0
fi

# KEY="value" lines of the azd environment being provisioned (`azd up -e <name>` need not be the
# default one); empty when azd is not there: the process environment then.
if command -v azd >/dev/null 2>&1; then
    if [ -n "${AZURE_ENV_NAME:-}" ]; then
        set -- --environment "$AZURE_ENV_NAME"
    fi
    azd env get-values "$@" >"$TMP_DIR/values" 2>"$TMP_DIR/azd.err" \
        || { cat "$TMP_DIR/azd.err" >&2; fail "azd env get-values failed"; }
else
    : >"$TMP_DIR/values"
fi

# value_of NAME: its value in azd's environment, else in this process's.
value_of() {
    found=$(sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$TMP_DIR/values" | tail -n 1)
    if [ -z "$found" ]; then
        eval "found=\${$1:-}"
    fi
    printf '%s' "$found"
}

# plain VALUE: a URL, an id or a name, nothing that could be or carry a secret.
plain() {
    printf '%s' "$1" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9:/._-]*$' || return 1
    printf '%s' "$1" | grep -Eq '[A-Za-z0-9]{32,}' && return 1
    return 0
}

WRITTEN=""
# setting NAME [comment]: a line of the block, active or (with `comment`) commented out.
setting() {
    value=$(value_of "$1")
    if [ -z "$value" ]; then
        say "WARNING: $1 is not in the azd environment: left out"
        return 0
    fi
    if ! plain "$value"; then
        say "WARNING: $1 does not look like a URL, an id or a name: left out"
        return 0
    fi
    if [ "${2:-}" = "comment" ]; then
        printf '# %s=%s\n' "$1" "$value" >>"$TMP_DIR/block"
    else
        printf '%s=%s\n' "$1" "$value" >>"$TMP_DIR/block"
        WRITTEN="$WRITTEN $1"
    fi
}

# note TEXT NAME: a comment line naming a deployed resource, for reference.
note() {
    value=$(value_of "$2")
    if [ -n "$value" ] && plain "$value"; then
        printf '# %s %s\n' "$1" "$value" >>"$TMP_DIR/block"
    fi
}

[ -n "$(value_of AZURE_OPENAI_ENDPOINT)" ] \
    || fail "AZURE_OPENAI_ENDPOINT is not in the azd environment: run 'azd provision' (or 'azd up') first"

# comment LINE: a line of the block as it is.
comment() {
    printf '%s\n' "$1" >>"$TMP_DIR/block"
}

: >"$TMP_DIR/block"
comment "$BEGIN"
comment '# The deployed model, used with your own login (az login; Entra ID, no key exists):'
setting AZURE_OPENAI_ENDPOINT
setting AZURE_OPENAI_DEPLOYMENT
# shellcheck disable=SC2016  # backquotes in a comment of .env, not a command
comment '# The deployed ACS resource. ACS_ENDPOINT uncommented makes `make up` call through it instead of the'
comment '# emulator, with CALLBACK_URI_HOST and MEDIA_HOST_URL at a tunnel (docs/deploy.md, "Connect a real ACS number to a laptop"):'
setting ACS_RESOURCE_ID
setting ACS_ENDPOINT comment
note "resource group:" AZURE_RESOURCE_GROUP
note "control plane:" FUNCTION_BASE_URL
note "media host:" MEDIA_HOST_URL
note "Application Insights (workbook and alerts, docs/operations.md):" APPLICATIONINSIGHTS_NAME
comment "$END"

# The block replaces the previous one where it stood (or is appended); everything else is kept.
if [ -f "$ENV_FILE" ]; then
    begins=$(grep -cxF "$BEGIN" "$ENV_FILE")
    ends=$(grep -cxF "$END" "$ENV_FILE")
    if [ "$begins" != "$ends" ] || [ "$begins" -gt 1 ]; then
        fail "$ENV_FILE has a broken azd block (its marker lines '$BEGIN' and '$END' do not pair up): fix or delete them"
    fi
    awk -v begin="$BEGIN" -v end="$END" -v block="$TMP_DIR/block" -v rest="$TMP_DIR/rest" '
        $0 == begin { while ((getline line < block) > 0) print line; inside = 1; done = 1; next }
        inside && $0 == end { inside = 0; next }
        inside { next }
        { print; print >> rest }
        END { if (!done) while ((getline line < block) > 0) print line }
    ' "$ENV_FILE" >"$TMP_DIR/env" || fail "could not rewrite $ENV_FILE"
else
    cp "$TMP_DIR/block" "$TMP_DIR/env"
    : >"$TMP_DIR/rest"
fi
cat "$TMP_DIR/env" >"$ENV_FILE" || fail "could not write $ENV_FILE"

say "wrote$WRITTEN to $ENV_FILE (no key: you sign in with az login)"
if grep -Eq '^[[:space:]]*(export[[:space:]]+)?(AZURE_OPENAI_API_KEY|OPENAI_API_KEY)[[:space:]]*=' "$TMP_DIR/rest"; then
    say "WARNING: $ENV_FILE also sets AZURE_OPENAI_API_KEY or OPENAI_API_KEY outside the azd block: comment it out,"
    say "  or the media host sends that key to the deployed model (refused: keys are off) or sees two vendors"
fi
