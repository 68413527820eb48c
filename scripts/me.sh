#!/usr/bin/env bash
# The current user, with the bearer token written by scripts/login.sh.
. "$(dirname "$0")/lib.sh"
need_bearer
call 200 GET /auth/current-user "${AUTH[@]}"
