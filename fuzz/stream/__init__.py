"""Decoding of QEMU migration streams (untrusted input) and the Arm CPU view of them."""
