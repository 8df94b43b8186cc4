#!/bin/sh
# QEMU bug found by migfuzz: QEMU 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1) gives every virtqueue
# 1024 entries, whatever size the device asked for, and writes vring.num 1024 into its
# stream; 11.1 refuses that stream for any virtio device whose queues are smaller:
#   VQ 0 vring.num 1024 exceeds allocated max 256
#   ... device '0000:00:01.0/virtio-iommu': Failed to load element of type virtio for virtio
# No guest is needed: a machine paused at reset shows it.
#
#   SRC_QEMU="..." DST_QEMU="..." ./repro.sh   (each: the command words that start that QEMU)
#   MACHINE (virt-7.2), CPU (cortex-a15), DEVICE (virtio-iommu-pci,addr=0x1) can be changed.
#
# Source: '-M $MACHINE -cpu $CPU -nodefaults -display none -S -device $DEVICE', HMP
#   migrate "exec:cat > FILE"; control: the source loads FILE itself (-incoming "exec:cat
#   FILE"); then the destination, the same command line, loads FILE.
# Expected: 10.0 -> 11.1 on a versioned machine type is a forward migration, which QEMU
#   promises (docs/devel/migration/compatibility.rst): the destination loads the stream.
# Actual: 11.1 refuses it (exit 1). Any virtio device with queues under 1024 entries does
#   the same (virtio-rng-pci: 8, virtio-balloon-pci: 128, virtio-scsi-pci, virtio-iommu-pci:
#   256); on every machine type (virt-5.2, virt-7.2, virt-10.0 checked).
# Cause (read from the Debian binaries; both changes are newer than the upstream mirror we
# read, where virtio_add_queue() sets vring.num = vring.num_default = queue_size and
# virtio_load() does not bound the incoming vring.num):
#   - 10.0.13's virtio_add_queue() (hw/virtio/virtio.c) stores the constant 0x400
#     (VIRTQUEUE_MAX_SIZE) in vring.num and vring.num_default and allocates 1024 used_elems,
#     ignoring its queue_size argument (10.0.2's stores queue_size). The only 10.0.13
#     changelog entry about queue sizes is the backport "virtio-mmio: fix QUEUE_NUM_MAX"
#     (CVE-2026-50626, gitlab work item 3882): probably that backport, done in the shared
#     virtio_add_queue() instead of in virtio-mmio. Every virtio device's QUEUE_NUM_MAX, a
#     guest-visible value, changed in a stable release, with no compat property.
#   - 11.1's virtio_load() checks the incoming vring.num against num_default ("VQ %d
#     vring.num %d exceeds allocated max %d"; the string is in 11.1 and 11.1.2 only).
#   5.2 to 10.2.2 have no such check: they take the 1024-entry queue into a device that
#   allocated 256 (or 8) used_elems, silently (this script says OK there: the bug it checks
#   does not show, but the load is not sound either).
# Checked (the migfuzz cache's Debian builds, cortex-a15), exit status of this script:
#   10.0.13 -> 11.1.3 1 (virt-5.2, virt-7.2, virt-10.0), 10.0.13 -> 11.1.2 1 (virt-5.2, virt-10.0);
#   10.0.13 -> 10.0.2, 10.2.2, 7.2 0 (section taken unchecked; 'cpu' refused after it);
#   10.0.2, 7.2 -> 11.1.3 and 11.1.2 0 (section taken; 'cpu' refused after it);
#   10.2.2 -> 11.1.3 0 (virt-5.2, virt-10.2: loaded); 11.1.3 <-> 11.1.2 0;
#   anything with 5.2: 2 (7.2 and later refuse 5.2's virtio-iommu section, version 1, and
#   5.2 refuses theirs, version 2); 11.1.x -> 10.0.13 and 10.2.2: 2 (the destination
#   aborts: vmstate_load_state: Assertion `first_elem || !n_elems || !size' failed, also
#   without this device; backward, not looked into).
#   With '-cpu cortex-a57' the destination refuses 10.0's 'cpu' section (another break),
#   which the stream carries after the device's: the script then says 0 (section taken).
#
# Exit status: 0 if the destination takes the device's section, 1 if it refuses it with the
# message above (the bug), 2 on a setup error or any other refusal.
set -u
SRC_QEMU=${SRC_QEMU:-qemu-system-aarch64}
DST_QEMU=${DST_QEMU:-qemu-system-aarch64}
MACHINE=${MACHINE:-virt-7.2}
CPU=${CPU:-cortex-a15}
DEVICE=${DEVICE:-virtio-iommu-pci,addr=0x1}
WANT='exceeds allocated max'  # what the destination prints when the bug shows
SECTION='/virtio-iommu'  # the device's section in the stream (its vmsd name)
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
