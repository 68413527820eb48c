#!/usr/bin/env bash
# Sign in with an OpenID provider using curl alone, the way a browser would: start at the API, follow
# every redirect with one cookie jar, post the provider's login and consent forms (the development
# pages of oidc-provider, as in test/support/idp.ts: any password for a listed account), stop at next,
# then exchange the login_code. Prints the login answer (the token pair or the 2FA step).
#   usage: NEXT=https://app.example.test/oauth/done scripts/oidc-curl.sh PROVIDER LOGIN
#   (BASE_URL: the API, default http://127.0.0.1:5000; NEXT must be in SECURITY_OAUTH_ALLOWED_REDIRECTS)
. "$(dirname "$0")/lib.sh"
provider="${1:?usage: scripts/oidc-curl.sh PROVIDER LOGIN}"
login="${2:?usage: scripts/oidc-curl.sh PROVIDER LOGIN}"
next="${NEXT:?set NEXT to an allowed redirect URL}"
jar="$CS_STATE/oidc-cookies.txt"
page="$CS_STATE/oidc-page.html"
: >"$jar"
enc=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$next")
url="$BASE_URL/login/oauthstart/$provider?next=$enc"
data=""
for _ in $(seq 1 20); do
  case "$url" in "$next"*) break ;; esac
  if [ -n "$data" ]; then
    out=$(curl -sS -b "$jar" -c "$jar" -o "$page" -w '%{http_code} %{redirect_url}' --data "$data" "$url")
  else
    out=$(curl -sS -b "$jar" -c "$jar" -o "$page" -w '%{http_code} %{redirect_url}' "$url")
  fi
  data=""
  status="${out%% *}"
  location="${out#* }"
  echo "GET/POST ${url%%\?*} -> HTTP $status" >&2
  if [ -n "$location" ]; then url="$location"; continue; fi
  action=$(sed -n 's/.*<form[^>]*action="\([^"]*\)".*/\1/p' "$page" | head -1)
  [ -n "$action" ] || { echo "unexpected page at $url (HTTP $status)" >&2; cat "$page" >&2; exit 1; }
  if grep -q 'name="prompt" value="login"' "$page"; then data="prompt=login&login=$login&password=any"
  else data="prompt=consent"; fi
  url=$(node -e 'console.log(new URL(process.argv[1], process.argv[2]).toString())' "$action" "$url")
done
case "$url" in "$next"*) ;; *) echo "never reached next (stopped at $url)" >&2; exit 1 ;; esac
code=$(node -e 'const u=new URL(process.argv[1]); const e=u.searchParams.get("error"); if (e) { console.error("error=" + e); process.exit(1) } console.log(u.searchParams.get("login_code"))' "$url")
body=$(CODE="$code" node -e 'console.log(JSON.stringify({login_code: process.env.CODE}))')
call 200 POST /login/oauth/exchange -H 'Content-Type: application/json' --data-binary @- <<<"$body"
