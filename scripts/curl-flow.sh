#!/usr/bin/env bash
# The seed's manual workflow end to end against a running server (CI runs this):
# register → login (-c cookies) → dashboard (-b cookies) → current user (bearer) → refresh → logout.
set -euo pipefail
here="$(dirname "$0")"
export CS_STATE="${CS_STATE:-$(mktemp -d)}"
email="flow-$(date +%s)-$$@example.com"
export CS_PASSWORD="Flow-Check-$(date +%s)-Lantern"
"$here/register.sh" "$email" Flow Check >/dev/null
"$here/login.sh" "$email"
"$here/dashboard.sh" >/dev/null
"$here/me.sh" >/dev/null
"$here/refresh.sh"
"$here/me.sh" >/dev/null
old_token="$(cat "$CS_STATE/access_token")"
"$here/logout.sh"
# The logged-out token must now be refused.
. "$here/lib.sh"
call 401 GET /auth/current-user -H "Authorization: Bearer $old_token" >/dev/null
echo "curl flow: ok"
