#!/usr/bin/env bash
# The services over gRPC, against the built binary: the committed generated code matches
# proto/ (when protoc is here), a stock Python grpcio client calls Stats and the standard
# health service, garbage and oversized messages are refused, and the split deployment
# (a gateway with Accounts, Library, Social and Stats in processes of their own) passes its own
# tests (Accounts, Library, Stats and Social killed, Social and Stats slowed; two gateways woken through Social's subscription), the
# exactly-once hammer (also across two gateways) and the kill -9 crash test; a play
# and a chat message traced across the processes into an OTLP receiver.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export MUSIT_BIN=${MUSIT_BIN:-$root/.build/debug/musit-tui}
export MUSIT_TEST_AUDIO=${MUSIT_TEST_AUDIO:-$root/.build/test-audio}
cd "$root"
if command -v protoc >/dev/null; then
    scripts/generate-proto.sh --check
else
    echo "grpc-tests: no protoc here; the generated code is not checked against proto/"
fi
python3 Tests/grpc/contracts.py
python3 Tests/grpc/social_contracts.py
python3 Tests/grpc/accounts.py
python3 Tests/grpc/library.py
python3 Tests/grpc/account_deletion.py
python3 Tests/grpc/split.py
python3 Tests/grpc/social.py
python3 Tests/grpc/subscription.py
python3 Tests/grpc/tracing.py
cd Tests/sync
MUSIT_SPLIT=1 python3 hammer.py --rounds "${SPLIT_HAMMER_ROUNDS:-2}"
MUSIT_SPLIT=1 python3 hammer.py --rounds 1 --two-gateways
MUSIT_SPLIT=1 python3 crash.py --rounds "${SPLIT_CRASH_ROUNDS:-4}"
MUSIT_SPLIT=1 python3 retention.py
