#!/usr/bin/env bash
# Rebuilds ledger-node/web/ledger_web.wasm, the statement verifier the worker's page loads, from
# this crate and ledger-core. Run it after any change to how statements, notes, proofs or the
# entitlement rules work; tests/tests/pages.rs fails on a stale verifier (it verifies a statement
# the current node made, and refuses a tampered one).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rustup target add wasm32-unknown-unknown >/dev/null
cd "$ROOT"
# Small enough to send to a phone: no debug info, optimised for size.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
  CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build --locked --release -p ledger-web --target wasm32-unknown-unknown
cp target/wasm32-unknown-unknown/release/ledger_web.wasm ledger-node/web/ledger_web.wasm
ls -l ledger-node/web/ledger_web.wasm
