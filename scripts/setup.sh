#!/usr/bin/env bash
# Installs everything unikctl needs on a Debian 12 machine, idempotently: Debian packages, npm packages,
# the compiled CLI, the guest init and both kernel variants (built once from linux-source-6.1, then cached
# by config hash under $UNIKCTL_HOME/kernels). A second run takes seconds.
# It also runs from an installed release (npm install -g of the tarball, docs/release.md): there the npm
# packages and the compiled CLI come with the package, and only the host set-up, the guest init, the VMM
# launcher and the kernels are done.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# 1. Debian packages (the host tools; no Docker anywhere)
PKGS=(qemu-system-x86 erofs-utils linux-source-6.1 patch flex bison libelf-dev bc xz-utils make gcc libc6-dev musl-tools util-linux bubblewrap slirp4netns passwd haproxy)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# haproxy is the services' traffic front (docs/services.md): unikctl starts its own instances, one per service.
# The distribution's haproxy.service would hold ports of its own config, so it is switched off (no systemd: nothing runs).
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
fi

# the unprivileged user that sandboxed remote builds run as (docs/security.md)
if ! getent passwd unikctl-build >/dev/null; then
  say "creating the build user unikctl-build"
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin unikctl-build
fi

# 5 (started here, waited for at the end). The kernels: release and debug variants, cached by config hash. On a
# fresh machine they are the longest step (minutes of CPU), and npm ci (step 2) mostly waits on the network, so
# they build in the background meanwhile. They need only the Debian packages of step 1. Their output is kept and
# shown when they are done, so it does not interleave with npm's.
kernels_log=$(mktemp)
# A session of their own, so that a set-up that fails or is interrupted stops every make and compiler of theirs.
setsid bash -c 'for variant in release debug; do kernel/build.sh "$variant" || exit 1; done' >"$kernels_log" 2>&1 &
kernels_pid=$!
trap 'kill -- "-$kernels_pid" 2>/dev/null || true' EXIT

# a source checkout has src/; an installed release has dist/ instead
checkout=0; [ -d src ] && checkout=1

# 2. npm packages (from the committed lock file)
if [ "$checkout" = 0 ]; then
  : # installed by npm with the package (npm-shrinkwrap.json)
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3. the CLI (TypeScript → dist/)
if [ "$checkout" = 0 ]; then
  : # compiled in the release tarball
elif [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json -newer dist/cli/main.js -print -quit)" ]; then
  say "compiling the CLI"
  npm run --silent build
fi

# 4. the guest init (static C) and the VMM launcher (host side: death signal + no transparent huge pages),
#    built next to their sources, where the CLI looks for them. An installation in a root-owned prefix
#    (sudo npm install -g) is written to with sudo; the kernels below stay in the user's own $UNIKCTL_HOME.
for d in guest host; do
  if [ -w "$d" ]; then make -s -C "$d"; else say "building $d/ with sudo ($PWD/$d is not writable)"; $SUDO make -s -C "$d"; fi
done

# 5. the kernels (started after step 1): wait for them, and show what they said
if ! wait "$kernels_pid"; then
  cat "$kernels_log" >&2; rm -f "$kernels_log"
  say "the kernel build failed (above)"; exit 1
fi
cat "$kernels_log" >&2; rm -f "$kernels_log"
say "set-up complete: $(node bin/unikctl.js --version)"
