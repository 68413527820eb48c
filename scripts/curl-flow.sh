#!/usr/bin/env bash
# The seed's manual workflow end to end against a running server (CI runs this):
# register → login (-c cookies) → dashboard (-b cookies) → current user (bearer) → refresh → logout.
set -euo pipefail
here="$(dirname "$0")"
if [ -z "${CS_STATE:-}" ]; then
  # our own temporary state (tokens, cookie jar): removed however the flow ends
  CS_STATE="$(mktemp -d)"
  trap 'rm -rf "$CS_STATE"' EXIT
fi
export CS_STATE
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
# Logged out, the recipes refuse to run (and send nothing) instead of sending an unauthenticated request.
if "$here/me.sh" >/dev/null 2>&1; then
  echo "scripts/me.sh succeeded after scripts/logout.sh" >&2
  exit 1
fi
# The logged-out token must now be refused.
. "$here/lib.sh"
(umask 077 && printf 'Authorization: Bearer %s\n' "$old_token" >"$CS_STATE/old-auth-header")
call 401 GET /auth/current-user -H "@$CS_STATE/old-auth-header" >/dev/null
rm -f "$CS_STATE/old-auth-header"
echo "curl flow: ok"
