#!/bin/sh
# QEMU bug found by migfuzz (live migrations, issue 26): on 11.1, a precopy migration
# switched to postcopy while it runs fails in most tries, with or without multifd, on the
# destination:
#   loadvm failed during postcopy: -1: Failed to load section ID: stream error: -1:
#   Channel error: Operation not permitted
# and on the source "Sibling indicated error 1", status 'failed'. No guest is needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh [TRIES] [DELAY] [CHANNELS]
#   (defaults: 10 tries, 0.03 s, 0 = no multifd; QEMU: the command words that start QEMU,
#   a migfuzz farm binary needs its loader words)
#
# Two processes, '-M virt -cpu cortex-a57 -m 64M', HMP on stdin; both set postcopy-ram (and
# with CHANNELS > 0 multifd and multifd-channels CHANNELS); the destination
# 'migrate_incoming unix:...', the source 'migrate -d unix:...' then, DELAY seconds later,
# 'migrate_start_postcopy'.
# Expected: every migration completes ('migrate_start_postcopy' may come at any time during
# the precopy; QEMU allows postcopy with multifd since 10.1, e274188612).
# Actual (Debian builds, this machine, DELAY 0.03):
#   11.1.3, no multifd: 8 of 10 fail as above; CHANNELS=3: 6 of 10; 11.1.2, CHANNELS=3: 2 of 10.
#   10.0.13 and 7.2.22, no multifd: 0 of 10 (10.0 refuses postcopy with multifd outright:
#   "Postcopy is not yet compatible with multifd", exit 2).
#   11.1.3 with DELAY 0.1 (the precopy has converged by then): 0 of 10.
#   10.2.2 (a plain upstream build, 'migfuzz qemu build'), no multifd: 8 of 10 (2026-12-07):
#   upstream, not Debian's; it came between 10.0 and 10.2.
# Cause (docs/qemu-bugs.md): 7aaa1fc072 (10.1) starts postcopy with nothing pending, so no
#   discard is sent; the destination's loadvm_postcopy_handle_listen() then calls
#   postcopy_ram_prepare_discard(), which resets the state from LISTENING to DISCARD
#   (f952710757, 2015), and POSTCOPY_RUN fails with -1 (-EPERM on the channel).
# Seen through migfuzz's harness (fuzz/run/live.py, postcopy switched at the MIGRATION_PASS 2
# event or 10-40 ms after 'migrate'), with and without a guest writing memory; pinned in
# tests/qemu/test_live_migration.py (FAILS_NOW_AND_THEN).
#
# Exit status: 0 if every try completed, 1 if one failed (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
TRIES=${1:-10}
DELAY=${2:-0.03}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
CHANNELS=${3:-0}
CAPS='migrate_set_capability postcopy-ram on'
if [ "$CHANNELS" -gt 0 ]; then
  CAPS="$CAPS
migrate_set_capability multifd on
migrate_set_parameter multifd-channels $CHANNELS"
fi
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
  src_status=$(tr -d '\r' < "$WORK/src.out" | sed -n 's/.*[Ss]tatus:[[:space:]]*//p' | tail -1)
  dst_error=$(tr -d '\r' < "$WORK/dst.out" | grep -m1 -o 'loadvm failed.*')
  case "$src_status" in
    completed*) echo "try $i: completed" ;;
    failed*) failed=$((failed + 1)); echo "try $i: FAILED: source: $src_status; destination: $dst_error" ;;
    *) echo "try $i: unclear (source status '$src_status')"; exit 2 ;;
  esac
done
echo "$failed of $TRIES failed"
[ "$failed" -eq 0 ]
