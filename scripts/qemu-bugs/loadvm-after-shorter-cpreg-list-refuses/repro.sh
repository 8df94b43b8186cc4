#!/bin/sh
# QEMU bug found by migfuzz (stateful engine, loads after a failed load): once a process
# has loaded a snapshot whose CPU register list is *shorter* than its own (an older
# version's: here 7.2's, refused), it refuses its own snapshots from then on:
#   Invalid value 275 expecting positive value <= 258
#   Failed to load cpu:cpreg_vmstate_array_len
#   Error: Error -22 while loading VM state
# although a fresh process of the same version loads the same snapshot. A management layer
# whose revert to an old snapshot failed cannot revert to a good one either. No guest.
#
#   OLD="qemu-system-aarch64 (7.2)" DST="qemu-system-aarch64 (10.0)" ./repro.sh
#   (the command words that start each QEMU; default: the migfuzz cache's Debian builds,
#   found with 'migfuzz qemu list' -- set them when your cache is elsewhere)
#
# 1. OLD, '-M virt-7.2 -cpu cortex-a57 -S', a qcow2 drive: savevm old.
# 2. DST, the same options, no drive; each snapshot file is attached for its step only
#    (loadvm wants the snapshot on every writable drive):
#      drive_add 0 if=none,id=d1,file=MINE,format=qcow2; savevm mine; drive_del d1
#      drive_add 0 if=none,id=l1,file=OLD-COPY,format=qcow2; loadvm old; drive_del l1
#      drive_add 0 if=none,id=l2,file=MINE,format=qcow2; loadvm mine
#    Expected: 'loadvm mine' loads (a fresh DST loads it: the control).
#    Actual (10.0): 'loadvm old' is refused (7.2's list has registers 10.0 lacks), and
#    'loadvm mine' is refused with the lines above.
#
# Cause (target/arm/machine.c, upstream to 2026-02 and 10.0): vmstate_arm_cpu bounds the
# incoming list length with VMSTATE_INT32_POSITIVE_LE(cpreg_vmstate_array_len, ARMCPU):
# the incoming value must not exceed the field's *current* value, which is meant to be the
# destination's own list length (cpu_pre_save sets it so; so does the CPU's realize). A
# load overwrites the field with the incoming length, and cpu_pre_load never sets it
# back. After a shorter list (refused in cpu_post_load, or loaded), every longer one,
# including the process's own, fails the bound. A 'savevm' in between heals it
# (cpu_pre_save). Fix: set cpreg_vmstate_array_len = cpreg_array_len in cpu_pre_load.
# 11.1 aborts before it gets there: ../loadvm-after-refused-load-aborts.
#
# Results (the migfuzz cache's Debian builds; run from the checkout, which finds them):
#   OLD 7.2, DST 10.0 (10.0.13), MACHINE=virt-7.2: exit 1 (275 vs 258).
#   OLD 5.2, DST 7.2 (7.2.22), MACHINE=virt-5.2: exit 1 (258 vs 228).
#   OLD 10.0, DST 11.1 (11.1.3), MACHINE=virt-10.0: exit 2 -- 11.1 aborts on the second
#   load instead (../loadvm-after-refused-load-aborts).
#
# Exit status: 0 if DST loads its own snapshot after the other, 1 if it refuses it (the
# bug), 2 on a setup error.
set -u
CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}
words() {  # words VERSION: the command words of the migfuzz cache's build of VERSION
  python3 - "$CACHE" "$1" <<'PY' 2>/dev/null || echo "qemu-system-aarch64"
import shlex, sys
sys.path.insert(0, "")
from fuzz.versions.farm import Farm
from pathlib import Path
print(shlex.join(Farm(Path(sys.argv[1])).get(sys.argv[2]).command()))
PY
}
OLD=${OLD:-$(words 7.2)}
DST=${DST:-$(words 10.0)}
MACHINE=${MACHINE:-virt-7.2}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
COMMON="-accel tcg -M $MACHINE -cpu cortex-a57 -smp 1 -m 64M -nodefaults -display none -S"

# hmp QEMU-WORDS NAME [EXTRA-ARGS] -- HMP-COMMAND...: one process, the commands typed one
# by one, then quit. Sets $status; what QEMU printed (without the typed echo) is in
# $WORK/NAME.msg.
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

cp "$HERE/empty-1m.qcow2" "$WORK/old.qcow2" || exit 2
hmp "$OLD" save -drive "if=none,id=d0,file=$WORK/old.qcow2,format=qcow2" -- "savevm old"
[ "$status" -eq 0 ] || { echo "setup: OLD could not save:"; cat "$WORK/save.msg"; exit 2; }

add() { echo "drive_add 0 if=none,id=$1,file=$WORK/$2,format=qcow2"; }
cp "$HERE/empty-1m.qcow2" "$WORK/mine.qcow2"
hmp "$DST" control -- "$(add d1 mine.qcow2)" "savevm mine" "drive_del d1" \
  "$(add l2 mine.qcow2)" "loadvm mine"
if [ "$status" -ne 0 ] || grep -q -i "error" "$WORK/control.msg"; then
  echo "setup: a DST does not load its own snapshot at all:"; cat "$WORK/control.msg"; exit 2
fi
echo "control: DST saves and loads its own snapshot"

cp "$HERE/empty-1m.qcow2" "$WORK/mine.qcow2"
hmp "$DST" after -- "$(add d1 mine.qcow2)" "savevm mine" "drive_del d1" \
  "$(add l1 old.qcow2)" "loadvm old" "drive_del l1" "$(add l2 mine.qcow2)" "loadvm mine"
[ "$status" -eq 0 ] || { echo "DST exited with status $status:"; cat "$WORK/after.msg"; exit 2; }
if ! grep -q -i "error" "$WORK/after.msg"; then
  echo "setup: DST did not refuse the older snapshot:"; cat "$WORK/after.msg"; exit 2
fi
echo "after the older snapshot (refused), 'loadvm mine' says:"
if grep -q "cpreg_vmstate_array_len" "$WORK/after.msg"; then
  grep -e "Invalid value" -e "cpreg_vmstate_array_len" -e "Error -22" "$WORK/after.msg" |
    sed 's/^/  /'
  exit 1
fi
echo "  (nothing: it loads)"; exit 0
