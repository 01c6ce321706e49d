#!/usr/bin/env bash
# The whole test suite: unit, property, integration (local disk and a real S3-compatible server)
# and doc tests. Installs the S3 test server (moto, from PyPI) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import moto.server' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi
cargo test --locked --all-targets
cargo test --locked --doc
