#!/usr/bin/env bash
# Log in: writes the access token, refresh token and CSRF token under $CS_STATE and keeps the session
# cookie in $CS_STATE/cookies.txt.  usage: scripts/login.sh EMAIL  (password from CS_PASSWORD or a prompt)
. "$(dirname "$0")/lib.sh"
email="${1:?usage: scripts/login.sh EMAIL}"
password="${CS_PASSWORD:-}"
if [ -z "$password" ]; then read -rsp "Password for $email: " password; echo >&2; fi
body=$(EMAIL="$email" PASSWORD="$password" node -e 'console.log(JSON.stringify({email: process.env.EMAIL, password: process.env.PASSWORD}))')
call 200 POST /login -H 'Content-Type: application/json' --data-binary @- -c "$CS_STATE/cookies.txt" <<<"$body" >/dev/null
umask 077
json access_token >"$CS_STATE/access_token"
json refresh_token >"$CS_STATE/refresh_token"
json csrf_token >"$CS_STATE/csrf_token"
echo "logged in as $email; tokens in $CS_STATE/"
