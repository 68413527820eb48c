#!/usr/bin/env bash
# Create a personal access token (needs a fresh login from scripts/login.sh) and store it as the
# bearer token for later recipes, so automation needs no interactive login.
#   usage: scripts/create-token.sh NAME [EXPIRES_IN_SECONDS]
. "$(dirname "$0")/lib.sh"
name="${1:?usage: scripts/create-token.sh NAME [EXPIRES_IN_SECONDS]}"
body=$(NAME="$name" EXP="${2:-}" node -e 'const b={name:process.env.NAME}; if (process.env.EXP) b.expires_in=Number(process.env.EXP); console.log(JSON.stringify(b))')
need_bearer
call 201 POST /auth/tokens "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary @- <<<"$body" >/dev/null
umask 077
json token >"$CS_STATE/personal_token"
cp "$CS_STATE/personal_token" "$CS_STATE/access_token"
echo "token \"$name\" stored in $CS_STATE/personal_token (and used as the bearer token from now on)"
