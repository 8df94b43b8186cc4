#!/bin/sh
# QEMU bug found by migfuzz: on an Arm 'virt' machine with no MSI controller (GICv3 without
# an ITS: '-M virt-6.1,gic-version=3' or older under TCG, or 'its=off'), 10.2 and 11.1 give a
# 'pci-bridge' an MSI capability that 5.2 to 10.0 do not give it, so the bridge's config
# space differs and a forward migration from 10.0 is refused:
#   get_pci_config_device: Bad config data: i=0x34 read: 48 device: 4c cmask: ff wmask: 0 w1cmask:0
#   ... device '0000:00:02.0/pci_bridge': Failed to load element of type pci config for config
# No guest is needed: a machine paused at reset shows it.
#
#   SRC_QEMU="..." DST_QEMU="..." ./repro.sh   (each: the command words that start that QEMU)
#   MACHINE (virt-5.2,gic-version=3), CPU (cortex-a15), DEVICE (pci-bridge,addr=0x2,
#   chassis_nr=2) can be changed.
#
# Source: '-M $MACHINE -cpu $CPU -nodefaults -display none -S -device $DEVICE', HMP
#   migrate "exec:cat > FILE"; control: the source loads FILE itself (-incoming "exec:cat
#   FILE"); then the destination, the same command line, loads FILE.
# Expected: 10.0 -> 11.1 on a versioned machine type is forward, which QEMU promises
#   (docs/devel/migration/compatibility.rst): the destination loads the stream.
# Actual: 10.2 and 11.1 refuse it (exit 1). Config space as saved (from the streams):
#   10.0: 0x34 = 0x48; 0x40 SHPC (id 0x0c); 0x48 slot id (04 40 20 02), end of list.
#   11.1: 0x34 = 0x4c; 0x4c MSI (05 48 80 01: next 0x48, 64-bit, per-vector mask); the rest
#         the same.
# Cause: hw/pci-host/aspeed_pcie.c, aspeed_pcie_rc_class_init() sets the global
#   'msi_nonbroken = true' (commit f002aa35f3, "hw/pci-host/aspeed: Add AST2600 PCIe config
#   space and host bridge", in 10.2.0; still so in upstream master of 2026-02). A class_init
#   runs at start-up whether or not the device is used (object_class_foreach() ->
#   type_initialize(), qom/object.c, e.g. for the machine list), so in every
#   qemu-system-aarch64 that builds the ASPEED machines msi_init()/msix_init() (hw/pci/msi.c,
#   msix.c) no longer fail with -ENOTSUP on boards without an MSI controller. pci-bridge
#   (hw/pci-bridge/pci_bridge_dev.c, pci_bridge_dev_realize(): msi=auto "falls back to MSI
#   off silently") now gets its MSI capability, at 0x4c, after the slot id cap at 0x48.
#   Every other controller sets msi_nonbroken in realize (arm_gicv2m.c gicv2m_realize,
#   arm_gicv3_its_common.c gicv3_its_init_mmio). Not a missing compat property: the device
#   did not change; the board's MSI support is misreported. Fix: set it in
#   aspeed_pcie_rc_realize(). MSI-X devices on such boards are hit the same way:
#   DEVICE=virtio-serial-pci,addr=0x2 exits 1 too ('i=0x34 read: 84 device: 98': 11.1 adds
#   the MSI-X capability at 0x98), found by migfuzz behind 10.0 -> 11.1's cpu refusal.
# Checked (the migfuzz cache's Debian builds; 10.2.2 is a plain build), exit status:
#   virt-5.2,gic-version=3: 5.2, 7.2, 10.0.13, 10.0.2 -> 10.2.2, 11.1.3, 11.1.2: 1;
#     10.2.2 -> 5.2, 7.2, 10.0.13, 10.0.2: 1 and 11.1.x -> 5.2, 7.2, 10.0.13, 10.0.2: 1
#     (backward, not promised); among 5.2, 7.2, 10.0.13, 10.0.2: 0 (section taken; some
#     refuse 'cpu' after it); 10.2.2 -> 11.1.3, 11.1.2: 0;
#     11.1.3 <-> 11.1.2: 0; 11.1.x -> 10.2.2: 2 (the destination
#     aborts: vmstate_load_state: Assertion `first_elem || !n_elems || !size' failed,
#     also with the other device; backward, not looked into).
#   10.0.13 -> 11.1.3 by machine: virt-6.1,gic-version=3 1; virt-10.0,gic-version=3,its=off
#     1; virt-6.2,gic-version=3 0, virt-7.2 (GICv2 + v2m) 0, virt-7.2,gic-version=3 0,
#     virt-10.0 0, virt-10.0,gic-version=3 0 (an MSI controller exists: msi_nonbroken is
#     true on both sides); 10.2.2 -> 11.1.3 virt-10.2,gic-version=3,its=off 0.
#   10.0.13 -> 11.1.3 virt-10.0,gic-version=3,its=off with msi=off or shpc=off: 0.
#   With '-cpu cortex-a57' (the campaign's) 10.0 -> 11.1 is refused in 'cpu' on most
#   machine types (another break), after the bridge's section: the script says 0 there.
#
# Exit status: 0 if the destination takes the device's section, 1 if it refuses it with the
# message above (the bug), 2 on a setup error or any other refusal.
set -u
SRC_QEMU=${SRC_QEMU:-qemu-system-aarch64}
DST_QEMU=${DST_QEMU:-qemu-system-aarch64}
MACHINE=${MACHINE:-virt-5.2,gic-version=3}
CPU=${CPU:-cortex-a15}
DEVICE=${DEVICE:-pci-bridge,addr=0x2,chassis_nr=2}
WANT='Bad config data: i=0x34'  # what the destination prints when the bug shows
SECTION='/pci_bridge'  # the device's section in the stream (its vmsd name)
WAIT=${WAIT:-30}  # seconds QEMU gets to finish after 'quit' before it is killed
WORK=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  exec 3>&- 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# run NAME QEMU-WORDS -- QEMU-ARGS... : one QEMU process ('-M $MACHINE -cpu $CPU -nodefaults
# -display none -S -device $DEVICE', HMP on stdio fed from $CMDS, one command a line, a
# second apart, then quit). Sets $status; QEMU's output (without the typed echo) goes to
# $WORK/NAME.msg. A QEMU still up $WAIT s after 'quit' is killed: exit 2.
run() {
  name=$1; qemu=$2; shift 2
  rm -f "$WORK/in"; mkfifo "$WORK/in" || exit 2
  # shellcheck disable=SC2086
  $qemu -M "$MACHINE" -cpu "$CPU" -nodefaults -display none -S -monitor stdio \
    -device "$DEVICE" "$@" < "$WORK/in" > "$WORK/$name.out" 2>&1 &
  pid=$!
  exec 3> "$WORK/in"
  sleep 2
  # Each write in a subshell: if QEMU is gone, SIGPIPE ends the subshell, not the script.
  printf '%s\n' "$CMDS" | while IFS= read -r c; do (echo "$c" >&3) 2>/dev/null; sleep 1; done
  (echo quit >&3) 2>/dev/null
  exec 3>&-
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt "$WAIT" ]; do sleep 1; n=$((n + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    echo "setup: QEMU ($name) still running ${WAIT}s after quit; killed"; exit 2
  fi
  wait "$pid"; status=$?; pid=""
  sed "s/$(printf "\033")\[[0-9]*[A-Z]//g" "$WORK/$name.out" | tr -d '\r' |
    sed 's/^(qemu) *//' | grep -v -e '^$' -e '^QEMU .* monitor' -e 'is deprecated' \
      -e '^info ' -e '^migrate ' -e '^quit' > "$WORK/$name.msg"
}
# load NAME QEMU-WORDS: load $WORK/src.stream; sets $status and $loaded (yes/no).
load() {
  CMDS="info status"
  run "$1" "$2" -incoming "exec:cat $WORK/src.stream"
  if [ "$status" -eq 0 ] && ! grep -q -i 'error\|failed' "$WORK/$1.msg"; then loaded=yes; else loaded=no; fi
}

# Save on the source, paused at reset, no guest.
CMDS="migrate \"exec:cat > $WORK/src.stream\"
info migrate"
run save "$SRC_QEMU"
if [ "$status" -ne 0 ] || ! grep -q 'completed' "$WORK/save.msg" || [ ! -s "$WORK/src.stream" ]; then
  echo "setup: the source's save failed (exit $status):"; cat "$WORK/save.msg"; exit 2
fi
echo "source: saved $(wc -c < "$WORK/src.stream") bytes"

# Control: the source loads its own stream.
load control "$SRC_QEMU"
if [ "$loaded" != yes ]; then
  echo "setup: the control (the source loads its own stream) failed (exit $status):"
  cat "$WORK/control.msg"; exit 2
fi
echo "control (source -> source): loaded"

load pair "$DST_QEMU"
if [ "$loaded" = yes ]; then echo "OK: source -> destination: loaded"; exit 0; fi
echo "destination (exit $status) printed:"; cat "$WORK/pair.msg"
if grep -q "$WANT" "$WORK/pair.msg"; then
  echo "BUG: the destination refuses the source's $DEVICE"; exit 1
fi
# A refusal in the CPU's section, which the stream carries after the device's, means the
# device's section was taken: the bug does not show (the CPU's refusal is another break).
off() { LC_ALL=C grep -boa -F "$1" "$WORK/src.stream" | head -1 | cut -d: -f1; }
dev_at=$(off "$SECTION"); cpu_at=$(off "$(printf '\003cpu')")
if grep -q "device 'cpu'" "$WORK/pair.msg" && [ -n "$dev_at" ] && [ -n "$cpu_at" ] &&
   [ "$dev_at" -lt "$cpu_at" ]; then
  echo "OK: the destination took the device's section (it refused later, in 'cpu')"; exit 0
fi
echo "setup: refused for another reason than the one this script checks"; exit 2
