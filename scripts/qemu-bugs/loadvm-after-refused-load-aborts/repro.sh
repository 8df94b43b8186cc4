#!/bin/sh
# QEMU bug found by migfuzz (stateful engine, loads after a failed load): QEMU 11.1 refuses
# a snapshot whose CPU register list it cannot take ('loadvm' answers "cpreg only in
# incoming stream ... fail migration"), and the *next* 'loadvm' in the same process aborts:
#   ERROR:target/arm/machine.c:1062:cpu_pre_load: assertion failed: (!cpu->cpreg_vmstate_indexes)
# A management layer whose revert to one snapshot failed and which reverts to another
# (or retries) loses the VM. No guest is needed.
#
#   SRC="qemu-system-aarch64 (10.0)" DST="qemu-system-aarch64 (11.1)" ./repro.sh
#   (SRC, DST: the command words that start each QEMU; default: the migfuzz cache's
#   Debian 10.0 and 11.1 builds)
#
# 1. SRC, '-M virt-10.0 -cpu cortex-a57 -S', a qcow2 drive (empty-1m.qcow2, copied):
#    savevm s0.
# 2. DST, the same options and no drive, HMP on stdio:
#      drive_add 0 if=none,id=l1,file=COPY1,format=qcow2; loadvm s0; drive_del l1
#      drive_add 0 if=none,id=l2,file=COPY2,format=qcow2; loadvm s0
#    Expected: the second loadvm refused like the first (or loaded), QEMU still up.
#    Actual (11.1): the first is refused (register 0x1013c030, which 10.0 saves and 11.1
#    does not know), the second aborts QEMU (SIGABRT, exit 134) with the assertion above.
# A fresh 11.1 process given the second load alone refuses it cleanly (the control).
#
# Cause (from the assertion; 11.1's source is not in the upstream mirror we read, which
# ends 2026-02): 11.1's cpu_pre_load expects cpu->cpreg_vmstate_indexes to be NULL, i.e.
# that the previous load's cpu_post_load freed it; when cpu_post_load fails (the incoming
# list has a register the destination lacks) it returns without freeing it, so the next
# load's pre_load asserts. Up to 10.0 the array is preallocated and there is no assertion
# (10.0 refuses the same way twice and survives).
#
# Results (the migfuzz cache's Debian builds):
#   SRC 10.0, DST 11.1 (11.1.3) or 11.1.2: exit 1, the assertion above.
#   SRC 11.1, DST 10.0; SRC 10.0.2, DST 10.0; SRC 7.2, DST 10.0 (MACHINE=virt-7.2);
#   SRC 5.2, DST 7.2 (MACHINE=virt-5.2): exit 0 -- no abort before 11.1. (But see
#   ../loadvm-after-shorter-cpreg-list-refuses: the second load is refused there.)
# MACHINE: the machine type both sides run (default virt-10.0).
#
# Exit status: 0 if DST survives the second load, 1 if it aborts (the bug), 2 on a setup
# error (the save failed, or DST did not refuse the first load at all).
set -u
CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}
debian() {  # debian VERSION: the command words of the cache's Debian build of VERSION
  r=$CACHE/qemu/$1/root
  echo "$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $r/lib/x86_64-linux-gnu:$r/usr/lib/x86_64-linux-gnu $r/usr/bin/qemu-system-aarch64 -L $r/usr/share/qemu"
}
SRC=${SRC:-$(debian 10.0)}
DST=${DST:-$(debian 11.1)}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
MACHINE=${MACHINE:-virt-10.0}
COMMON="-accel tcg -M $MACHINE -cpu cortex-a57 -smp 1 -m 64M -nodefaults -display none -S"

# hmp QEMU-WORDS NAME [EXTRA-ARGS] -- HMP-COMMAND...: one process, the commands typed one by
# one, then quit. Sets $status; what QEMU printed (without the typed echo) is in $WORK/NAME.msg.
hmp() {
  q=$1 name=$2; shift 2
  extra=""
  while [ "$1" != "--" ]; do extra="$extra $1"; shift; done; shift
  # shellcheck disable=SC2086
  { sleep 1; for c in "$@"; do echo "$c"; sleep 1; done; echo quit; } |
    $q $COMMON $extra -monitor stdio > "$WORK/$name.out" 2>&1
  status=$?
  sed "s/$(printf "\033")\[[0-9]*[A-Z]//g" "$WORK/$name.out" | tr -d '\r' |
    grep -v -e '^(qemu)' -e '^QEMU .* monitor' > "$WORK/$name.msg"
}

cp "$HERE/empty-1m.qcow2" "$WORK/s.qcow2" || exit 2
hmp "$SRC" save -drive "if=none,id=d0,file=$WORK/s.qcow2,format=qcow2" -- "savevm s0"
if [ "$status" -ne 0 ]; then echo "setup: SRC could not save:"; cat "$WORK/save.msg"; exit 2; fi
cp "$WORK/s.qcow2" "$WORK/a.qcow2"; cp "$WORK/s.qcow2" "$WORK/b.qcow2"; cp "$WORK/s.qcow2" "$WORK/c.qcow2"
add() { echo "drive_add 0 if=none,id=$1,file=$WORK/$2,format=qcow2"; }

hmp "$DST" control -- "$(add l1 c.qcow2)" "loadvm s0" "drive_del l1"
if [ "$status" -ne 0 ] || ! grep -q "loading" "$WORK/control.msg"; then
  echo "setup: a fresh DST did not refuse the snapshot cleanly (status $status):"
  cat "$WORK/control.msg"; exit 2
fi
echo "control: a fresh DST refuses the snapshot and stays up:"
grep -m1 -i "error" "$WORK/control.msg" | sed 's/^/  /'

hmp "$DST" twice -- "$(add l1 a.qcow2)" "loadvm s0" "drive_del l1" "$(add l2 b.qcow2)" "loadvm s0"
if [ "$status" -eq 0 ]; then
  echo "the second load after a refused one: QEMU survives (no abort)"; exit 0
fi
echo "the second load after a refused one: QEMU exits with status $status:"
grep -e "ERROR" -e "Bail out" "$WORK/twice.msg" | head -2 | sed 's/^/  /'
exit 1
