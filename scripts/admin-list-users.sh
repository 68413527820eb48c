#!/usr/bin/env bash
# List users as an administrator (GET /users), with the bearer token written by scripts/login.sh.
#   usage: scripts/admin-list-users.sh ['q=jane&role=Citizen&active=true&per_page=50&sort=-created_at']
. "$(dirname "$0")/lib.sh"
query="${1:-}"
need_bearer
call 200 GET "/users${query:+?$query}" "${AUTH[@]}"
