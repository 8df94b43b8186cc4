#!/bin/sh
# QEMU bug found by migfuzz (live migrations, issue 26): on 11.1, a precopy migration with
# multifd (2 or more channels) switched to postcopy while it runs fails now and then, on the
# destination:
#   loadvm failed during postcopy: -1: Failed to load section ID: stream error: -1:
#   Channel error: Operation not permitted
# and on the source "Sibling indicated error 1", status 'failed'. No guest is needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh [TRIES] [DELAY]   (defaults: 10 tries, 0.03 s)
#   (QEMU: the command words that start QEMU; a migfuzz farm binary needs its loader words)
#
# Two processes, '-M virt -cpu cortex-a57 -m 64M', HMP on stdin; both set multifd and
# postcopy-ram and multifd-channels 3; the destination 'migrate_incoming unix:...', the
# source 'migrate -d unix:...' then, DELAY seconds later, 'migrate_start_postcopy'.
# Expected: every migration completes (QEMU allows postcopy with multifd since 10.1,
# e274188612, and 'migrate_start_postcopy' at any time during the precopy).
# Actual (Debian builds, this machine, DELAY 0.03): 11.1.3 6 of 10 tries and 11.1.2 2 of 10
# fail as above, the destination exits; DELAY 0: 0 of 10 on 11.1.3. (10.0 refuses
# postcopy-ram with multifd outright, "Postcopy is not yet compatible with multifd": exit 2.) With 'migrate_start_postcopy' sent at once (DELAY 0), with one channel,
# or without multifd, none failed in 10-12 tries each (migfuzz: tests/qemu/test_live_migration.py).
# Seen through migfuzz's harness (fuzz/run/live.py, postcopy switched at the MIGRATION_PASS 2
# event or 10-40 ms after 'migrate'): 6/20 with a guest writing memory, 7/15 with a still one.
#
# Exit status: 0 if every try completed, 1 if one failed (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
TRIES=${1:-10}
DELAY=${2:-0.03}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
CAPS='migrate_set_capability multifd on
migrate_set_capability postcopy-ram on
migrate_set_parameter multifd-channels 3'
failed=0
i=0
while [ "$i" -lt "$TRIES" ]; do
  i=$((i + 1))
  rm -f "$WORK/m.sock"
  # shellcheck disable=SC2086
  { echo "$CAPS"; echo "migrate_incoming unix:$WORK/m.sock"; sleep 4; echo quit; } |
    $QEMU -M virt -cpu cortex-a57 -m 64M -nodefaults -display none -monitor stdio \
      -incoming defer > "$WORK/dst.out" 2>&1 &
  dst=$!
  sleep 0.5
  # shellcheck disable=SC2086
  { echo "$CAPS"; sleep 0.2; echo "migrate -d unix:$WORK/m.sock"; sleep "$DELAY";
    echo migrate_start_postcopy; sleep 2; echo "info migrate"; echo quit; } |
    $QEMU -M virt -cpu cortex-a57 -m 64M -nodefaults -display none -monitor stdio \
      > "$WORK/src.out" 2>&1 || exit 2
  wait "$dst"
  src_status=$(tr -d '\r' < "$WORK/src.out" | sed -n 's/.*Status:[[:space:]]*//p' | tail -1)
  dst_error=$(tr -d '\r' < "$WORK/dst.out" | grep -m1 -o 'loadvm failed.*')
  case "$src_status" in
    completed*) echo "try $i: completed" ;;
    failed*) failed=$((failed + 1)); echo "try $i: FAILED: source: $src_status; destination: $dst_error" ;;
    *) echo "try $i: unclear (source status '$src_status')"; exit 2 ;;
  esac
done
echo "$failed of $TRIES failed"
[ "$failed" -eq 0 ]
