#!/usr/bin/env bash
# The dashboard, with the session cookie kept by scripts/login.sh (the seed's cookie flow).
. "$(dirname "$0")/lib.sh"
need_cookie
call 200 GET /dashboard "${AUTH[@]}"
