#!/bin/sh
# migfuzz reproducer: tolerance: a cpreg missing from the stream does not keep its reset value
# 11.1 (QEMU emulator version 11.1.3 Debian 1:11.1.3+ds-1)
#   -> 11.1 (QEMU emulator version 11.1.3 Debian 1:11.1.3+ds-1)
# case: virt-5.2 cortex-a57 smp=1 64M, guest ff563dc3483f80a7
# recorded: 11.1 -> 11.1: completed
#
# Usage: ./repro.sh [--resave]    binaries: QEMU_SRC=... QEMU_DST=... (command words)
# Needs the 'lz4' command (Debian package lz4) unless --resave is given.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}
QEMU_SRC=${QEMU_SRC:-$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $CACHE/qemu/11.1/root/lib/x86_64-linux-gnu:$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu $CACHE/qemu/11.1/root/usr/bin/qemu-system-aarch64 -L $CACHE/qemu/11.1/root/usr/share/qemu}
QEMU_DST=${QEMU_DST:-$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $CACHE/qemu/11.1/root/lib/x86_64-linux-gnu:$CACHE/qemu/11.1/root/usr/lib/x86_64-linux-gnu $CACHE/qemu/11.1/root/usr/bin/qemu-system-aarch64 -L $CACHE/qemu/11.1/root/usr/share/qemu}
if [ "${1:-}" = "--resave" ]; then
  ( printf 'cont\n'; sleep 2; printf 'stop\n'; printf 'migrate "exec:cat > %s"\nquit\n' "$WORK/src.stream" ) | \
    $QEMU_SRC -accel tcg -machine virt-5.2 -cpu cortex-a57 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -device "loader,file=$HERE/guest.bin,addr=0x40100000,force-raw=on" -device loader,addr=0x40100000,cpu-num=0 -nodefaults -display none -monitor stdio -serial none \
    >/dev/null
else
  lz4 -dcq "$HERE/stream.lz4" > "$WORK/src.stream" || exit 2
fi
# The pair restores the source's stream with DBGBVR0_EL1 left out of the cpreg
# list (patched.lz4), on the same version: QEMU promises a register the stream
# lacks keeps its reset value, which is the value the stream held for it.
# With --resave the control restores the new stream, the pair the recorded one.
cp "$WORK/src.stream" "$WORK/control.stream"
lz4 -dcq "$HERE/patched.lz4" > "$WORK/pair.stream" || exit 2
echo '== control: restore on 11.1'
QEMU=$QEMU_SRC
cp "$WORK/control.stream" "$WORK/src.stream"
$QEMU -accel tcg -machine virt-5.2 -cpu cortex-a57 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none -monitor none -serial none -incoming "exec:cat $WORK/src.stream" </dev/null & pid=$!
sleep 3; if kill $pid 2>/dev/null; then echo "control: loaded"; fi
wait $pid 2>/dev/null
echo '== pair: restore on 11.1'
QEMU=$QEMU_DST
cp "$WORK/pair.stream" "$WORK/src.stream"
$QEMU -accel tcg -machine virt-5.2 -cpu cortex-a57 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none -monitor none -serial none -incoming "exec:cat $WORK/src.stream" </dev/null & pid=$!
sleep 3; if kill $pid 2>/dev/null; then echo "pair: loaded"; fi
wait $pid 2>/dev/null
echo '== the guest read-back after each restore'
# read_back LABEL: restore with $QEMU, 'cont', send the guest its resume byte on the UART,
# and keep what it prints (its read-back, one name=0x... line per item) in $WORK/LABEL.uart.
read_back() {
  mkfifo "$WORK/$1.in" "$WORK/$1.out" || exit 2
  cat "$WORK/$1.out" > "$WORK/$1.uart" &
  ( sleep 1; printf 'cont\n'; sleep 0.5; printf 'g' > "$WORK/$1.in"; sleep 2
    printf 'quit\n' ) | \
    $QEMU -accel tcg -machine virt-5.2 -cpu cortex-a57 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none -monitor stdio \
      -chardev "pipe,id=ser,path=$WORK/$1" -serial chardev:ser \
      -incoming "exec:cat $WORK/src.stream" >/dev/null 2>&1
  wait
}
# item LABEL NAME: the value NAME read back in LABEL's UART ("exception": the EXC line).
item() {
  if [ "$2" = exception ]; then grep -a '^EXC' "$WORK/$1.uart" | head -n 1 | tr -d '\r'
  else awk -F= -v k="$2" '{ sub(/\r$/, "") } $1 == k { print $2; exit }' "$WORK/$1.uart"; fi
}
STATUS=0
cp "$WORK/control.stream" "$WORK/src.stream"
QEMU=$QEMU_SRC; read_back control
cp "$WORK/pair.stream" "$WORK/src.stream"
QEMU=$QEMU_DST; read_back pair
c=$(item control DBGBVR0_EL1); p=$(item pair DBGBVR0_EL1)
echo "DBGBVR0_EL1: after 11.1 -> 11.1 $c, after 11.1 -> 11.1 $p"
[ "$c" = "$p" ] || STATUS=1
[ "$STATUS" = 1 ] && echo "BUG: the read-back differs"
[ "$STATUS" = 0 ] && echo "OK: the read-back is the same"
exit "$STATUS"
