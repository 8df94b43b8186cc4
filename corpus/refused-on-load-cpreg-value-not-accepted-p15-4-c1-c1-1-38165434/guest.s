// migfuzz guest, base address 0x40100000
	.arch armv8-a+sve
	.text
	b L_start                               // 0x40100000: 14000400
	.balignl 2048, 0xd503201f               // 0x40100004: 511 x nop
L_vectors:                               // 0x40100800
	movz x0, #0x0, lsl #0                   // 0x40100800: d2800000
	b L_exception                           // 0x40100804: 14000290
	.balignl 128, 0xd503201f                // 0x40100808: 30 x nop
	movz x0, #0x1, lsl #0                   // 0x40100880: d2800020
	b L_exception                           // 0x40100884: 14000270
	.balignl 128, 0xd503201f                // 0x40100888: 30 x nop
	movz x0, #0x2, lsl #0                   // 0x40100900: d2800040
	b L_exception                           // 0x40100904: 14000250
	.balignl 128, 0xd503201f                // 0x40100908: 30 x nop
	movz x0, #0x3, lsl #0                   // 0x40100980: d2800060
	b L_exception                           // 0x40100984: 14000230
	.balignl 128, 0xd503201f                // 0x40100988: 30 x nop
	movz x0, #0x4, lsl #0                   // 0x40100a00: d2800080
	b L_exception                           // 0x40100a04: 14000210
	.balignl 128, 0xd503201f                // 0x40100a08: 30 x nop
	movz x0, #0x5, lsl #0                   // 0x40100a80: d28000a0
	b L_exception                           // 0x40100a84: 140001f0
	.balignl 128, 0xd503201f                // 0x40100a88: 30 x nop
	movz x0, #0x6, lsl #0                   // 0x40100b00: d28000c0
	b L_exception                           // 0x40100b04: 140001d0
	.balignl 128, 0xd503201f                // 0x40100b08: 30 x nop
	movz x0, #0x7, lsl #0                   // 0x40100b80: d28000e0
	b L_exception                           // 0x40100b84: 140001b0
	.balignl 128, 0xd503201f                // 0x40100b88: 30 x nop
	movz x0, #0x8, lsl #0                   // 0x40100c00: d2800100
	b L_exception                           // 0x40100c04: 14000190
	.balignl 128, 0xd503201f                // 0x40100c08: 30 x nop
	movz x0, #0x9, lsl #0                   // 0x40100c80: d2800120
	b L_exception                           // 0x40100c84: 14000170
	.balignl 128, 0xd503201f                // 0x40100c88: 30 x nop
	movz x0, #0xa, lsl #0                   // 0x40100d00: d2800140
	b L_exception                           // 0x40100d04: 14000150
	.balignl 128, 0xd503201f                // 0x40100d08: 30 x nop
	movz x0, #0xb, lsl #0                   // 0x40100d80: d2800160
	b L_exception                           // 0x40100d84: 14000130
	.balignl 128, 0xd503201f                // 0x40100d88: 30 x nop
	movz x0, #0xc, lsl #0                   // 0x40100e00: d2800180
	b L_exception                           // 0x40100e04: 14000110
	.balignl 128, 0xd503201f                // 0x40100e08: 30 x nop
	movz x0, #0xd, lsl #0                   // 0x40100e80: d28001a0
	b L_exception                           // 0x40100e84: 140000f0
	.balignl 128, 0xd503201f                // 0x40100e88: 30 x nop
	movz x0, #0xe, lsl #0                   // 0x40100f00: d28001c0
	b L_exception                           // 0x40100f04: 140000d0
	.balignl 128, 0xd503201f                // 0x40100f08: 30 x nop
	movz x0, #0xf, lsl #0                   // 0x40100f80: d28001e0
	b L_exception                           // 0x40100f84: 140000b0
	.balignl 128, 0xd503201f                // 0x40100f88: 30 x nop
L_start:                                 // 0x40101000
	mrs x0, s3_0_c0_c0_5                    // 0x40101000: d53800a0
	lsl x0, x0, #40                         // 0x40101004: d3585c00
	cbnz x0, L_park                         // 0x40101008: b50006e0
	movz x1, #0x0, lsl #0                   // 0x4010100c: d2800001
	movk x1, #0x4020, lsl #16               // 0x40101010: f2a80401
	movk x1, #0x0, lsl #32                  // 0x40101014: f2c00001
	movk x1, #0x0, lsl #48                  // 0x40101018: f2e00001
	add sp, x1, #0, lsl #0                  // 0x4010101c: 9100003f
	movz x9, #0x0, lsl #0                   // 0x40101020: d2800009
	movk x9, #0x900, lsl #16                // 0x40101024: f2a12009
	movk x9, #0x0, lsl #32                  // 0x40101028: f2c00009
	movk x9, #0x0, lsl #48                  // 0x4010102c: f2e00009
	movz x10, #0x301, lsl #0                // 0x40101030: d280602a
	str w10, [x9, #48]                      // 0x40101034: b900312a
	mrs x0, s3_0_c4_c2_2                    // 0x40101038: d5384240
	lsr x0, x0, #2                          // 0x4010103c: d342fc00
	adr x1, L_vectors                       // 0x40101040: 10ffbe01
	movz x3, #0xfbff, lsl #0                // 0x40101044: d29f7fe3
	movk x3, #0xffff, lsl #16               // 0x40101048: f2bfffe3
	movk x3, #0xffff, lsl #32               // 0x4010104c: f2dfffe3
	movk x3, #0xffff, lsl #48               // 0x40101050: f2ffffe3
	cmp x0, #3, lsl #0                      // 0x40101054: f1000c1f
	b.eq L_at_el3                           // 0x40101058: 540000a0
	cmp x0, #2, lsl #0                      // 0x4010105c: f100081f
	b.eq L_at_el2                           // 0x40101060: 54000100
	msr s3_0_c12_c0_0, x1                   // 0x40101064: d518c001
	b L_el_done                             // 0x40101068: 1400000b
L_at_el3:                                // 0x4010106c
	msr s3_6_c12_c0_0, x1                   // 0x4010106c: d51ec001
	mrs x2, s3_6_c1_c1_2                    // 0x40101070: d53e1142
	and x2, x2, x3                          // 0x40101074: 8a030042
	msr s3_6_c1_c1_2, x2                    // 0x40101078: d51e1142
	b L_el_done                             // 0x4010107c: 14000006
L_at_el2:                                // 0x40101080
	msr s3_4_c12_c0_0, x1                   // 0x40101080: d51cc001
	mrs x2, s3_4_c1_c1_2                    // 0x40101084: d53c1142
	and x2, x2, x3                          // 0x40101088: 8a030042
	msr s3_4_c1_c1_2, x2                    // 0x4010108c: d51c1142
	b L_el_done                             // 0x40101090: 14000001
L_el_done:                               // 0x40101094
	movz x2, #0x30, lsl #16                 // 0x40101094: d2a00602
	msr s3_0_c1_c0_2, x2                    // 0x40101098: d5181042
	isb                                     // 0x4010109c: d5033fdf
	dsb sy                                  // 0x401010a0: d5033f9f
	isb                                     // 0x401010a4: d5033fdf
	adr x28, L_s_0                          // 0x401010a8: 100012dc
	bl L_readback                           // 0x401010ac: 94000010
	movz x29, #0x0, lsl #0                  // 0x401010b0: d280001d
	movk x29, #0x900, lsl #16               // 0x401010b4: f2a1201d
	movk x29, #0x0, lsl #32                 // 0x401010b8: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401010bc: f2e0001d
L_poll:                                  // 0x401010c0
	ldr w28, [x29, #24]                     // 0x401010c0: b9401bbc
	tbnz x28, #4, L_poll                    // 0x401010c4: 3727fffc
	ldr w28, [x29, #0]                      // 0x401010c8: b94003bc
	lsl x28, x28, #56                       // 0x401010cc: d3481f9c
	lsr x28, x28, #56                       // 0x401010d0: d378ff9c
	sub x28, x28, #103, lsl #0              // 0x401010d4: d1019f9c
	cbnz x28, L_poll                        // 0x401010d8: b5ffff5c
	adr x28, L_s_1                          // 0x401010dc: 100011fc
	bl L_readback                           // 0x401010e0: 94000003
L_park:                                  // 0x401010e4
	wfe                                     // 0x401010e4: d503205f
	b L_park                                // 0x401010e8: 17ffffff
L_readback:                              // 0x401010ec
	sub sp, sp, #256, lsl #0                // 0x401010ec: d10403ff
	stp x0, x1, [sp, #0]                    // 0x401010f0: a90007e0
	stp x2, x3, [sp, #16]                   // 0x401010f4: a9010fe2
	stp x4, x5, [sp, #32]                   // 0x401010f8: a90217e4
	stp x6, x7, [sp, #48]                   // 0x401010fc: a9031fe6
	stp x8, x9, [sp, #64]                   // 0x40101100: a90427e8
	stp x10, x11, [sp, #80]                 // 0x40101104: a9052fea
	stp x12, x13, [sp, #96]                 // 0x40101108: a90637ec
	stp x14, x15, [sp, #112]                // 0x4010110c: a9073fee
	stp x16, x17, [sp, #128]                // 0x40101110: a90847f0
	stp x18, x19, [sp, #144]                // 0x40101114: a9094ff2
	stp x20, x21, [sp, #160]                // 0x40101118: a90a57f4
	stp x22, x23, [sp, #176]                // 0x4010111c: a90b5ff6
	stp x24, x25, [sp, #192]                // 0x40101120: a90c67f8
	stp x26, x27, [sp, #208]                // 0x40101124: a90d6ffa
	mrs x0, s3_3_c4_c2_0                    // 0x40101128: d53b4200
	str x0, [sp, #224]                      // 0x4010112c: f90073e0
	str x30, [sp, #232]                     // 0x40101130: f90077fe
	adr x0, L_s_2                           // 0x40101134: 10000fc0
	bl L_puts                               // 0x40101138: 94000027
	mrs x1, s3_0_c4_c2_2                    // 0x4010113c: d5384241
	lsr x1, x1, #2                          // 0x40101140: d342fc21
	bl L_puthex                             // 0x40101144: 94000030
	adr x0, L_s_3                           // 0x40101148: 10000f60
	bl L_puts                               // 0x4010114c: 94000022
	adr x0, L_s_4                           // 0x40101150: 10000f40
	bl L_puts                               // 0x40101154: 94000020
	ldr x1, [sp, #224]                      // 0x40101158: f94073e1
	bl L_puthex                             // 0x4010115c: 9400002a
	adr x0, L_s_3                           // 0x40101160: 10000ea0
	bl L_puts                               // 0x40101164: 9400001c
	adr x0, L_s_5                           // 0x40101168: 10000ec0
	bl L_puts                               // 0x4010116c: 9400001a
	mrs x1, s3_3_c4_c2_1                    // 0x40101170: d53b4221
	bl L_puthex                             // 0x40101174: 94000024
	adr x0, L_s_3                           // 0x40101178: 10000de0
	bl L_puts                               // 0x4010117c: 94000016
	add x0, x28, #0, lsl #0                 // 0x40101180: 91000380
	bl L_puts                               // 0x40101184: 94000014
	ldr x0, [sp, #224]                      // 0x40101188: f94073e0
	msr s3_3_c4_c2_0, x0                    // 0x4010118c: d51b4200
	ldr x30, [sp, #232]                     // 0x40101190: f94077fe
	ldp x0, x1, [sp, #0]                    // 0x40101194: a94007e0
	ldp x2, x3, [sp, #16]                   // 0x40101198: a9410fe2
	ldp x4, x5, [sp, #32]                   // 0x4010119c: a94217e4
	ldp x6, x7, [sp, #48]                   // 0x401011a0: a9431fe6
	ldp x8, x9, [sp, #64]                   // 0x401011a4: a94427e8
	ldp x10, x11, [sp, #80]                 // 0x401011a8: a9452fea
	ldp x12, x13, [sp, #96]                 // 0x401011ac: a94637ec
	ldp x14, x15, [sp, #112]                // 0x401011b0: a9473fee
	ldp x16, x17, [sp, #128]                // 0x401011b4: a94847f0
	ldp x18, x19, [sp, #144]                // 0x401011b8: a9494ff2
	ldp x20, x21, [sp, #160]                // 0x401011bc: a94a57f4
	ldp x22, x23, [sp, #176]                // 0x401011c0: a94b5ff6
	ldp x24, x25, [sp, #192]                // 0x401011c4: a94c67f8
	ldp x26, x27, [sp, #208]                // 0x401011c8: a94d6ffa
	add sp, sp, #256, lsl #0                // 0x401011cc: 910403ff
	ret x30                                 // 0x401011d0: d65f03c0
L_puts:                                  // 0x401011d4
	movz x9, #0x0, lsl #0                   // 0x401011d4: d2800009
	movk x9, #0x900, lsl #16                // 0x401011d8: f2a12009
	movk x9, #0x0, lsl #32                  // 0x401011dc: f2c00009
	movk x9, #0x0, lsl #48                  // 0x401011e0: f2e00009
L_puts_next:                             // 0x401011e4
	ldrb w11, [x0, #0]                      // 0x401011e4: 3940000b
	cbz x11, L_puts_end                     // 0x401011e8: b40000cb
L_puts_wait:                             // 0x401011ec
	ldr w10, [x9, #24]                      // 0x401011ec: b940192a
	tbnz x10, #5, L_puts_wait               // 0x401011f0: 372fffea
	strb w11, [x9, #0]                      // 0x401011f4: 3900012b
	add x0, x0, #1, lsl #0                  // 0x401011f8: 91000400
	b L_puts_next                           // 0x401011fc: 17fffffa
L_puts_end:                              // 0x40101200
	ret x30                                 // 0x40101200: d65f03c0
L_puthex:                                // 0x40101204
	movz x9, #0x0, lsl #0                   // 0x40101204: d2800009
	movk x9, #0x900, lsl #16                // 0x40101208: f2a12009
	movk x9, #0x0, lsl #32                  // 0x4010120c: f2c00009
	movk x9, #0x0, lsl #48                  // 0x40101210: f2e00009
	adr x14, L_hexdigits                    // 0x40101214: 100006ee
	movz x15, #0x10, lsl #0                 // 0x40101218: d280020f
L_puthex_next:                           // 0x4010121c
	lsr x13, x1, #60                        // 0x4010121c: d37cfc2d
	lsl x1, x1, #4                          // 0x40101220: d37cec21
	add x13, x14, x13                       // 0x40101224: 8b0d01cd
	ldrb w0, [x13, #0]                      // 0x40101228: 394001a0
L_puthex_wait:                           // 0x4010122c
	ldr w10, [x9, #24]                      // 0x4010122c: b940192a
	tbnz x10, #5, L_puthex_wait             // 0x40101230: 372fffea
	strb w0, [x9, #0]                       // 0x40101234: 39000120
	sub x15, x15, #1, lsl #0                // 0x40101238: d10005ef
	cbnz x15, L_puthex_next                 // 0x4010123c: b5ffff0f
	ret x30                                 // 0x40101240: d65f03c0
L_exception:                             // 0x40101244
	add x20, x0, #0, lsl #0                 // 0x40101244: 91000014
	mrs x21, s3_0_c4_c2_2                   // 0x40101248: d5384255
	lsr x21, x21, #2                        // 0x4010124c: d342feb5
	cmp x21, #3, lsl #0                     // 0x40101250: f1000ebf
	b.eq L_exception_el3                    // 0x40101254: 540000e0
	cmp x21, #2, lsl #0                     // 0x40101258: f1000abf
	b.eq L_exception_el2                    // 0x4010125c: 54000120
	mrs x22, s3_0_c5_c2_0                   // 0x40101260: d5385216
	mrs x23, s3_0_c4_c0_1                   // 0x40101264: d5384037
	mrs x24, s3_0_c6_c0_0                   // 0x40101268: d5386018
	b L_exception_print                     // 0x4010126c: 14000009
L_exception_el3:                         // 0x40101270
	mrs x22, s3_6_c5_c2_0                   // 0x40101270: d53e5216
	mrs x23, s3_6_c4_c0_1                   // 0x40101274: d53e4037
	mrs x24, s3_6_c6_c0_0                   // 0x40101278: d53e6018
	b L_exception_print                     // 0x4010127c: 14000005
L_exception_el2:                         // 0x40101280
	mrs x22, s3_4_c5_c2_0                   // 0x40101280: d53c5216
	mrs x23, s3_4_c4_c0_1                   // 0x40101284: d53c4037
	mrs x24, s3_4_c6_c0_0                   // 0x40101288: d53c6018
	b L_exception_print                     // 0x4010128c: 14000001
L_exception_print:                       // 0x40101290
	adr x0, L_s_6                           // 0x40101290: 100005c0
	bl L_puts                               // 0x40101294: 97ffffd0
	add x1, x21, #0, lsl #0                 // 0x40101298: 910002a1
	bl L_puthex                             // 0x4010129c: 97ffffda
	adr x0, L_s_7                           // 0x401012a0: 100005a0
	bl L_puts                               // 0x401012a4: 97ffffcc
	add x1, x20, #0, lsl #0                 // 0x401012a8: 91000281
	bl L_puthex                             // 0x401012ac: 97ffffd6
	adr x0, L_s_8                           // 0x401012b0: 10000560
	bl L_puts                               // 0x401012b4: 97ffffc8
	add x1, x22, #0, lsl #0                 // 0x401012b8: 910002c1
	bl L_puthex                             // 0x401012bc: 97ffffd2
	adr x0, L_s_9                           // 0x401012c0: 10000520
	bl L_puts                               // 0x401012c4: 97ffffc4
	add x1, x23, #0, lsl #0                 // 0x401012c8: 910002e1
	bl L_puthex                             // 0x401012cc: 97ffffce
	adr x0, L_s_10                          // 0x401012d0: 100004e0
	bl L_puts                               // 0x401012d4: 97ffffc0
	add x1, x24, #0, lsl #0                 // 0x401012d8: 91000301
	bl L_puthex                             // 0x401012dc: 97ffffca
	adr x0, L_s_11                          // 0x401012e0: 100004a0
	bl L_puts                               // 0x401012e4: 97ffffbc
L_exception_park:                        // 0x401012e8
	wfe                                     // 0x401012e8: d503205f
	b L_exception_park                      // 0x401012ec: 17ffffff
L_hexdigits:                             // 0x401012f0
	.word 0x33323130                        // 0x401012f0
	.word 0x37363534                        // 0x401012f4
	.word 0x62613938                        // 0x401012f8
	.word 0x66656463                        // 0x401012fc
L_s_0:                                   // 0x40101300
	.word 0x494d4040                        // 0x40101300
	.word 0x5a554647                        // 0x40101304
	.word 0x48432d5a                        // 0x40101308
	.word 0x504b4345                        // 0x4010130c
	.word 0x544e494f                        // 0x40101310
	.word 0x000a4040                        // 0x40101314
L_s_1:                                   // 0x40101318
	.word 0x494d4040                        // 0x40101318
	.word 0x5a554647                        // 0x4010131c
	.word 0x4f442d5a                        // 0x40101320
	.word 0x4040454e                        // 0x40101324
	.word 0x0000000a                        // 0x40101328
L_s_2:                                   // 0x4010132c
	.word 0x303d6c65                        // 0x4010132c
	.word 0x00000078                        // 0x40101330
L_s_3:                                   // 0x40101334
	.word 0x0000000a                        // 0x40101334
L_s_4:                                   // 0x40101338
	.word 0x76637a6e                        // 0x40101338
	.word 0x0078303d                        // 0x4010133c
L_s_5:                                   // 0x40101340
	.word 0x66696164                        // 0x40101340
	.word 0x0078303d                        // 0x40101344
L_s_6:                                   // 0x40101348
	.word 0x20435845                        // 0x40101348
	.word 0x303d6c65                        // 0x4010134c
	.word 0x00000078                        // 0x40101350
L_s_7:                                   // 0x40101354
	.word 0x63657620                        // 0x40101354
	.word 0x0078303d                        // 0x40101358
L_s_8:                                   // 0x4010135c
	.word 0x72736520                        // 0x4010135c
	.word 0x0078303d                        // 0x40101360
L_s_9:                                   // 0x40101364
	.word 0x726c6520                        // 0x40101364
	.word 0x0078303d                        // 0x40101368
L_s_10:                                  // 0x4010136c
	.word 0x72616620                        // 0x4010136c
	.word 0x0078303d                        // 0x40101370
L_s_11:                                  // 0x40101374
	.word 0x4d40400a                        // 0x40101374
	.word 0x55464749                        // 0x40101378
	.word 0x442d5a5a                        // 0x4010137c
	.word 0x40454e4f                        // 0x40101380
	.word 0x00000a40                        // 0x40101384
