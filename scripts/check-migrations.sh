#!/usr/bin/env bash
# Fails when the Drizzle schema has changes that no committed migration contains.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(ls migrations/*.sql | wc -l)
out=$(npx drizzle-kit generate --name schema_drift_check 2>&1) || { echo "$out"; exit 1; }
after=$(ls migrations/*.sql | wc -l)
if [ "$after" != "$before" ]; then
  echo "The Drizzle schema has changes without a migration:" >&2
  git status --porcelain migrations >&2
  git checkout -q -- migrations 2>/dev/null || true
  git clean -qfd migrations 2>/dev/null || true
  echo "Run: npm run db:generate -- --name <verb_noun> and commit the migration." >&2
  exit 1
fi
echo "migrations: in step with the schema"
