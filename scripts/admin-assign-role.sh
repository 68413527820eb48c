#!/usr/bin/env bash
# Give a user a role (POST /users/ID/roles/ROLE); it applies on the user's next request.
#   usage: scripts/admin-assign-role.sh ID ROLE   e.g. scripts/admin-assign-role.sh 7 'Department Officer'
. "$(dirname "$0")/lib.sh"
id="${1:?usage: scripts/admin-assign-role.sh ID ROLE}"
role="${2:?usage: scripts/admin-assign-role.sh ID ROLE}"
[[ "$id" =~ ^[0-9]+$ ]] || { echo "ID must be a number" >&2; exit 2; }
encoded=$(ROLE="$role" node -e 'process.stdout.write(encodeURIComponent(process.env.ROLE))')
need_bearer
call 200 POST "/users/$id/roles/$encoded" "${AUTH[@]}"
