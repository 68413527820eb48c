#!/usr/bin/env bash
# End the session and forget the stored tokens.
. "$(dirname "$0")/lib.sh"
call 204 POST /logout -H "$(bearer)"
rm -f "$CS_STATE/access_token" "$CS_STATE/refresh_token" "$CS_STATE/csrf_token" "$CS_STATE/cookies.txt"
echo "logged out"
