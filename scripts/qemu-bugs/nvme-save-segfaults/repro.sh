#!/bin/sh
# QEMU bug found by migfuzz: QEMU 11.1 dies with SIGSEGV (exit status 139) when it saves the
# state of an 'nvme' controller that has no drive of its own -- on any 'migrate' (to
# "exec:cat > /dev/null", to file:, live or not) and on 'savevm'. No guest is needed.
#
#   QEMU="qemu-system-aarch64" ./repro.sh     (QEMU: the command words that start QEMU)
#
# One process, '-M virt -nodefaults -display none -S -device nvme,serial=x' (no drive=, no
# nvme-ns), HMP on stdio:  migrate "exec:cat > FILE"; info migrate
# Expected: the migration completes (or, as up to 10.2, is refused: "State blocked by
#           non-migratable device '0000:00:01.0/nvme'"), and QEMU stays up.
# Actual (11.1): QEMU segfaults in the migration thread and prints nothing of its own.
# -S does not matter (a running VM crashes the same way); 'savevm' to a qcow2 drive crashes
# in the HMP thread; an 'nvme-ns,drive=D' on the drive-less controller does not help (it
# still crashes). The control -- the same controller with '-drive ...,id=d -device
# nvme,drive=d' -- migrates (11.1) or is refused (older) and survives.
# The load side has the same hole: a destination whose controller has no drive segfaults
# (in blk_set_enable_write_cache) loading the control's stream; that is checked second.
#
# Cause (read from the Debian binary: the VMStateDescriptions decoded in memory, and the
# disassembly; 11.1's source is newer than the upstream mirror we read, where 'nvme' is
# still '.unmigratable = 1'): 11.1's nvme_vmstate (hw/nvme/ctrl.c) saves the controller's
# embedded namespace, NvmeCtrl.namespace, with nvme_vmstate_ns ("nvme_ns", hw/nvme/ns.c),
# whose first field is a VMSTATE_WITH_TMP ("nvme_ns_tmp") with
#   pre_save_errp:  tmp->enable_write_cache = blk_enable_write_cache(tmp->parent->blkconf.blk)
#   post_load_errp: blk_set_enable_write_cache(tmp->parent->blkconf.blk, tmp->enable_write_cache)
# The embedded namespace only gets a BlockBackend from the controller's drive= property
# (nvme_realize sets it up only 'if (n->namespace.blkconf.blk)'); without one blk is NULL,
# and blk_enable_write_cache() (block/block-backend.c) returns blk->enable_write_cache
# unchecked: a read at NULL+0xe8. Nothing (no migration blocker, no .needed/field_exists)
# keeps the drive-less embedded namespace out of the stream.
# Backtrace, 11.1.3 (Debian build, stripped; gdb + a stack scan of return addresses named
# with the dynamic symbols, as offsets from the binary's load address; rdi = 0 at the fault):
#   #0  0xe08fe4 blk_enable_write_cache+0x4    movzbl 0xe8(%rdi),%eax  (blk->enable_write_cache)
#   #1  0x8d0b47 nvme_ns_tmp's pre_save_errp   (static at 0x8d0b30, hw/nvme/ns.c)
#   #2-#9        static code of migration/ (vmstate_save_state_v and the VMSTATE_WITH_TMP
#                put, between xbzrle_decode_buffer and vmstate_load_vmsd): nvme_ns_tmp <-
#                nvme_ns <- nvme
#   #10 0x67ee96 static, migration/savevm.c    #11 qemu_savevm_state_non_iterable+0x89
#   #12 qemu_savevm_state_complete_precopy+0x64  #13 the migration thread ("mig/src/main")
#   savevm: ... #12 qemu_savevm_state_complete_precopy  #13 save_snapshot+0x3ac
#           #14 hmp_savevm+0x48  #15 handle_hmp_command (main thread)
#   load:   #0 blk_set_enable_write_cache+0x4  #1 0x8d0b7b nvme_ns_tmp's post_load_errp
#           #2 vmstate_load_vmsd+0x209 ... qemu_loadvm_state_main+0x3b6, qemu_loadvm_state
# 11.1.2: the same frames (blk_enable_write_cache+0x4 at 0xe08524, the pre_save at 0x8d0770).
# Checked (the migfuzz cache's Debian builds), exit status of this script:
#   11.1.3 (11.1) 1, 11.1.2 1 -- both the save and the load crash;
#   5.2.0 0, 7.2.22 0, 10.0.13 (10.0) 0, 10.0.2 0, 10.2.2 0, 10.2.2-asan 0 -- 'nvme' is
#   unmigratable there: migrate is refused ("State blocked by non-migratable device"),
#   and the load check is skipped.
#
# Exit status: 0 if QEMU survives both, 1 if it crashes (the bug), 2 on a setup error.
set -u
QEMU=${QEMU:-qemu-system-aarch64}
MACHINE=${MACHINE:-virt}
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
  $QEMU -M "$MACHINE" -nodefaults -display none -S -monitor stdio "$@" \
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
verdict() {  # verdict NAME: one line on what the migration did (from 'info migrate' etc.)
  if grep -q "non-migratable" "$WORK/$1.msg"; then echo "refused: $(grep -m1 -i 'error' "$WORK/$1.msg")"
  elif grep -q "completed" "$WORK/$1.msg"; then echo "migration completed"
  else echo "no migration status: $(head -3 "$WORK/$1.msg" | tr '\n' ' ')"; fi
}

dd if=/dev/zero of="$WORK/disk.raw" bs=1024 count=1024 2>/dev/null || exit 2

# Control: the controller with a drive. Must survive; on 11.1 its stream is kept for the
# load check.
CMDS="migrate \"exec:cat > $WORK/control.stream\"
info migrate"
run control -drive "if=none,id=d,file=$WORK/disk.raw,format=raw" -device nvme,drive=d,serial=x
if [ "$status" -ne 0 ]; then
  echo "setup: the control (nvme with a drive, migrate) failed: exit $status $(signal "$status")"
  cat "$WORK/control.msg"; exit 2
fi
echo "control (nvme,drive=d: migrate): exit 0, $(verdict control)"

bug=0
CMDS="migrate \"exec:cat > $WORK/save.stream\"
info migrate"
run save -device nvme,serial=x
if [ "$status" -gt 128 ]; then
  echo "BUG: nvme without a drive, migrate: QEMU killed by $(signal "$status")"
  if [ -s "$WORK/save.msg" ]; then echo "QEMU printed:"; cat "$WORK/save.msg"; fi
  bug=1
elif [ "$status" -ne 0 ]; then
  echo "setup: nvme without a drive: QEMU exited with status $status:"; cat "$WORK/save.msg"; exit 2
else
  echo "OK: nvme without a drive, migrate: QEMU survives, $(verdict save)"
fi

# The load side: the control's stream into a destination whose nvme has no drive.
if grep -q "completed" "$WORK/control.msg" && [ -s "$WORK/control.stream" ]; then
  CMDS="info status"
  run load -incoming "exec:cat $WORK/control.stream" -device nvme,serial=x
  if [ "$status" -gt 128 ]; then
    echo "BUG: nvme stream loaded into an nvme without a drive: QEMU killed by $(signal "$status")"
    bug=1
  else
    echo "OK: nvme stream loaded into an nvme without a drive: exit $status" \
      "($(grep -m1 -i -e error -e 'VM status' "$WORK/load.msg"))"
  fi
else
  echo "(load check skipped: the control's migration did not complete)"
fi
exit $bug
