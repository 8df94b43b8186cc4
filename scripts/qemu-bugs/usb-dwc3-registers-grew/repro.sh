#!/bin/sh
# QEMU break found by migfuzz: from 10.0, the 'usb-dwc3' device (xlnx-versal-virt's USB
# controller, also on xlnx-zcu102 and imx8mp-evk) saves 384 registers where 9.2 and older
# saved 333, under the same vmstate version 1. A stream from <= 9.2 is misread by >= 10.0
# (and back): the destination reads 51 more words into 'regs' and then fails on what
# follows, with nothing that names the cause:
#   Missing section footer for usb-dwc3
#   load of migration failed: Invalid argument
# Not promised (xlnx-versal-virt is not a versioned machine type), but the device changed
# its stream without changing its version, which turns a clear "version N not supported"
# into a misread stream.
#
#   SRC_QEMU="..." DST_QEMU="..." ./repro.sh   (each: the command words that start that QEMU)
#   MACHINE (xlnx-versal-virt) can be changed.
#
# What it does: each QEMU saves the machine paused at reset (no guest is needed; HMP
# migrate "exec:cat > FILE"), and the script reads the 'usb-dwc3' section's description
# from each stream's own JSON trailer (QEMU_VM_VMDESCRIPTION): its version and the length
# of its 'regs' array. A plain restore of the source's stream cannot show the misread: every
# 7.2 -> 10.0 pair is refused earlier, on the CPU's register list (migfuzz got past that
# with its cpreg patch and met 'Missing section footer for usb-dwc3' behind it: campaign
# 'migfuzz fuzz --pairs 7.2:10.0,10.0:11.1 --budget 10m').
# Cause: QEMU commit b513766ee9 ("hw/usb/hcd-dwc3: Align global registers size with
#   Linux", 10.0) changes USB_DWC3_R_MAX (include/hw/usb/hcd-dwc3.h) from 0x530/4 + 1 to
#   0x600/4; vmstate_usb_dwc3 (hw/usb/hcd-dwc3.c) saves VMSTATE_UINT32_ARRAY(regs, USBDWC3,
#   USB_DWC3_R_MAX) and kept version_id 1. Fix: bump the version (and load the old array
#   into its first 333 words), or keep the array at its old size in the stream.
# Checked (the migfuzz cache's Debian builds): 7.2 -> 10.0.13, 10.0.2, 11.1.3 and
#   10.0.13 -> 7.2: exit 1 (333 <-> 384, version 1 both); 10.0.13 -> 11.1.3, 11.1.3 ->
#   10.0.2: 0; 5.2's xlnx-versal-virt has no usb-dwc3 (exit 2).
#
# Exit status: 0 if both streams describe usb-dwc3 alike, 1 if its 'regs' length differs
# under one version (the break), 2 on a setup error (no such device on the board, ...).
set -u
SRC_QEMU=${SRC_QEMU:-qemu-system-aarch64}
DST_QEMU=${DST_QEMU:-qemu-system-aarch64}
MACHINE=${MACHINE:-xlnx-versal-virt}
WAIT=${WAIT:-30}  # seconds QEMU gets to finish after 'quit' before it is killed
WORK=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# save NAME QEMU-WORDS: the machine paused at reset, saved to $WORK/NAME.stream.
save() {
  name=$1; qemu=$2
  ( sleep 1; printf 'migrate "exec:cat > %s"\n' "$WORK/$name.stream"; sleep 3
    printf 'quit\n' ) | \
    $qemu -M "$MACHINE" -nodefaults -display none -S -monitor stdio >"$WORK/$name.msg" 2>&1 &
  pid=$!
  waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$WAIT" ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then echo "$name: QEMU did not quit in $WAIT s"; exit 2; fi
  wait "$pid"; pid=""
  if [ ! -s "$WORK/$name.stream" ]; then echo "$name: no stream saved:"; cat "$WORK/$name.msg"; exit 2; fi
}

# regs NAME: "version N, regs M" of usb-dwc3 in $WORK/NAME.stream's JSON trailer.
regs() {
  python3 - "$WORK/$1.stream" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
for at in range(len(data) - 5, -1, -1):  # the 0x06 marker whose be32 length reaches the end
    if data[at] == 6 and at + 5 + struct.unpack(">I", data[at + 1:at + 5])[0] == len(data):
        break
else:
    sys.exit("no VM description at the end of the stream")
for dev in json.loads(data[at + 5:])["devices"]:
    if dev["name"] == "usb-dwc3":
        regs = [f for f in dev["fields"] if f["name"] == "regs"][0]
        print(f"version {dev['version']}, regs {regs.get('array_len', 1)}")
        break
else:
    sys.exit("no usb-dwc3 section in the stream")
PY
}

save src "$SRC_QEMU"
save dst "$DST_QEMU"
a=$(regs src) || exit 2
b=$(regs dst) || exit 2
echo "source:      usb-dwc3 $a"
echo "destination: usb-dwc3 $b"
if [ "$a" = "$b" ]; then echo "same layout"; exit 0; fi
if [ "${a%%,*}" = "${b%%,*}" ]; then
  echo "BUG: usb-dwc3's 'regs' changed length under one version: the destination misreads the stream"
  exit 1
fi
echo "the version differs: the destination can tell"; exit 0
