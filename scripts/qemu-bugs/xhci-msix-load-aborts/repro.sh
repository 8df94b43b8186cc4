#!/bin/sh
# QEMU bug found by migfuzz: QEMU aborts loading its own state of an xHCI controller that
# has no MSI-X -- on 'migrate'/-incoming and on 'loadvm' alike. No guest is needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh     (QEMU: the command words that start QEMU)
#
# Two processes of one QEMU, '-M virt -nodefaults -display none -S', HMP on stdio:
#   source:      -device nec-usb-xhci,msix=off       migrate "exec:cat > FILE"; info migrate
#   destination: the same, -incoming "exec:cat FILE"  info status; cont
# Expected: the destination loads the stream and runs, as it does when the controller has
#           MSI-X (the control, checked first).
# Actual (7.2 - 11.1): the destination aborts (exit status 134) while loading:
#   hw/pci/msix.c:591: msix_vector_unuse: Assertion `vector < dev->msix_entries_nr' failed.
# An xHCI has no MSI-X in two ways, and both crash:
#  1. msix=off (qemu-xhci has the property from 10.0 on, nec-usb-xhci always) -- any machine,
#     any interrupt controller; checked first.
#  2. msix=auto (the default) on a machine with no MSI controller: msix_init() then fails
#     silently. On 'virt' that is a GICv3 without an ITS: 'gic-version=3,its=off', or
#     gic-version=3/max on virt-6.1 and older (TCG ITS came with virt-6.2), or >8 CPUs
#     without gic-version on those. A GICv2 brings a GICv2m, and the crash goes away. This is
#     how migfuzz hit it (virt-5.2,gic-version=max,its=off,... -device qemu-xhci); the
#     CPU, -smp, -m, iommu=smmuv3, virtualization=, highmem-* and the guest's config-space
#     writes do not matter. Checked second: '-M virt,gic-version=3,its=off -device qemu-xhci'.
#     From 10.2 on this case no longer crashes, only because the xHCI gets MSI-X anyway:
#     aspeed_pcie_rc_class_init() (hw/pci-host/aspeed_pcie.c, commit f002aa35f3, 2025-09)
#     sets the global msi_nonbroken = true in a *class_init*, which every qemu-system-aarch64
#     process runs when select_machine() lists the classes (seen with gdb, 10.2.2) -- so every
#     device now advertises MSI/MSI-X whether the board can deliver it or not.
# 'savevm s0; loadvm s0' in one process aborts the same way (checked on 11.1.3).
#
# Cause (upstream source to 2026-02, unchanged there): xhci_pci_vmstate_post_load()
# (hw/usb/hcd-xhci-pci.c, since the PCI split 8ddab8dd3d, 2020) runs, for every interrupter
# (numintrs, 16 for qemu-xhci), msix_vector_use() if intr[i].msix_used else
# msix_vector_unuse() -- without asking msix_present()/msix_enabled() first. When
# msix_init() was skipped (msix=off) or refused ("MSI-X is not supported by interrupt
# controller": !msi_nonbroken, hw/pci/msix.c), dev->msix_entries_nr is 0, and
# msix_vector_unuse(dev, 0) hits assert(vector < dev->msix_entries_nr), added by
# 15377f6e79 "msix: Assert that specified vector is in range" (2022-08, QEMU 7.2). Before
# that, msix_vector_unuse() returned early for an out-of-range vector, so 5.2 survives.
# (msix_used itself is only ever set by xhci_pci_intr_update(), which returns early
# unless msix_enabled(), so the stream is fine: only the load-side loop is wrong.)
# Checked (the migfuzz cache's Debian builds), exit status of this script:
#   5.2.0 0 (no assertion yet); 7.2.22 1, 10.0.13 (10.0) 1, 10.0.2 1 -- both cases crash;
#   10.2.2 1, 10.2.2-asan 1, 11.1.3 (11.1) 1, 11.1.2 1 -- case 1 crashes, case 2 survives
#   (MSI-X present through the aspeed msi_nonbroken above).
#
# Exit status: 0 if every load survives, 1 if one aborts (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
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

# run NAME QEMU-ARGS... : one QEMU process, -S, HMP on stdio fed from $CMDS (one command a
# line, typed a second apart), then quit. Sets $status; QEMU's output (without the typed
# echo) goes to $WORK/NAME.msg. A QEMU still up $WAIT s after 'quit' is killed: exit 2.
run() {
  name=$1; shift
  rm -f "$WORK/in"; mkfifo "$WORK/in" || exit 2
  # shellcheck disable=SC2086
  $QEMU -nodefaults -display none -S -monitor stdio "$@" \
    < "$WORK/in" > "$WORK/$name.out" 2>&1 &
  pid=$!
  exec 3> "$WORK/in"
  sleep 1
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
    grep -v -e '^(qemu)' -e '^QEMU .* monitor' > "$WORK/$name.msg"
}
signal() { [ "$1" -gt 128 ] && echo "signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"; }

bug=0
# check NAME WHAT MACHINE DEVICE: save with migrate, load with -incoming, cont. (NAME is
# kept in $cn: run() sets $name.)
check() {
  cn=$1 what=$2 machine=$3 device=$4
  CMDS="migrate \"exec:cat > $WORK/$cn.stream\"
info migrate"
  run "$cn-save" -M "$machine" -device "$device"
  if [ "$status" -ne 0 ] || ! grep -q completed "$WORK/$cn-save.msg" ||
     [ ! -s "$WORK/$cn.stream" ]; then
    echo "setup: $what: the save failed (exit $status $(signal "$status")):"
    cat "$WORK/$cn-save.msg"; exit 2
  fi
  CMDS="info status
cont
info status"
  run "$cn-load" -M "$machine" -device "$device" -incoming "exec:cat $WORK/$cn.stream"
  if [ "$status" -gt 128 ]; then
    echo "BUG: $what: the load killed QEMU by $(signal "$status"):"
    # QEMU's last words share a line with the prompt, which the .msg filter drops.
    tr -d '\r' < "$WORK/$cn-load.out" | sed 's/^.*(qemu) //' |
      grep -a -i -e 'assert' -e 'error' | sed 's/^/  /'
    [ "$cn" = control ] && { echo "setup: the control must survive"; exit 2; }
    bug=1
  elif [ "$status" -ne 0 ] || ! grep -q 'VM status: running' "$WORK/$cn-load.msg"; then
    echo "setup: $what: the load exited with $status without running:"
    cat "$WORK/$cn-load.msg"; exit 2
  else
    echo "OK: $what: loaded and running"
  fi
}

check control "control (virt, nec-usb-xhci with MSI-X)" virt nec-usb-xhci
check msixoff "nec-usb-xhci,msix=off on virt" virt nec-usb-xhci,msix=off
check nomsi "qemu-xhci on virt,gic-version=3,its=off (no MSI controller)" \
  virt,gic-version=3,its=off qemu-xhci
exit $bug
