#!/bin/sh
# migfuzz reproducer: refused-on-load: cpreg value not accepted: P15_4_C1_C1_1
# 5.2 (QEMU emulator version 5.2.0 Debian 1:5.2+dfsg-11+deb11u3)
#   -> 10.0 (QEMU emulator version 10.0.13 Debian 1:10.0.13+ds-0+deb13u1)
# case: virt-5.2,virtualization=on cortex-a72 smp=1 64M, guest a729dcfd45a69276
# recorded: 5.2 -> 10.0: refused: error while loading state for instance 0x0 of device 'cpu'
#
# Usage: ./repro.sh [--resave]    binaries: QEMU_SRC=... QEMU_DST=... (command words)
# Needs the 'lz4' command (Debian package lz4) unless --resave is given.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}
QEMU_SRC=${QEMU_SRC:-$CACHE/qemu/5.2/root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $CACHE/qemu/5.2/root/lib/x86_64-linux-gnu:$CACHE/qemu/5.2/root/usr/lib/x86_64-linux-gnu $CACHE/qemu/5.2/root/usr/bin/qemu-system-aarch64 -L $CACHE/qemu/5.2/root/usr/share/qemu}
QEMU_DST=${QEMU_DST:-$CACHE/qemu/10.0/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $CACHE/qemu/10.0/root/lib/x86_64-linux-gnu:$CACHE/qemu/10.0/root/usr/lib/x86_64-linux-gnu $CACHE/qemu/10.0/root/usr/bin/qemu-system-aarch64 -L $CACHE/qemu/10.0/root/usr/share/qemu}
if [ "${1:-}" = "--resave" ]; then
  ( printf 'cont\n'; sleep 2; printf 'stop\n'; printf 'migrate "exec:cat > %s"\nquit\n' "$WORK/src.stream" ) | \
    $QEMU_SRC -accel tcg -machine virt-5.2,virtualization=on -cpu cortex-a72 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -device "loader,file=$HERE/guest.bin,addr=0x40100000,force-raw=on" -device loader,addr=0x40100000,cpu-num=0 -nodefaults -display none -monitor stdio -serial none \
    >/dev/null
else
  lz4 -dcq "$HERE/stream.lz4" > "$WORK/src.stream" || exit 2
fi
echo '== control: restore on 5.2'
QEMU=$QEMU_SRC
$QEMU -accel tcg -machine virt-5.2,virtualization=on -cpu cortex-a72 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none -monitor none -serial none -incoming "exec:cat $WORK/src.stream" </dev/null & pid=$!
sleep 3; if kill $pid 2>/dev/null; then echo "control: loaded"; fi
wait $pid 2>/dev/null
echo '== pair: restore on 10.0'
QEMU=$QEMU_DST
$QEMU -accel tcg -machine virt-5.2,virtualization=on -cpu cortex-a72 -smp 1 -m 64M -rtc base=2020-01-01T00:00:00,clock=vm -S -nodefaults -display none -monitor none -serial none -incoming "exec:cat $WORK/src.stream" </dev/null & pid=$!
sleep 3; if kill $pid 2>/dev/null; then echo "pair: loaded"; fi
wait $pid 2>/dev/null
