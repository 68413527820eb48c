#!/usr/bin/env bash
# Rotate the refresh token and store the new pair.
. "$(dirname "$0")/lib.sh"
[ -s "$CS_STATE/refresh_token" ] || { echo "no refresh token in $CS_STATE: run scripts/login.sh first (no request was sent)" >&2; exit 1; }
body=$(RT="$(cat "$CS_STATE/refresh_token")" node -e 'console.log(JSON.stringify({refresh_token: process.env.RT}))')
call 200 POST /refresh-token -H 'Content-Type: application/json' --data-binary @- <<<"$body" >/dev/null
umask 077
json access_token >"$CS_STATE/access_token"
json refresh_token >"$CS_STATE/refresh_token"
echo "tokens refreshed"
