#!/usr/bin/env bash
# Installs everything unikctl needs on a Debian 12 machine, idempotently: Debian packages, npm packages,
# the compiled CLI, the guest init and both kernel variants (built once from linux-source-6.1, then cached
# by config hash under $UNIKCTL_HOME/kernels). A second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# 1. Debian packages (the host tools; no Docker anywhere)
PKGS=(qemu-system-x86 erofs-utils linux-source-6.1 patch flex bison libelf-dev bc xz-utils make gcc libc6-dev musl-tools util-linux bubblewrap slirp4netns passwd)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# the unprivileged user that sandboxed remote builds run as (docs/security.md)
if ! getent passwd unikctl-build >/dev/null; then
  say "creating the build user unikctl-build"
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin unikctl-build
fi

# 2. npm packages (from the committed lock file)
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3. the CLI (TypeScript → dist/)
if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json -newer dist/cli/main.js -print -quit)" ]; then
  say "compiling the CLI"
  npm run --silent build
fi

# 4. the guest init (static C)
make -s -C guest
# the VMM launcher (host side: death signal + no transparent huge pages)
make -s -C host

# 5. the kernels: release and debug variants, cached by config hash
for variant in release debug; do
  kernel/build.sh "$variant"
done
say "set-up complete: $(node bin/unikctl.js --version)"
