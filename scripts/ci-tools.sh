#!/usr/bin/env bash
# Installs the test-only tools of the control-plane conformance test (test/e2e/controlplane-conformance.test.ts),
# idempotently, on Debian 12:
#   - promtool, from Debian's `prometheus` package (only when `promtool` is not on PATH already);
#   - Schemathesis (pinned), from PyPI into a virtualenv at .venv-tools/ (only when that exact version is not
#     there already);
#   - securesystemslib (DSSE + Ed25519) and cyclonedx-python-lib (with the official CycloneDX JSON schemas and its
#     validator), pinned, into the same venv: the independent checks of signed images (test/e2e/supply-chain.test.ts).
#   - etcd (test/e2e/controlplane-ha.test.ts);
#   - libsqlite3-dev, the C library examples/go-gin-sqlite calls through cgo (test/e2e/pack-go-apps.test.ts).
#   - Debian's chromium (the SLO page's browser test).
# A second run only checks, and takes well under a second. Everything it does is said on stderr.
# Environment: PYTHON (default python3) is the interpreter the venv is made from.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
SECURESYSTEMSLIB_VERSION="1.6.0"
CYCLONEDX_LIB_VERSION="11.12.0"
VENV=".venv-tools"
PYTHON="${PYTHON:-python3}"

say() { printf 'ci-tools: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  say "apt-get install --no-install-recommends $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# 1. promtool (Debian ships it in the prometheus package). The package's service is not wanted: where systemd
#    runs, it is stopped and disabled again so that no Prometheus server is left listening on :9090.
if command -v promtool >/dev/null 2>&1; then
  say "promtool present: $(command -v promtool)"
else
  apt_install prometheus
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null 2>&1 || { say "promtool is still missing after installing prometheus"; exit 1; }
  say "installed promtool: $(promtool --version 2>&1 | head -n1)"
fi

# 2. Schemathesis in .venv-tools/
have_st() { [ -x "$VENV/bin/st" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" >/dev/null 2>&1; }
if have_st; then
  say "schemathesis $SCHEMATHESIS_VERSION present in $VENV/"
else
  command -v "$PYTHON" >/dev/null 2>&1 || { say "$PYTHON not found: install python3 (apt-get install python3 python3-venv)"; exit 1; }
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    say "creating the virtualenv $VENV/ with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV" >&2 2>/dev/null; then
      # Debian's own python3 has no ensurepip without python3-venv
      rm -rf "$VENV"
      if command -v apt-get >/dev/null 2>&1; then
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV" >&2
      else
        say "'$PYTHON -m venv' failed and apt-get is not available"; exit 1
      fi
    fi
  fi
  say "pip install schemathesis==$SCHEMATHESIS_VERSION into $VENV/"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "schemathesis==$SCHEMATHESIS_VERSION" >&2
  have_st || { say "schemathesis $SCHEMATHESIS_VERSION did not install into $VENV/"; exit 1; }
  say "installed $("$VENV/bin/st" --version 2>&1 | head -n1)"
fi
# 2b. the supply-chain verifiers, in the same venv (extras: the cryptography backend, the JSON schema validator)
have_supply() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('securesystemslib') != '$SECURESYSTEMSLIB_VERSION' or m.version('cyclonedx-python-lib') != '$CYCLONEDX_LIB_VERSION'); import cryptography, jsonschema" >/dev/null 2>&1
}
if have_supply; then
  say "securesystemslib $SECURESYSTEMSLIB_VERSION and cyclonedx-python-lib $CYCLONEDX_LIB_VERSION present in $VENV/"
else
  say "pip install securesystemslib[crypto]==$SECURESYSTEMSLIB_VERSION cyclonedx-python-lib[json-validation]==$CYCLONEDX_LIB_VERSION into $VENV/"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "securesystemslib[crypto]==$SECURESYSTEMSLIB_VERSION" "cyclonedx-python-lib[json-validation]==$CYCLONEDX_LIB_VERSION" >&2
  have_supply || { say "the supply-chain verifiers did not install into $VENV/"; exit 1; }
fi
# keep the venv out of git status (Python >= 3.13 writes this file itself; 3.11 does not)
[ -f "$VENV/.gitignore" ] || printf '# created by scripts/ci-tools.sh\n*\n' > "$VENV/.gitignore"

# ---------------------------------------------------------------------------------------------------------------
# 3. etcd, for the etcd store (CP-7): src/controlplane/etcd-store.test.ts and test/e2e/controlplane-ha.test.ts
#    start their own throw-away members on loopback. Debian's etcd-server gives `etcd`, etcd-client `etcdctl`
#    (handy to look at the keys under /unikctl/ when a test fails). As with prometheus, the packaged service is
#    not wanted: where systemd runs, it is stopped and disabled so that nothing is left listening on :2379.
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  say "etcd present: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n1))"
else
  apt_install etcd-server etcd-client
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  command -v etcd >/dev/null 2>&1 || { say "etcd is still missing after installing etcd-server"; exit 1; }
  say "installed $(etcd --version 2>/dev/null | head -n1)"
fi

# ---------------------------------------------------------------------------------------------------------------
# 4. libsqlite3-dev: examples/go-gin-sqlite links libsqlite3 through cgo (#cgo LDFLAGS: -lsqlite3), so its build
#    needs the header and the libsqlite3.so link; the image then carries libsqlite3.so.0 from the closure.
if [ -f /usr/include/sqlite3.h ]; then
  say "libsqlite3-dev present"
else
  apt_install libsqlite3-dev
  [ -f /usr/include/sqlite3.h ] || { say "sqlite3.h is still missing after installing libsqlite3-dev"; exit 1; }
  say "installed libsqlite3-dev"
fi

# 5. actionlint (pinned), for the workflow check of test/e2e/release.test.ts: built from its Go module with
#    `go install` into .tools/bin/ (git-ignored); Go's module and build caches make a rebuild cheap, and a second
#    run only compares the version.
ACTIONLINT_VERSION="v1.7.12"
TOOLS_BIN="$PWD/.tools/bin"
if [ -x "$TOOLS_BIN/actionlint" ] && [ "$("$TOOLS_BIN/actionlint" -version 2>/dev/null | head -n1)" = "$ACTIONLINT_VERSION" ]; then
  say "actionlint $ACTIONLINT_VERSION present in .tools/bin/"
else
  command -v go >/dev/null 2>&1 || { say "go not found: actionlint is built with go install (install Go first; the go pack needs it too)"; exit 1; }
  say "go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION into .tools/bin/"
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
  say "installed actionlint $("$TOOLS_BIN/actionlint" -version | head -n1)"
fi

# 6. Debian's chromium, for the SLO page's browser test (test/e2e/slo-dashboard.test.ts, driven by playwright-core
#    with executablePath /usr/bin/chromium: no browser is ever downloaded).
if [ -x /usr/bin/chromium ]; then
  say "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  apt_install chromium
  [ -x /usr/bin/chromium ] || { say "chromium is still missing after installing it"; exit 1; }
  say "installed $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
fi
