#!/usr/bin/env bash
# End the session and forget the stored tokens.
. "$(dirname "$0")/lib.sh"
need_bearer
call 204 POST /logout "${AUTH[@]}"
forget
echo "logged out"
