#!/usr/bin/env bash
# Installs everything the Rivulet interop suite needs, idempotently:
#   * kcat (Debian package)                       -> /usr/bin/kcat
#   * Python venv with pinned clients + pytest    -> <repo>/.venv
#   * kafkajs (+ codecs) from package-lock.json   -> tests/interop/js/node_modules
#   * the oldest kafka-python that runs here        -> <repo>/.venv-old-clients
#   * the oldest kafkajs releases (0.8.1, 1.3.0)    -> tests/interop/js-old/node_modules
#   * Go and Debian's Go Kafka clients (sarama, kafka-go, confluent-kafka-go over
#     librdkafka-dev), for tests/interop/go (built by scripts/build-go-clients.sh)
# Fast when everything is already installed (hash stamps, no network).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

sha() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- kcat
install_kcat() {
    if command -v kcat >/dev/null 2>&1; then
        return 0
    fi
    log "installing kcat (apt-get)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -q --no-install-recommends kcat >/dev/null; then
        log "apt-get install failed; running apt-get update and retrying"
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q --no-install-recommends kcat >/dev/null
    fi
    command -v kcat >/dev/null 2>&1 || { log "kcat still missing after install"; exit 1; }
}

# ---------------------------------------------------------------- Go clients
# Debian's packages, used in GOPATH mode (the Go module proxy is not reachable here).
GO_PACKAGES=(golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev
             golang-github-confluentinc-confluent-kafka-go-dev librdkafka-dev)
install_go() {
    local missing=()
    local pkg
    for pkg in "${GO_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing ${missing[*]} (apt-get)"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
        log "apt-get install failed; running apt-get update and retrying"
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# ---------------------------------------------------------------- python venv
install_venv() {
    local req="tests/interop/requirements.txt"
    local venv="$ROOT/.venv"
    local stamp="$venv/.rivulet-requirements.sha256"
    local want
    want="$(sha "$req")"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    local py="${PYTHON:-}"
    if [ -z "$py" ]; then
        if command -v python3 >/dev/null 2>&1; then py=python3; else py=python; fi
    fi
    if [ ! -x "$venv/bin/python" ]; then
        log "creating venv at $venv with $py ($($py --version 2>&1))"
        "$py" -m venv "$venv"
    fi
    log "installing pinned Python packages from $req"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    "$venv/bin/python" - <<'PY'
import confluent_kafka, kafka, kafka.codec as c, pytest  # noqa: F401
missing = [n for n, ok in (("snappy", c.has_snappy()), ("lz4", c.has_lz4()), ("zstd", c.has_zstd())) if not ok]
if missing:
    raise SystemExit("kafka-python codecs missing: %s" % missing)
PY
    echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- old clients
# The oldest kafka-python that still runs here, in a venv of its own so the current
# clients in .venv are untouched (tests/interop/test_old_clients.py).
install_old_venv() {
    local req="tests/interop/requirements-old.txt"
    local venv="$ROOT/.venv-old-clients"
    local stamp="$venv/.rivulet-requirements.sha256"
    local want
    want="$(sha "$req")"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        log "creating venv at $venv"
        python3 -m venv "$venv"
    fi
    log "installing old clients from $req"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    "$venv/bin/python" -c "import kafka; print(kafka.__version__)" >/dev/null
    echo "$want" >"$stamp"
}

# ---------------------------------------------------------------- node deps
install_node() {
    local dir="$ROOT/tests/interop/js"
    local stamp="$dir/node_modules/.rivulet-lock.sha256"
    local want
    want="$(sha "$dir/package.json" "$dir/package-lock.json")"
    if [ -d "$dir/node_modules/kafkajs" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || { log "npm not found (Node 20 + npm required)"; exit 1; }
    # kafkajs-lz4 depends on the native `lz4` package (node-gyp). Point node-gyp at the
    # system Node headers so it never tries to download them (no internet here).
    if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
        export npm_config_nodedir=/usr
    fi
    log "npm ci in tests/interop/js"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    # Codec check: kafkajs itself is mandatory, the codec packages are reported.
    (cd "$dir" && node --input-type=module -e "
import { loadCodecs } from './lib.mjs';
const c = await loadCodecs();
console.error('[install-test-deps] kafkajs codecs available: ' + JSON.stringify(c));
")
    echo "$want" >"$stamp"
}

# The oldest kafkajs releases (tests/interop/js-old/package.json), in a node directory of
# their own so tests/interop/js keeps the current kafkajs. Pure JavaScript, no codecs.
install_node_old() {
    local dir="$ROOT/tests/interop/js-old"
    local stamp="$dir/node_modules/.rivulet-lock.sha256"
    local want
    want="$(sha "$dir/package.json" "$dir/package-lock.json")"
    if [ -d "$dir/node_modules/kafkajs-0.8.1" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || { log "npm not found (Node 20 + npm required)"; exit 1; }
    log "npm ci in tests/interop/js-old"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    (cd "$dir" && node -e "
for (const v of ['0.8.1', '1.3.0']) {
  const got = require('kafkajs-' + v + '/package.json').version;
  if (got !== v) throw new Error('kafkajs-' + v + ' is ' + got);
}")
    echo "$want" >"$stamp"
}

install_kcat
install_go
install_venv
install_old_venv
install_node
install_node_old
log "ok (kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p'), $("$ROOT/.venv/bin/python" --version), node $(node --version), $(go version | cut -d' ' -f3))"
