#!/bin/sh
# QEMU bug found by migfuzz (live migrations): a 10.2 source hangs forever in the migration
# state 'postcopy-device' when the destination fails to load the device state after the
# switch to postcopy (or dies then). Not a cross-version protocol bug: 10.2.2 -> 10.2.2 with
# the destination started with another -cpu (the 'cpu' section is refused) hangs the same
# way; older destinations (5.2, 7.2, 10.0) only hang it because they refuse 10.2's CPU state.
# migrate_cancel is refused ("Postcopy migration in progress"); only 'quit' ends the source.
#
#   QEMU_SRC="qemu-system-aarch64" QEMU_DST="..." ./repro.sh [TRIES] [WAIT] [DELAY]
#   (defaults: 3 tries, 10 s, 0.005 s; QEMU_SRC/QEMU_DST: the command words that start each
#   version, QEMU_DST defaults to QEMU_SRC; a migfuzz farm binary needs its loader words)
#   env: MACHINE (virt-5.0), SRC_CPU/DST_CPU (cortex-a57), SRC_PAUSED (1: source runs -S,
#   0: its guest runs; the hang is racy then), KEEP (a folder: keeps the last try's output)
#   e.g. same version, destination refuses the CPU:  DST_CPU=cortex-a53 ./repro.sh
#
# Two processes, '-M $MACHINE -m 64M -accel tcg', HMP on stdin, destination -S -incoming
# defer; both 'migrate_set_capability postcopy-ram on'; the source 'migrate -d unix:...', then
# DELAY s later 'migrate_start_postcopy', then WAIT s later 'info migrate' and 'quit'.
# Each QEMU runs under timeout(1) and is killed at the end.
# Expected: the source ends 'completed' or, when the destination refuses the device state,
# 'failed' (10.2's POSTCOPY_DEVICE state exists so that the source can then resume).
# Actual (this machine, 2026-12-07, WAIT 6, paused source; in brackets with SRC_PAUSED=0):
#   10.2.2 (upstream build) -> 10.2.2, DST_CPU=cortex-a53: 3 of 3 stuck [1 of 3]; the
#     destination is 'failed' and alive ("loadvm failed during postcopy: ... Channel error").
#   10.2.2 -> 5.2: 3 of 3 [2 of 3]; -> 7.2: 3 of 3 [0 of 3]; -> 10.0: 3 of 3 [1 of 3]
#     (Debian builds; they refuse 'cpu': "Failed to load cpu:cpreg_vmstate_array_len", then
#     exit 1, abort or segfault: the source still waits).
#   11.1.3 (Debian) -> 11.1.3, virt-10.0, DST_CPU=cortex-a53: 2 of 8 (the others 'failed',
#     "Sibling indicated error 1"); 11.1.3 -> 10.0, virt-10.0: 0 of 6 (10.0 aborts in
#     vmstate_load_state, the source fails at once).
#   10.0 -> 5.2 (no POSTCOPY_DEVICE state): 0 of 3, 'failed' at once.
#   Control, 10.2.2 -> 10.2.2 same CPU: completed (1 of 4 'failed', the separate bug
#     ../postcopy-switch-during-precopy-fails).
# Cause (/tmp/postcopy-device-hang.md): 7b842fe354 (10.2, "migration: Introduce
#   POSTCOPY_DEVICE state") makes the migration thread, once nothing is pending, block in
#   qemu_event_wait(&s->postcopy_package_loaded_event) (migration_iteration_run); only the
#   PONG to PING 0x42, which sits after the device state in the postcopy package, sets it.
#   A destination that fails on the device state never sends it, and the return-path thread
#   exits on the error or EOF without waking the migration thread.
#
# Exit status: 0 if no try hung, 1 if the source was still in 'postcopy-device' after WAIT s
# in a try (the bug), 2 on a setup error.
set -u
QEMU_SRC=${QEMU_SRC:-qemu-system-aarch64}
QEMU_DST=${QEMU_DST:-$QEMU_SRC}
MACHINE=${MACHINE:-virt-5.0}
SRC_CPU=${SRC_CPU:-cortex-a57}
DST_CPU=${DST_CPU:-cortex-a57}
SRC_PAUSED=${SRC_PAUSED:-1}
SRC_S=; [ "$SRC_PAUSED" = 1 ] && SRC_S=-S
TRIES=${1:-3}
WAIT=${2:-10}
DELAY=${3:-0.005}
WORK=$(mktemp -d)
pids=
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP
how() { case $1 in 124|137) echo "killed by the time-out" ;; 134) echo "aborted" ;; *) echo "exit $1" ;; esac; }
CAPS='migrate_set_capability postcopy-ram on'
hung=0
i=0
while [ "$i" -lt "$TRIES" ]; do
  i=$((i + 1))
  rm -f "$WORK/m.sock"
  # Each QEMU runs under timeout(1) (SIGKILL 2 s after SIGTERM): a hung QEMU may not quit.
  # shellcheck disable=SC2086
  { echo "$CAPS"; echo "migrate_incoming unix:$WORK/m.sock"; sleep $((WAIT + 1));
    echo "info migrate"; echo quit; } |
    timeout -k 2 $((WAIT + 4)) $QEMU_DST -M "$MACHINE" -cpu "$DST_CPU" -m 64M -accel tcg \
      -nodefaults -display none -monitor stdio -S -incoming defer > "$WORK/dst.out" 2>&1 &
  dst=$!; pids="$pids $dst"
  sleep 0.5
  # shellcheck disable=SC2086
  { echo "$CAPS"; sleep 0.2; echo "migrate -d unix:$WORK/m.sock"; sleep "$DELAY";
    echo migrate_start_postcopy; sleep "$WAIT"; echo "info migrate"; echo quit; } |
    timeout -k 2 $((WAIT + 3)) $QEMU_SRC -M "$MACHINE" -cpu "$SRC_CPU" -m 64M -accel tcg \
      -nodefaults -display none -monitor stdio $SRC_S > "$WORK/src.out" 2>&1 &
  src=$!; pids="$pids $src"
  wait "$src"; src_rc=$?
  wait "$dst"; dst_rc=$?
  pids=; [ -n "${KEEP:-}" ] && cp "$WORK/src.out" "$WORK/dst.out" "$KEEP"/
  src_status=$(tr -d '\r' < "$WORK/src.out" | sed -n 's/.*[Ss]tatus:[[:space:]]*//p' | tail -1)
  dst_status=$(tr -d '\r' < "$WORK/dst.out" | sed -n 's/.*[Ss]tatus:[[:space:]]*//p' | tail -1)
  dst_error=$(tr -d '\r' < "$WORK/dst.out" | sed 's/\x1b\[[0-9]*[A-Z]//g' | grep -m1 -iE "error|fail|assert" | cut -c1-160)
  src_error=$(tr -d '\r' < "$WORK/src.out" | sed 's/\x1b\[[0-9]*[A-Z]//g' | grep -m1 -iE "error|fail|assert" | cut -c1-160)
  src_exit=$(how "$src_rc"); dst_exit=$(how "$dst_rc")
  echo "try $i: source after ${WAIT}s: '${src_status:-?}', $src_exit; ${src_error:+source: $src_error; }destination: '${dst_status:-exited}', $dst_exit; ${dst_error:+$dst_error}"
  case "$src_status" in
    postcopy-device*) hung=$((hung + 1)) ;;
    '') echo "no status from the source:"; head -5 "$WORK/src.out"; exit 2 ;;
  esac
done
echo "$hung of $TRIES: source stuck in postcopy-device after ${WAIT}s"
[ "$hung" -eq 0 ]
