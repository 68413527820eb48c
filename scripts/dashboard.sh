#!/usr/bin/env bash
# The dashboard, with the session cookie kept by scripts/login.sh (the seed's cookie flow).
. "$(dirname "$0")/lib.sh"
call 200 GET /dashboard -b "$CS_STATE/cookies.txt"
