# Shared by the curl recipes: BASE_URL (default http://127.0.0.1:5000), a state directory for the token
# files and cookie jar (CS_STATE, default ./.cs), and `call` which prints the HTTP status and fails on
# an unexpected one.
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:5000}"
CS_STATE="${CS_STATE:-.cs}"
mkdir -p "$CS_STATE"
chmod 700 "$CS_STATE"

# call EXPECTED_STATUS METHOD PATH [curl args...]; the body goes to $CS_STATE/last.json and stdout.
call() {
  local expected="$1" method="$2" path="$3"
  shift 3
  local status
  status=$(curl -sS -o "$CS_STATE/last.json" -w '%{http_code}' -X "$method" "$BASE_URL$path" "$@") || {
    echo "$method $path: request failed (is the server running at $BASE_URL?)" >&2
    return 1
  }
  echo "$method $path -> HTTP $status" >&2
  cat "$CS_STATE/last.json"
  [ -s "$CS_STATE/last.json" ] && echo
  if [ "$status" != "$expected" ]; then
    echo "expected HTTP $expected" >&2
    return 1
  fi
}

# json FIELD: reads a top-level string field of $CS_STATE/last.json (node is always there: npm needs it).
json() {
  node -e 'const b=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=b[process.argv[2]]; if (v===undefined) process.exit(1); console.log(typeof v==="string"?v:JSON.stringify(v))' "$CS_STATE/last.json" "$1"
}

# need_bearer: stops the script (exit 1, nothing sent) unless scripts/login.sh stored an access token;
# then AUTH holds the curl arguments that send it. The header is read from a file in $CS_STATE (mode
# 700), so the token never appears on a command line (ps shows every process's arguments).
need_bearer() {
  if [ ! -s "$CS_STATE/access_token" ]; then
    echo "no access token in $CS_STATE: run scripts/login.sh first (no request was sent)" >&2
    exit 1
  fi
  (umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "$CS_STATE/access_token")" >"$CS_STATE/auth-header")
  AUTH=(-H "@$CS_STATE/auth-header")
}

# need_cookie: the same for the session cookie jar written by scripts/login.sh.
need_cookie() {
  if [ ! -s "$CS_STATE/cookies.txt" ] || ! grep -q 'session' "$CS_STATE/cookies.txt"; then
    echo "no session cookie in $CS_STATE: run scripts/login.sh first (no request was sent)" >&2
    exit 1
  fi
  AUTH=(-b "$CS_STATE/cookies.txt")
}

# forget: removes every credential this directory holds (logout, or a refused token).
forget() {
  rm -f "$CS_STATE/access_token" "$CS_STATE/refresh_token" "$CS_STATE/csrf_token" "$CS_STATE/cookies.txt" \
    "$CS_STATE/auth-header" "$CS_STATE/personal_token" "$CS_STATE/last.json"
}
