#!/bin/sh
# QEMU bug found by migfuzz (stateful engine): two 'loadvm' in a row into one paused process,
# then 'cont', and QEMU dies with SIGSEGV (exit status 139 / -11). No guest is needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh     (QEMU: the command words that start QEMU)
#
# One process, '-M virt -S', a qcow2 drive (empty-1m.qcow2, copied) and HMP on stdio:
#   savevm s0; loadvm s0; loadvm s0; cont
# Expected: the VM runs (as it does after one loadvm, or with a 'cont' between the loads).
# Actual:   QEMU segfaults inside 'cont'. It prints nothing of its own; the shell sees 139.
# The VM must stay paused across both loads: 'loadvm' on a running VM restarts it after each
# load, and that does not crash.
# The same happens with QMP snapshot-load twice, with two different snapshots, with a
# snapshot saved by another process, with '-loadvm s0' plus one 'loadvm s0', and on
# 'vexpress-a9'. 3 or 4 loads crash too on 5.2-10.0.x; on 11.1 only exactly two do (11.1's
# qemu_del_vm_change_state_handler() ignores NULL, which the third load's handler passes).
#
# Cause (read from the crash, not from a debug build): the post_load of every writable
# cfi.pflash01 ('virt' has two, with no -pflash drives both are writable) adds a VM
# change-state handler and keeps only the newest one in pfl->vmstate; the handler deletes
# pfl->vmstate when it runs. After two loads there are two entries E1, E2 per flash; on
# 'cont', vm_state_notify() calls E1, which frees E2, which QTAILQ_FOREACH_SAFE already
# holds as its next entry, and then calls through the freed E2 (use after free).
# With both flashes read-only (-drive if=pflash,readonly=on, units 0 and 1) there is no crash.
# Backtrace, 11.1.3 (Debian build, stripped; gdb + a stack scan with the dynamic symbols):
#   #0 0x5550034db10b ??  (E2->cb: glibc's mangled free-list pointer of the freed entry)
#   #1 vm_state_notify+0x7d   #2 vm_prepare_start+0xbb   #3 vm_start+0xf
#   #4 qmp_cont+0x212         #5 hmp_cont+0x28           #6 handle_hmp_command
#   (opaque of the freed entry is a "cfi.pflash01" object)
# Checked (Debian qemu-system-aarch64 5.2.0, 7.2.22, 10.0.13, 10.0.2, 11.1.3, 11.1.2): all exit 1.
# Probably the same as https://github.com/AFLplusplus/LibAFL/issues/2746 (q35 + OVMF
# pflash, two load_snapshot calls, segfault on restart).
#
# Exit status: 0 if QEMU survives, 1 if it crashes (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
MACHINE=${MACHINE:-virt}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# run NAME HMP-COMMAND...: one QEMU process, -S, the commands typed one by one, then quit.
# Sets $status to QEMU's exit status; the monitor's output goes to $WORK/NAME.out.
run() {
  name=$1; shift
  cp "$HERE/empty-1m.qcow2" "$WORK/disk.qcow2" || exit 2
  # shellcheck disable=SC2086
  { sleep 1; for c in "$@"; do echo "$c"; sleep 1; done; echo quit; } |
    $QEMU -M "$MACHINE" -nodefaults -display none -S \
      -drive "if=none,id=d0,file=$WORK/disk.qcow2,format=qcow2" -monitor stdio \
      > "$WORK/$name.out" 2>&1
  status=$?
  # What QEMU printed, without the echo of the typed commands.
  sed "s/$(printf "\033")\[[0-9]*[A-Z]//g" "$WORK/$name.out" | tr -d '\r' |
    grep -v -e '^(qemu)' -e '^QEMU .* monitor' > "$WORK/$name.msg"
}
signal() { [ "$1" -gt 128 ] && echo "signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"; }

# Control: one load, then cont. Must survive, and savevm must have worked.
run control "savevm s0" "info snapshots" "loadvm s0" "cont"
if [ "$status" -ne 0 ] || ! grep -q 's0' "$WORK/control.msg"; then
  echo "setup: the control (savevm s0, loadvm s0, cont) failed: exit $status $(signal "$status")"
  cat "$WORK/control.msg"; exit 2
fi
echo "control (savevm s0, loadvm s0, cont): exit 0"

run twice "savevm s0" "loadvm s0" "loadvm s0" "cont"
if [ -s "$WORK/twice.msg" ]; then echo "QEMU printed:"; cat "$WORK/twice.msg"; fi
if [ "$status" -gt 128 ]; then
  echo "BUG: savevm s0, loadvm s0, loadvm s0, cont: QEMU killed by $(signal "$status")"
  exit 1
fi
if [ "$status" -ne 0 ]; then echo "setup: QEMU exited with status $status"; exit 2; fi
echo "OK: savevm s0, loadvm s0, loadvm s0, cont: QEMU survives"; exit 0
