#!/bin/sh
# QEMU bug found by migfuzz: after HMP 'loadvm' (or QMP snapshot-load) into a process whose
# vCPU already ran, QEMU 11.1 (TCG, aarch64 'virt') keeps executing code it translated
# *before* the load, although the load replaced the RAM it came from.
# 5.2, 7.2 and 10.0 run the loaded code; 10.2.2 (built from Debian's source, 'migfuzz qemu
# build 10.2.2') has the bug too, so it came in between 10.0 and 10.2. Plain QEMU, no
# migfuzz needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh     (QEMU: the command words that start QEMU)
#
# guest-a.bin and guest-b.bin are two bare-metal programs loaded at 0x40100000 that differ
# in their code: each writes a few words of memory, prints '@@MIGFUZZ-CHECKPOINT@@', waits
# for a 'g' on the UART, then prints what it wrote and '@@MIGFUZZ-DONE@@'.
#   1. A and B each run to their checkpoint and are saved as snapshots 'a' and 'b'.
#   2. Expected: a new process started with '-loadvm b' prints B's read-back after 'g'.
#   3. Actual: a new process (-S, no guest image of its own) does 'loadvm a', 'cont', 'g'
#      (A prints its read-back), 'stop', 'loadvm b', 'cont', 'g': on 11.1 it prints
#      garbage or A's labels: A's translated read-back code runs on B's state.
# (With '-device loader' in the loading process the bug hides: the loader rewrites its
# image on the reset that loadvm does, which drops the translations.)
# Exit status: 0 if step 3 prints what step 2 does, 1 if not (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
cp "$HERE/empty-1m.qcow2" "$WORK/disk.qcow2" || exit 2
MACHINE="-M virt -cpu cortex-a57 -m 64 -accel tcg -nodefaults -display none"
DISK="-drive if=none,id=d0,file=$WORK/disk.qcow2,format=qcow2"
guest() { echo "-device loader,file=$HERE/$1,addr=0x40100000,force-raw=on -device loader,addr=0x40100000,cpu-num=0"; }

# step NAME MONITOR-SCRIPT QEMU-ARGS...: run one QEMU with its HMP monitor fed by the
# shell function MONITOR-SCRIPT (which may write to the UART on fd 3); keep its UART output.
step() {
  name=$1 script=$2; shift 2
  rm -f "$WORK/ser.in" "$WORK/ser.out"; mkfifo "$WORK/ser.in" "$WORK/ser.out" || exit 2
  # Opened read-write here so that no open blocks, whichever side QEMU opens first.
  exec 3<> "$WORK/ser.in" 4<> "$WORK/ser.out"
  cat <&4 > "$WORK/$name.uart" &
  reader=$!
  # shellcheck disable=SC2086
  $script | $QEMU $MACHINE $DISK "$@" -serial "pipe:$WORK/ser" -monitor stdio \
    > "$WORK/$name.monitor" 2>&1
  sleep 0.2; kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
  exec 3>&- 4>&-
}
savevm() { sleep 1; echo stop; echo "savevm $1"; sleep 1; echo quit; }
save_a() { savevm a; }
save_b() { savevm b; }
resume() { sleep 1; printf g >&3; sleep 1; echo quit; }
# No guest of its own: load A, let it print its read-back, then load B and let it print.
a_then_b() {
  sleep 1; echo "loadvm a"; sleep 1; echo cont; sleep 1; printf g >&3; sleep 1
  echo stop; echo "loadvm b"; sleep 1; echo cont; resume
}

# shellcheck disable=SC2046
step saved-a save_a $(guest guest-a.bin)
# shellcheck disable=SC2046
step saved-b save_b $(guest guest-b.bin)
for s in a b; do
  grep -q 'MIGFUZZ-CHECKPOINT' "$WORK/saved-$s.uart" ||
    { echo "setup: guest $s did not reach its checkpoint"; cat "$WORK/saved-$s.monitor"; exit 2; }
done
step expected resume -loadvm b
step actual a_then_b -S
echo "== expected: a fresh process started with -loadvm b prints"
cat "$WORK/expected.uart"; echo
echo "== actual: a process that ran A to its end, then 'loadvm b', 'cont', prints (after A's output)"
after_a() { awk 'found { print } /@@MIGFUZZ-DONE@@/ { found = 1 }' "$1"; }
after_a "$WORK/actual.uart" | head -c 600; echo
grep -q 'MIGFUZZ-DONE' "$WORK/expected.uart" || { echo "setup: the fresh load printed no read-back"; exit 2; }
after=$(after_a "$WORK/actual.uart")
if [ "$after" = "$(cat "$WORK/expected.uart")" ]; then echo "OK: same read-back"; exit 0; fi
echo "BUG: the process that ran A before the load printed something else"; exit 1
