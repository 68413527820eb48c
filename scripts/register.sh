#!/usr/bin/env bash
# Register an account.  usage: scripts/register.sh EMAIL [FIRST_NAME LAST_NAME]  (password from CS_PASSWORD or a prompt)
. "$(dirname "$0")/lib.sh"
email="${1:?usage: scripts/register.sh EMAIL [FIRST LAST]}"
password="${CS_PASSWORD:-}"
if [ -z "$password" ]; then read -rsp "New password for $email: " password; echo >&2; fi
body=$(EMAIL="$email" PASSWORD="$password" FIRST="${2:-}" LAST="${3:-}" node -e '
  const b = { email: process.env.EMAIL, password: process.env.PASSWORD };
  if (process.env.FIRST) b.first_name = process.env.FIRST;
  if (process.env.LAST) b.last_name = process.env.LAST;
  console.log(JSON.stringify(b))')
call 201 POST /register -H 'Content-Type: application/json' --data-binary @- <<<"$body" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s);console.log(JSON.stringify(b.user,null,2))})'
