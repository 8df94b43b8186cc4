#!/bin/sh
# QEMU bug found by migfuzz: a deadline of the EL2 physical timer (CNTHP), the EL2 virtual
# timer (CNTHV, FEAT_VHE) or the EL3 secure physical timer (CNTPS) that is still pending
# when the VM is saved never fires after the restore (TCG, aarch64 'virt'). The EL1
# physical timer's does. Cause: target/arm/machine.c migrates the QEMUTimers of
# gt_timer[GTIMER_PHYS] and [GTIMER_VIRT] only (VMSTATE_TIMER_PTR); the other timers'
# CTL and CVAL come back through raw_write, which does not re-arm them.
# Plain QEMU, no migfuzz needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh     (QEMU: the command words that start QEMU)
#
# guest.bin (make.py; guest.s is its listing) is a bare-metal program loaded at
# 0x40100000. It sets a deadline 200 ms of counter time ahead on CNTP (EL1, the control),
# CNTHP, CNTHV and CNTPS where its EL and CPU have them, prints '@@MIGFUZZ-CHECKPOINT@@'
# and polls the UART for a 'g'; meanwhile it arms each timer that fired 200 ms ahead
# again, so whenever the save comes, every deadline is pending. After the 'g' it waits
# for each timer and prints 'timer.<timer>.fired=0x...': 1 fired; 0 missed (its counter
# 1/8 s past the deadline, CTL.ISTATUS still 0); 2 absent (no such timer at this EL);
# 3 the counter stopped. Then its read-back and '@@MIGFUZZ-DONE@@'.
# Two configurations, -cpu max: el2 (virt-5.2,virtualization=on: the guest runs at EL2;
# CNTP, CNTHP, CNTHV) and el3 (virt-5.2,secure=on,virtualization=on: EL3; all four).
# For each:
#   control: one process runs the guest to its checkpoint, 'stop', 'cont', 'g':
#            every timer reads fired=1.
#   restore: one process runs it to its checkpoint, 'stop', 'migrate "exec:cat > FILE"';
#            a new process started with -incoming "exec:cat FILE" -S gets 'cont', 'g'.
#            Expected: every timer fired=1. Actual: CNTP fired=1, CNTHP/CNTHV/CNTPS 0.
# Exit status: 0 if every timer fires after the restore, 1 if an EL2/EL3 timer reads 0
# while the EL1 one reads 1 (the bug), 2 on a setup error.
#
# KEEP=DIR keeps the UART and monitor output and the streams in DIR; CONFIGS=el2 (or el3)
# runs one configuration.
#
# Results (the migfuzz cache's Debian builds; 2 runs each, one of them all 4 at once):
#   11.1 (11.1.3):  exit 1. el2: physical=1, hyp_physical=0, hyp_virtual=0;
#                   el3: physical=1, hyp_physical=0, hyp_virtual=0, secure_physical=0.
#   10.0 (10.0.13): exit 1, the same.
#   7.2  (7.2.22):  exit 1, the same.
#   5.2  (5.2.0):   exit 1. el2 the same; el3: the restore fails ("load of migration
#                   failed: Operation not permitted": 5.2 refuses its own stream of a CPU
#                   at EL3, a separate bug in docs/qemu-bugs.md).
# The controls (no save): every armed timer fired=1 on every version.
set -u
CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}
QEMU=${QEMU:-$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $CACHE/qemu/11.1/root/lib/x86_64-linux-gnu:$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu $CACHE/qemu/11.1/root/usr/bin/qemu-system-aarch64 -L $CACHE/qemu/11.1/root/usr/share/qemu}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${KEEP:-$(mktemp -d)}; [ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
COMMON="-accel tcg -cpu max -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none"
GUEST="-device loader,file=$HERE/guest.bin,addr=0x40100000,force-raw=on -device loader,addr=0x40100000,cpu-num=0"

# step NAME MONITOR-SCRIPT QEMU-ARGS...: run one QEMU with its HMP monitor fed by the
# shell function MONITOR-SCRIPT (which may write to the UART on fd 3 and read what the
# guest printed so far in $UART); keep the UART output in $WORK/NAME.uart.
step() {
  name=$1 script=$2; shift 2
  UART=$WORK/$name.uart; : > "$UART"
  rm -f "$WORK/ser.in" "$WORK/ser.out"; mkfifo "$WORK/ser.in" "$WORK/ser.out" || exit 2
  # Opened read-write here so that no open blocks, whichever side QEMU opens first.
  exec 3<> "$WORK/ser.in" 4<> "$WORK/ser.out"
  cat <&4 > "$UART" &
  reader=$!
  # shellcheck disable=SC2086
  $script | $QEMU $COMMON "$@" -serial "pipe:$WORK/ser" -monitor stdio \
    > "$WORK/$name.monitor" 2>&1
  sleep 0.2; kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
  exec 3>&- 4>&-
}
# wait_for TEXT [SECONDS]: until the guest printed TEXT (at most SECONDS, 30 by default).
wait_for() {
  n=0
  while ! grep -qa -- "$1" "$UART"; do
    n=$((n + 1)); [ "$n" -gt "${2:-30}0" ] && return 1; sleep 0.1
  done
}
# resume: send the guest its resume byte, 'g', until it prints its done marker. (A 'g'
# that comes before a restore completed is lost with the UART state it replaces; a 'g'
# after the first waits in the UART unread. The empty monitor line ends this once QEMU
# has quit.)
resume() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    printf g >&3; wait_for MIGFUZZ-DONE 3 && break; echo
  done
  echo quit
}
# Each QEMU starts paused (-S): 'cont' starts the guest.
control() {
  echo cont; wait_for MIGFUZZ-CHECKPOINT && sleep 0.5
  echo stop; sleep 0.5; echo cont; sleep 0.2; resume
}
save() {
  echo cont; wait_for MIGFUZZ-CHECKPOINT && sleep 0.5
  echo stop; echo "migrate \"exec:cat > $STREAM\""; echo quit
}
restore() { sleep 1; echo cont; sleep 0.5; resume; }

# monitor NAME: what QEMU said in NAME (without the monitor's echo of the commands).
monitor() { grep -av '(qemu)' "$WORK/$1.monitor"; }
# fired NAME: the timer.*.fired lines NAME's guest printed after its resume.
fired() { tr -d '\r' < "$WORK/$1.uart" | grep -a '^timer\.[a-z_]*\.fired='; }
# value NAME TIMER: what NAME's guest printed for TIMER (0, 1, 2, 3; empty if nothing).
value() {
  fired "$1" | awk -F= -v k="timer.$2.fired" '$1 == k { printf "%d\n", $2; exit }'
}
# all_fired NAME: every timer the guest has (not 2) fired.
all_fired() {
  [ -n "$(fired "$1")" ] || return 1
  for t in physical hyp_physical hyp_virtual secure_physical; do
    v=$(value "$1" "$t"); [ "$v" = 1 ] || [ "$v" = 2 ] || return 1
  done
}

STATUS=0 SETUP=0
for config in ${CONFIGS:-el2 el3}; do
  case $config in
    el2) MACHINE="-machine virt-5.2,virtualization=on" ;;
    el3) MACHINE="-machine virt-5.2,secure=on,virtualization=on" ;;
  esac
  STREAM=$WORK/$config.stream
  echo "== $config ($MACHINE -cpu max)"
  # shellcheck disable=SC2086
  step "$config-control" control $MACHINE $GUEST
  echo "-- control: the guest resumed in the process that ran it (no save):"
  fired "$config-control"
  if ! all_fired "$config-control"; then
    echo "setup: without a save not every timer fired (or no read-back)"
    monitor "$config-control"; SETUP=1; continue
  fi
  # shellcheck disable=SC2086
  step "$config-save" save $MACHINE $GUEST
  if ! grep -qa MIGFUZZ-CHECKPOINT "$WORK/$config-save.uart" || [ ! -s "$STREAM" ]; then
    echo "setup: the guest did not reach its checkpoint or nothing was saved"
    monitor "$config-save"; SETUP=1; continue
  fi
  # shellcheck disable=SC2086
  step "$config-restore" restore $MACHINE -incoming "exec:cat $STREAM"
  echo "-- restore: the guest resumed in a new process that loaded its saved state:"
  fired "$config-restore"
  if [ -z "$(fired "$config-restore")" ]; then
    echo "setup: no read-back after the restore (did the load fail?); QEMU said:"
    monitor "$config-restore"; SETUP=1; continue
  fi
  if all_fired "$config-restore"; then
    echo "OK: every timer fired after the restore"
  elif [ "$(value "$config-restore" physical)" = 1 ]; then
    for t in hyp_physical hyp_virtual secure_physical; do
      [ "$(value "$config-restore" "$t")" = 0 ] &&
        echo "BUG: timer.$t: the deadline pending at the save never fired after the restore"
    done
    STATUS=1
  else
    echo "setup: the EL1 physical timer did not fire after the restore either"; SETUP=1
  fi
done
[ "$STATUS" = 1 ] && exit 1
[ "$SETUP" = 1 ] && exit 2
exit 0
