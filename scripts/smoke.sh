#!/usr/bin/env bash
# Smoke test of a running server: health, readiness, docs UI, OpenAPI document.
. "$(dirname "$0")/lib.sh"
call 200 GET /health
call 200 GET /ready
call 200 GET /docs/ -o /dev/null >/dev/null
call 200 GET /openapi.json >/dev/null
[ "$(json openapi)" = "3.1.0" ] || { echo "openapi.json is not OpenAPI 3.1" >&2; exit 1; }
echo "smoke: ok"
