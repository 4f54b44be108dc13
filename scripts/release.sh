#!/usr/bin/env bash
# `npm run release`: the release of unikctl itself (docs/release.md). Installs the locked npm packages when
# node_modules is absent (a fresh clone), compiles release/ into dist-release/ and runs it; every argument goes
# to release/main.ts (--out, --skip-tests, --key, --builder-id, --repository; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e node_modules ]; then
  echo "release: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
rm -rf dist-release
npx tsc -p tsconfig.release.json
exec node dist-release/release/main.js "$@"
