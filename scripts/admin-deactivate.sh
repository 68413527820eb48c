#!/usr/bin/env bash
# Deactivate a user (POST /users/ID/deactivate): every session and token of theirs dies at once.
#   usage: scripts/admin-deactivate.sh ID      (after scripts/login.sh as a County Admin)
. "$(dirname "$0")/lib.sh"
id="${1:?usage: scripts/admin-deactivate.sh ID}"
[[ "$id" =~ ^[0-9]+$ ]] || { echo "ID must be a number" >&2; exit 2; }
need_bearer
call 200 POST "/users/$id/deactivate" "${AUTH[@]}"
