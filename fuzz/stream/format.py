"""Constants of the QEMU migration stream ("savevm" file format, version 3).

Numbers come from QEMU's ``migration/savevm.c``, ``migration/ram.c`` and
``migration/vmstate.c``; the limits at the bottom are ours. They keep an untrusted stream from
making the decoder allocate or loop without bound, and are far above what a real stream of a
small Arm ``virt`` guest needs.
"""

from __future__ import annotations

from typing import Final

# -- File header -------------------------------------------------------------------------------

FILE_MAGIC: Final = 0x5145564D
"""``QEVM``, the first four bytes of every stream."""

FILE_VERSION: Final = 3
"""The only stream version QEMU has written since 2009 (version 2 predates subsections)."""

# -- Top-level record types (one byte each) ---------------------------------------------------

VM_EOF: Final = 0x00
SECTION_START: Final = 0x01
SECTION_PART: Final = 0x02
SECTION_END: Final = 0x03
SECTION_FULL: Final = 0x04
SUBSECTION: Final = 0x05
VMDESCRIPTION: Final = 0x06
CONFIGURATION: Final = 0x07
COMMAND: Final = 0x08
SECTION_FOOTER: Final = 0x7E

# -- QEMU_VM_COMMAND numbers (``enum qemu_vm_cmd``) ---------------------------------------------

CMD_OPEN_RETURN_PATH: Final = 1
CMD_PING: Final = 2
CMD_POSTCOPY_ADVISE: Final = 3
CMD_POSTCOPY_LISTEN: Final = 4
CMD_POSTCOPY_RUN: Final = 5
CMD_POSTCOPY_RAM_DISCARD: Final = 6
CMD_PACKAGED: Final = 7
CMD_ENABLE_COLO: Final = 8
CMD_POSTCOPY_RESUME: Final = 9
CMD_RECV_BITMAP: Final = 10
CMD_SWITCHOVER_START: Final = 11

PLAIN_COMMAND_LENGTHS: Final[dict[int, int]] = {
    CMD_OPEN_RETURN_PATH: 0,
    CMD_PING: 4,
    CMD_SWITCHOVER_START: 0,
}
"""Commands a precopy stream may carry, with their fixed payload length.

Every other command belongs to postcopy or COLO, whose streams this decoder does not read.
"""

# -- The iterative "ram" section -------------------------------------------------------------

RAM_SECTION: Final = "ram"
RAM_VERSION: Final = 4
"""The version of the ``ram`` section; unchanged since QEMU 1.x."""

RAM_FLAG_FULL: Final = 0x01
"""Obsolete; QEMU refuses it."""
RAM_FLAG_ZERO: Final = 0x02
RAM_FLAG_MEM_SIZE: Final = 0x04
RAM_FLAG_PAGE: Final = 0x08
RAM_FLAG_EOS: Final = 0x10
RAM_FLAG_CONTINUE: Final = 0x20
RAM_FLAG_XBZRLE: Final = 0x40
RAM_FLAG_HOOK: Final = 0x80
"""RDMA registration hook; never in a file."""
RAM_FLAG_COMPRESS_PAGE: Final = 0x100
"""zlib-compressed page of the removed ``compress`` capability; not decoded."""
RAM_FLAG_MULTIFD_FLUSH: Final = 0x200

XBZRLE_ENCODING: Final = 0x01
"""The one encoding byte that may precede an XBZRLE page delta."""

CAP_IGNORE_SHARED: Final = b"x-ignore-shared"
CAP_MAPPED_RAM: Final = b"mapped-ram"

# -- The configuration section ----------------------------------------------------------------

CONFIG_TARGET_PAGE_BITS: Final = "configuration/target-page-bits"
CONFIG_CAPABILITIES: Final = "configuration/capabilities"
CONFIG_UUID: Final = "configuration/uuid"
UUID_SIZE: Final = 16

# -- VMState field types named in the description ("info" names) -------------------------------

INT_TYPES: Final[dict[str, tuple[int, bool]]] = {
    # name: (size in bytes, signed). All are big-endian: the "le" of "int32 le" means "less
    # or equal" (the loader checks the value against its own), not little-endian.
    "int8": (1, True),
    "int16": (2, True),
    "int32": (4, True),
    "int64": (8, True),
    "uint8": (1, False),
    "uint16": (2, False),
    "uint32": (4, False),
    "uint64": (8, False),
    "int32 equal": (4, True),
    "int64 equal": (8, True),
    "uint8 equal": (1, False),
    "uint16 equal": (2, False),
    "uint32 equal": (4, False),
    "int32 le": (4, True),
    "timer": (8, True),
    # Arm CPU fields with their own put/get, each a plain big-endian 32-bit word.
    "cpsr": (4, False),
    "fpscr": (4, False),
}
"""Types whose value is an integer, so that two streams compare by number, not by bytes."""

BOOL_TYPES: Final = frozenset({"bool", "powered_off"})
"""One-byte types whose value is true when the byte is non-zero."""

STRUCT_TYPES: Final = frozenset({"struct", "vstruct"})
CAPABILITY_TYPE: Final = "capability"
"""A length byte and that many bytes of a capability name: the only variable-size element."""

# -- Limits on untrusted input -----------------------------------------------------------------

MAX_DESCRIPTION_BYTES: Final = 16 * 1024 * 1024
"""The JSON description of a small guest is about 15 KiB; QEMU caps its own at 10 MiB."""
MAX_DESCRIPTION_DEPTH: Final = 24
"""Nesting of structs and subsections in the description (real ones nest 3 deep)."""
MAX_DESCRIPTION_DEVICES: Final = 10_000
MAX_FIELD_SIZE: Final = 1 << 31
MAX_SECTIONS: Final = 100_000
"""Section records (START, PART, END, FULL) and commands in one stream."""
MAX_RAM_BLOCKS: Final = 4096
MAX_EMPTY_ITEMS: Final = 65_536
"""Decoded fields and array elements that take no bytes: the only ones not bounded by length."""
MIN_PAGE_SIZE: Final = 1024
MAX_PAGE_SIZE: Final = 1 << 16
