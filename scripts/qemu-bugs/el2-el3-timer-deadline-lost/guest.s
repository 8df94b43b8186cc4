// migfuzz guest, base address 0x40100000
	.arch armv8-a+sve
	.text
	b L_start                               // 0x40100000: 14000400
	.balignl 2048, 0xd503201f               // 0x40100004: 511 x nop
L_vectors:                               // 0x40100800
	movz x0, #0x0, lsl #0                   // 0x40100800: d2800000
	b L_exception                           // 0x40100804: 140003ff
	.balignl 128, 0xd503201f                // 0x40100808: 30 x nop
	movz x0, #0x1, lsl #0                   // 0x40100880: d2800020
	b L_exception                           // 0x40100884: 140003df
	.balignl 128, 0xd503201f                // 0x40100888: 30 x nop
	movz x0, #0x2, lsl #0                   // 0x40100900: d2800040
	b L_exception                           // 0x40100904: 140003bf
	.balignl 128, 0xd503201f                // 0x40100908: 30 x nop
	movz x0, #0x3, lsl #0                   // 0x40100980: d2800060
	b L_exception                           // 0x40100984: 1400039f
	.balignl 128, 0xd503201f                // 0x40100988: 30 x nop
	movz x0, #0x4, lsl #0                   // 0x40100a00: d2800080
	b L_exception                           // 0x40100a04: 1400037f
	.balignl 128, 0xd503201f                // 0x40100a08: 30 x nop
	movz x0, #0x5, lsl #0                   // 0x40100a80: d28000a0
	b L_exception                           // 0x40100a84: 1400035f
	.balignl 128, 0xd503201f                // 0x40100a88: 30 x nop
	movz x0, #0x6, lsl #0                   // 0x40100b00: d28000c0
	b L_exception                           // 0x40100b04: 1400033f
	.balignl 128, 0xd503201f                // 0x40100b08: 30 x nop
	movz x0, #0x7, lsl #0                   // 0x40100b80: d28000e0
	b L_exception                           // 0x40100b84: 1400031f
	.balignl 128, 0xd503201f                // 0x40100b88: 30 x nop
	movz x0, #0x8, lsl #0                   // 0x40100c00: d2800100
	b L_exception                           // 0x40100c04: 140002ff
	.balignl 128, 0xd503201f                // 0x40100c08: 30 x nop
	movz x0, #0x9, lsl #0                   // 0x40100c80: d2800120
	b L_exception                           // 0x40100c84: 140002df
	.balignl 128, 0xd503201f                // 0x40100c88: 30 x nop
	movz x0, #0xa, lsl #0                   // 0x40100d00: d2800140
	b L_exception                           // 0x40100d04: 140002bf
	.balignl 128, 0xd503201f                // 0x40100d08: 30 x nop
	movz x0, #0xb, lsl #0                   // 0x40100d80: d2800160
	b L_exception                           // 0x40100d84: 1400029f
	.balignl 128, 0xd503201f                // 0x40100d88: 30 x nop
	movz x0, #0xc, lsl #0                   // 0x40100e00: d2800180
	b L_exception                           // 0x40100e04: 1400027f
	.balignl 128, 0xd503201f                // 0x40100e08: 30 x nop
	movz x0, #0xd, lsl #0                   // 0x40100e80: d28001a0
	b L_exception                           // 0x40100e84: 1400025f
	.balignl 128, 0xd503201f                // 0x40100e88: 30 x nop
	movz x0, #0xe, lsl #0                   // 0x40100f00: d28001c0
	b L_exception                           // 0x40100f04: 1400023f
	.balignl 128, 0xd503201f                // 0x40100f08: 30 x nop
	movz x0, #0xf, lsl #0                   // 0x40100f80: d28001e0
	b L_exception                           // 0x40100f84: 1400021f
	.balignl 128, 0xd503201f                // 0x40100f88: 30 x nop
L_start:                                 // 0x40101000
	mrs x0, s3_0_c0_c0_5                    // 0x40101000: d53800a0
	lsl x0, x0, #40                         // 0x40101004: d3585c00
	cbnz x0, L_park                         // 0x40101008: b5001c00
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
	mrs x1, s3_3_c14_c0_0                   // 0x401010a0: d53be001
	movz x2, #0x100, lsl #0                 // 0x401010a4: d2802002
	movk x2, #0x4021, lsl #16               // 0x401010a8: f2a80422
	movk x2, #0x0, lsl #32                  // 0x401010ac: f2c00002
	movk x2, #0x0, lsl #48                  // 0x401010b0: f2e00002
	str x1, [x2, #0]                        // 0x401010b4: f9000041
	movz x3, #0x10c7, lsl #0                // 0x401010b8: d28218e3
	movk x3, #0x0, lsl #16                  // 0x401010bc: f2a00003
	movk x3, #0x0, lsl #32                  // 0x401010c0: f2c00003
	movk x3, #0x0, lsl #48                  // 0x401010c4: f2e00003
	mul x1, x1, x3                          // 0x401010c8: 9b037c21
	str x1, [x2, #8]                        // 0x401010cc: f9000441
	movz x29, #0x108, lsl #0                // 0x401010d0: d280211d
	movk x29, #0x4021, lsl #16              // 0x401010d4: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x401010d8: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401010dc: f2e0001d
	ldr x28, [x29, #0]                      // 0x401010e0: f94003bc
	movz x29, #0xd40, lsl #0                // 0x401010e4: d281a81d
	movk x29, #0x3, lsl #16                 // 0x401010e8: f2a0007d
	movk x29, #0x0, lsl #32                 // 0x401010ec: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401010f0: f2e0001d
	mul x28, x28, x29                       // 0x401010f4: 9b1d7f9c
	lsr x28, x28, #32                       // 0x401010f8: d360ff9c
	movz x29, #0x110, lsl #0                // 0x401010fc: d280221d
	movk x29, #0x4021, lsl #16              // 0x40101100: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x40101104: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101108: f2e0001d
	str x28, [x29, #0]                      // 0x4010110c: f90003bc
	mrs x29, s3_3_c14_c0_1                  // 0x40101110: d53be03d
	add x28, x28, x29                       // 0x40101114: 8b1d039c
	msr s3_3_c14_c2_2, x28                  // 0x40101118: d51be25c
	movz x28, #0x1, lsl #0                  // 0x4010111c: d280003c
	msr s3_3_c14_c2_1, x28                  // 0x40101120: d51be23c
L_deadline_skip_1:                       // 0x40101124
	mrs x28, s3_0_c4_c2_2                   // 0x40101124: d538425c
	tbz x28, #3, L_deadline_skip_2          // 0x40101128: 3618035c
	mrs x28, s3_0_c0_c4_0                   // 0x4010112c: d538041c
	lsl x28, x28, #52                       // 0x40101130: d34c2f9c
	lsr x28, x28, #60                       // 0x40101134: d37cff9c
	cbz x28, L_deadline_skip_2              // 0x40101138: b40002dc
	movz x29, #0x108, lsl #0                // 0x4010113c: d280211d
	movk x29, #0x4021, lsl #16              // 0x40101140: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x40101144: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101148: f2e0001d
	ldr x28, [x29, #0]                      // 0x4010114c: f94003bc
	movz x29, #0xd40, lsl #0                // 0x40101150: d281a81d
	movk x29, #0x3, lsl #16                 // 0x40101154: f2a0007d
	movk x29, #0x0, lsl #32                 // 0x40101158: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x4010115c: f2e0001d
	mul x28, x28, x29                       // 0x40101160: 9b1d7f9c
	lsr x28, x28, #32                       // 0x40101164: d360ff9c
	movz x29, #0x120, lsl #0                // 0x40101168: d280241d
	movk x29, #0x4021, lsl #16              // 0x4010116c: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x40101170: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101174: f2e0001d
	str x28, [x29, #0]                      // 0x40101178: f90003bc
	mrs x29, s3_3_c14_c0_1                  // 0x4010117c: d53be03d
	add x28, x28, x29                       // 0x40101180: 8b1d039c
	msr s3_4_c14_c2_2, x28                  // 0x40101184: d51ce25c
	movz x28, #0x1, lsl #0                  // 0x40101188: d280003c
	msr s3_4_c14_c2_1, x28                  // 0x4010118c: d51ce23c
L_deadline_skip_2:                       // 0x40101190
	mrs x28, s3_0_c4_c2_2                   // 0x40101190: d538425c
	tbz x28, #3, L_deadline_skip_3          // 0x40101194: 361803dc
	mrs x28, s3_0_c0_c4_0                   // 0x40101198: d538041c
	lsl x28, x28, #52                       // 0x4010119c: d34c2f9c
	lsr x28, x28, #60                       // 0x401011a0: d37cff9c
	cbz x28, L_deadline_skip_3              // 0x401011a4: b400035c
	mrs x28, s3_0_c0_c7_1                   // 0x401011a8: d538073c
	lsl x28, x28, #52                       // 0x401011ac: d34c2f9c
	lsr x28, x28, #60                       // 0x401011b0: d37cff9c
	cbz x28, L_deadline_skip_3              // 0x401011b4: b40002dc
	movz x29, #0x108, lsl #0                // 0x401011b8: d280211d
	movk x29, #0x4021, lsl #16              // 0x401011bc: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x401011c0: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401011c4: f2e0001d
	ldr x28, [x29, #0]                      // 0x401011c8: f94003bc
	movz x29, #0xd40, lsl #0                // 0x401011cc: d281a81d
	movk x29, #0x3, lsl #16                 // 0x401011d0: f2a0007d
	movk x29, #0x0, lsl #32                 // 0x401011d4: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401011d8: f2e0001d
	mul x28, x28, x29                       // 0x401011dc: 9b1d7f9c
	lsr x28, x28, #32                       // 0x401011e0: d360ff9c
	movz x29, #0x128, lsl #0                // 0x401011e4: d280251d
	movk x29, #0x4021, lsl #16              // 0x401011e8: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x401011ec: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x401011f0: f2e0001d
	str x28, [x29, #0]                      // 0x401011f4: f90003bc
	mrs x29, s3_3_c14_c0_1                  // 0x401011f8: d53be03d
	add x28, x28, x29                       // 0x401011fc: 8b1d039c
	msr s3_4_c14_c3_2, x28                  // 0x40101200: d51ce35c
	movz x28, #0x1, lsl #0                  // 0x40101204: d280003c
	msr s3_4_c14_c3_1, x28                  // 0x40101208: d51ce33c
L_deadline_skip_3:                       // 0x4010120c
	mrs x28, s3_0_c4_c2_2                   // 0x4010120c: d538425c
	tbz x28, #3, L_deadline_skip_4          // 0x40101210: 361802fc
	tbz x28, #2, L_deadline_skip_4          // 0x40101214: 361002dc
	movz x29, #0x108, lsl #0                // 0x40101218: d280211d
	movk x29, #0x4021, lsl #16              // 0x4010121c: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x40101220: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101224: f2e0001d
	ldr x28, [x29, #0]                      // 0x40101228: f94003bc
	movz x29, #0xd40, lsl #0                // 0x4010122c: d281a81d
	movk x29, #0x3, lsl #16                 // 0x40101230: f2a0007d
	movk x29, #0x0, lsl #32                 // 0x40101234: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101238: f2e0001d
	mul x28, x28, x29                       // 0x4010123c: 9b1d7f9c
	lsr x28, x28, #32                       // 0x40101240: d360ff9c
	movz x29, #0x130, lsl #0                // 0x40101244: d280261d
	movk x29, #0x4021, lsl #16              // 0x40101248: f2a8043d
	movk x29, #0x0, lsl #32                 // 0x4010124c: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101250: f2e0001d
	str x28, [x29, #0]                      // 0x40101254: f90003bc
	mrs x29, s3_3_c14_c0_1                  // 0x40101258: d53be03d
	add x28, x28, x29                       // 0x4010125c: 8b1d039c
	msr s3_7_c14_c2_2, x28                  // 0x40101260: d51fe25c
	movz x28, #0x1, lsl #0                  // 0x40101264: d280003c
	msr s3_7_c14_c2_1, x28                  // 0x40101268: d51fe23c
L_deadline_skip_4:                       // 0x4010126c
	dsb sy                                  // 0x4010126c: d5033f9f
	isb                                     // 0x40101270: d5033fdf
	adr x28, L_s_0                          // 0x40101274: 1000325c
	bl L_readback                           // 0x40101278: 94000046
	movz x29, #0x0, lsl #0                  // 0x4010127c: d280001d
	movk x29, #0x900, lsl #16               // 0x40101280: f2a1201d
	movk x29, #0x0, lsl #32                 // 0x40101284: f2c0001d
	movk x29, #0x0, lsl #48                 // 0x40101288: f2e0001d
L_poll:                                  // 0x4010128c
	mrs x28, s3_3_c14_c2_1                  // 0x4010128c: d53be23c
	tbz x28, #2, L_rearm_next_5             // 0x40101290: 361000fc
	movz x28, #0x110, lsl #0                // 0x40101294: d280221c
	movk x28, #0x4021, lsl #16              // 0x40101298: f2a8043c
	movk x28, #0x0, lsl #32                 // 0x4010129c: f2c0001c
	movk x28, #0x0, lsl #48                 // 0x401012a0: f2e0001c
	ldr x28, [x28, #0]                      // 0x401012a4: f940039c
	msr s3_3_c14_c2_0, x28                  // 0x401012a8: d51be21c
L_rearm_next_5:                          // 0x401012ac
	mrs x28, s3_0_c4_c2_2                   // 0x401012ac: d538425c
	tbz x28, #3, L_rearm_next_6             // 0x401012b0: 361801bc
	mrs x28, s3_0_c0_c4_0                   // 0x401012b4: d538041c
	lsl x28, x28, #52                       // 0x401012b8: d34c2f9c
	lsr x28, x28, #60                       // 0x401012bc: d37cff9c
	cbz x28, L_rearm_next_6                 // 0x401012c0: b400013c
	mrs x28, s3_4_c14_c2_1                  // 0x401012c4: d53ce23c
	tbz x28, #2, L_rearm_next_6             // 0x401012c8: 361000fc
	movz x28, #0x120, lsl #0                // 0x401012cc: d280241c
	movk x28, #0x4021, lsl #16              // 0x401012d0: f2a8043c
	movk x28, #0x0, lsl #32                 // 0x401012d4: f2c0001c
	movk x28, #0x0, lsl #48                 // 0x401012d8: f2e0001c
	ldr x28, [x28, #0]                      // 0x401012dc: f940039c
	msr s3_4_c14_c2_0, x28                  // 0x401012e0: d51ce21c
L_rearm_next_6:                          // 0x401012e4
	mrs x28, s3_0_c4_c2_2                   // 0x401012e4: d538425c
	tbz x28, #3, L_rearm_next_7             // 0x401012e8: 3618023c
	mrs x28, s3_0_c0_c4_0                   // 0x401012ec: d538041c
	lsl x28, x28, #52                       // 0x401012f0: d34c2f9c
	lsr x28, x28, #60                       // 0x401012f4: d37cff9c
	cbz x28, L_rearm_next_7                 // 0x401012f8: b40001bc
	mrs x28, s3_0_c0_c7_1                   // 0x401012fc: d538073c
	lsl x28, x28, #52                       // 0x40101300: d34c2f9c
	lsr x28, x28, #60                       // 0x40101304: d37cff9c
	cbz x28, L_rearm_next_7                 // 0x40101308: b400013c
	mrs x28, s3_4_c14_c3_1                  // 0x4010130c: d53ce33c
	tbz x28, #2, L_rearm_next_7             // 0x40101310: 361000fc
	movz x28, #0x128, lsl #0                // 0x40101314: d280251c
	movk x28, #0x4021, lsl #16              // 0x40101318: f2a8043c
	movk x28, #0x0, lsl #32                 // 0x4010131c: f2c0001c
	movk x28, #0x0, lsl #48                 // 0x40101320: f2e0001c
	ldr x28, [x28, #0]                      // 0x40101324: f940039c
	msr s3_4_c14_c3_0, x28                  // 0x40101328: d51ce31c
L_rearm_next_7:                          // 0x4010132c
	mrs x28, s3_0_c4_c2_2                   // 0x4010132c: d538425c
	tbz x28, #3, L_rearm_next_8             // 0x40101330: 3618015c
	tbz x28, #2, L_rearm_next_8             // 0x40101334: 3610013c
	mrs x28, s3_7_c14_c2_1                  // 0x40101338: d53fe23c
	tbz x28, #2, L_rearm_next_8             // 0x4010133c: 361000fc
	movz x28, #0x130, lsl #0                // 0x40101340: d280261c
	movk x28, #0x4021, lsl #16              // 0x40101344: f2a8043c
	movk x28, #0x0, lsl #32                 // 0x40101348: f2c0001c
	movk x28, #0x0, lsl #48                 // 0x4010134c: f2e0001c
	ldr x28, [x28, #0]                      // 0x40101350: f940039c
	msr s3_7_c14_c2_0, x28                  // 0x40101354: d51fe21c
L_rearm_next_8:                          // 0x40101358
	movz x28, #0x400, lsl #0                // 0x40101358: d280801c
L_poll_pause_9:                          // 0x4010135c
	sub x28, x28, #1, lsl #0                // 0x4010135c: d100079c
	cbnz x28, L_poll_pause_9                // 0x40101360: b5fffffc
	ldr w28, [x29, #24]                     // 0x40101364: b9401bbc
	tbnz x28, #4, L_poll                    // 0x40101368: 3727f93c
	ldr w28, [x29, #0]                      // 0x4010136c: b94003bc
	lsl x28, x28, #56                       // 0x40101370: d3481f9c
	lsr x28, x28, #56                       // 0x40101374: d378ff9c
	sub x28, x28, #103, lsl #0              // 0x40101378: d1019f9c
	cbnz x28, L_poll                        // 0x4010137c: b5fff89c
	adr x28, L_s_1                          // 0x40101380: 10002abc
	bl L_readback                           // 0x40101384: 94000003
L_park:                                  // 0x40101388
	wfe                                     // 0x40101388: d503205f
	b L_park                                // 0x4010138c: 17ffffff
L_readback:                              // 0x40101390
	sub sp, sp, #256, lsl #0                // 0x40101390: d10403ff
	stp x0, x1, [sp, #0]                    // 0x40101394: a90007e0
	stp x2, x3, [sp, #16]                   // 0x40101398: a9010fe2
	stp x4, x5, [sp, #32]                   // 0x4010139c: a90217e4
	stp x6, x7, [sp, #48]                   // 0x401013a0: a9031fe6
	stp x8, x9, [sp, #64]                   // 0x401013a4: a90427e8
	stp x10, x11, [sp, #80]                 // 0x401013a8: a9052fea
	stp x12, x13, [sp, #96]                 // 0x401013ac: a90637ec
	stp x14, x15, [sp, #112]                // 0x401013b0: a9073fee
	stp x16, x17, [sp, #128]                // 0x401013b4: a90847f0
	stp x18, x19, [sp, #144]                // 0x401013b8: a9094ff2
	stp x20, x21, [sp, #160]                // 0x401013bc: a90a57f4
	stp x22, x23, [sp, #176]                // 0x401013c0: a90b5ff6
	stp x24, x25, [sp, #192]                // 0x401013c4: a90c67f8
	stp x26, x27, [sp, #208]                // 0x401013c8: a90d6ffa
	mrs x0, s3_3_c4_c2_0                    // 0x401013cc: d53b4200
	str x0, [sp, #224]                      // 0x401013d0: f90073e0
	str x30, [sp, #232]                     // 0x401013d4: f90077fe
	adr x0, L_s_1                           // 0x401013d8: 100027e0
	eor x0, x0, x28                         // 0x401013dc: ca1c0000
	cbnz x0, L_wait_timers_done             // 0x401013e0: b5001880
	movz x1, #0x2, lsl #0                   // 0x401013e4: d2800041
	movz x7, #0x0, lsl #0                   // 0x401013e8: d2800007
	mrs x3, s3_3_c14_c2_1                   // 0x401013ec: d53be223
	tbz x3, #0, L_wait_physical_report_15   // 0x401013f0: 36000403
	movz x4, #0x0, lsl #0                   // 0x401013f4: d2800004
	movk x4, #0x10, lsl #16                 // 0x401013f8: f2a00204
	movk x4, #0x0, lsl #32                  // 0x401013fc: f2c00004
	movk x4, #0x0, lsl #48                  // 0x40101400: f2e00004
	movz x2, #0x100, lsl #0                 // 0x40101404: d2802002
	movk x2, #0x4021, lsl #16               // 0x40101408: f2a80422
	movk x2, #0x0, lsl #32                  // 0x4010140c: f2c00002
	movk x2, #0x0, lsl #48                  // 0x40101410: f2e00002
	ldr x2, [x2, #0]                        // 0x40101414: f9400042
	lsr x2, x2, #3                          // 0x40101418: d343fc42
	movz x6, #0x10, lsl #16                 // 0x4010141c: d2a00206
	orr x2, x2, x6                          // 0x40101420: aa060042
L_wait_physical_loop_10:                 // 0x40101424
	mrs x3, s3_3_c14_c2_1                   // 0x40101424: d53be223
	mrs x5, s3_3_c14_c0_1                   // 0x40101428: d53be025
	mrs x6, s3_3_c14_c2_2                   // 0x4010142c: d53be246
	sub x7, x5, x6                          // 0x40101430: cb0600a7
	tbnz x3, #2, L_wait_physical_fired_14   // 0x40101434: 371001c3
	tbnz x7, #63, L_wait_physical_ahead_12  // 0x40101438: b7f80067
	sub x6, x7, x2                          // 0x4010143c: cb0200e6
	tbz x6, #63, L_wait_physical_missed_13  // 0x40101440: b6f80126
L_wait_physical_ahead_12:                // 0x40101444
	movz x8, #0x400, lsl #0                 // 0x40101444: d2808008
L_wait_physical_pause_11:                // 0x40101448
	sub x8, x8, #1, lsl #0                  // 0x40101448: d1000508
	cbnz x8, L_wait_physical_pause_11       // 0x4010144c: b5ffffe8
	sub x4, x4, #1, lsl #0                  // 0x40101450: d1000484
	cbnz x4, L_wait_physical_loop_10        // 0x40101454: b5fffe84
	tbz x7, #63, L_wait_physical_missed_13  // 0x40101458: b6f80067
	movz x1, #0x3, lsl #0                   // 0x4010145c: d2800061
	b L_wait_physical_report_15             // 0x40101460: 14000004
L_wait_physical_missed_13:               // 0x40101464
	movz x1, #0x0, lsl #0                   // 0x40101464: d2800001
	b L_wait_physical_report_15             // 0x40101468: 14000002
L_wait_physical_fired_14:                // 0x4010146c
	movz x1, #0x1, lsl #0                   // 0x4010146c: d2800021
L_wait_physical_report_15:               // 0x40101470
	adr x0, L_s_2                           // 0x40101470: 100023c0
	bl L_puts                               // 0x40101474: 940000c7
	bl L_puthex                             // 0x40101478: 940000d2
	adr x0, L_s_3                           // 0x4010147c: 10002420
	bl L_puts                               // 0x40101480: 940000c4
	add x1, x7, #0, lsl #0                  // 0x40101484: 910000e1
	bl L_puthex                             // 0x40101488: 940000ce
	adr x0, L_s_4                           // 0x4010148c: 10002460
	bl L_puts                               // 0x40101490: 940000c0
	movz x1, #0x2, lsl #0                   // 0x40101494: d2800041
	movz x7, #0x0, lsl #0                   // 0x40101498: d2800007
	mrs x2, s3_0_c4_c2_2                    // 0x4010149c: d5384242
	tbz x2, #3, L_wait_hyp_physical_report_21// 0x401014a0: 361804c2
	mrs x2, s3_0_c0_c4_0                    // 0x401014a4: d5380402
	lsl x2, x2, #52                         // 0x401014a8: d34c2c42
	lsr x2, x2, #60                         // 0x401014ac: d37cfc42
	cbz x2, L_wait_hyp_physical_report_21   // 0x401014b0: b4000442
	mrs x3, s3_4_c14_c2_1                   // 0x401014b4: d53ce223
	tbz x3, #0, L_wait_hyp_physical_report_21// 0x401014b8: 36000403
	movz x4, #0x0, lsl #0                   // 0x401014bc: d2800004
	movk x4, #0x10, lsl #16                 // 0x401014c0: f2a00204
	movk x4, #0x0, lsl #32                  // 0x401014c4: f2c00004
	movk x4, #0x0, lsl #48                  // 0x401014c8: f2e00004
	movz x2, #0x100, lsl #0                 // 0x401014cc: d2802002
	movk x2, #0x4021, lsl #16               // 0x401014d0: f2a80422
	movk x2, #0x0, lsl #32                  // 0x401014d4: f2c00002
	movk x2, #0x0, lsl #48                  // 0x401014d8: f2e00002
	ldr x2, [x2, #0]                        // 0x401014dc: f9400042
	lsr x2, x2, #3                          // 0x401014e0: d343fc42
	movz x6, #0x10, lsl #16                 // 0x401014e4: d2a00206
	orr x2, x2, x6                          // 0x401014e8: aa060042
L_wait_hyp_physical_loop_16:             // 0x401014ec
	mrs x3, s3_4_c14_c2_1                   // 0x401014ec: d53ce223
	mrs x5, s3_3_c14_c0_1                   // 0x401014f0: d53be025
	mrs x6, s3_4_c14_c2_2                   // 0x401014f4: d53ce246
	sub x7, x5, x6                          // 0x401014f8: cb0600a7
	tbnz x3, #2, L_wait_hyp_physical_fired_20// 0x401014fc: 371001c3
	tbnz x7, #63, L_wait_hyp_physical_ahead_18// 0x40101500: b7f80067
	sub x6, x7, x2                          // 0x40101504: cb0200e6
	tbz x6, #63, L_wait_hyp_physical_missed_19// 0x40101508: b6f80126
L_wait_hyp_physical_ahead_18:            // 0x4010150c
	movz x8, #0x400, lsl #0                 // 0x4010150c: d2808008
L_wait_hyp_physical_pause_17:            // 0x40101510
	sub x8, x8, #1, lsl #0                  // 0x40101510: d1000508
	cbnz x8, L_wait_hyp_physical_pause_17   // 0x40101514: b5ffffe8
	sub x4, x4, #1, lsl #0                  // 0x40101518: d1000484
	cbnz x4, L_wait_hyp_physical_loop_16    // 0x4010151c: b5fffe84
	tbz x7, #63, L_wait_hyp_physical_missed_19// 0x40101520: b6f80067
	movz x1, #0x3, lsl #0                   // 0x40101524: d2800061
	b L_wait_hyp_physical_report_21         // 0x40101528: 14000004
L_wait_hyp_physical_missed_19:           // 0x4010152c
	movz x1, #0x0, lsl #0                   // 0x4010152c: d2800001
	b L_wait_hyp_physical_report_21         // 0x40101530: 14000002
L_wait_hyp_physical_fired_20:            // 0x40101534
	movz x1, #0x1, lsl #0                   // 0x40101534: d2800021
L_wait_hyp_physical_report_21:           // 0x40101538
	adr x0, L_s_5                           // 0x40101538: 10001fe0
	bl L_puts                               // 0x4010153c: 94000095
	bl L_puthex                             // 0x40101540: 940000a0
	adr x0, L_s_6                           // 0x40101544: 10002060
	bl L_puts                               // 0x40101548: 94000092
	add x1, x7, #0, lsl #0                  // 0x4010154c: 910000e1
	bl L_puthex                             // 0x40101550: 9400009c
	adr x0, L_s_4                           // 0x40101554: 10001e20
	bl L_puts                               // 0x40101558: 9400008e
	movz x1, #0x2, lsl #0                   // 0x4010155c: d2800041
	movz x7, #0x0, lsl #0                   // 0x40101560: d2800007
	mrs x2, s3_0_c4_c2_2                    // 0x40101564: d5384242
	tbz x2, #3, L_wait_hyp_virtual_report_27// 0x40101568: 36180542
	mrs x2, s3_0_c0_c4_0                    // 0x4010156c: d5380402
	lsl x2, x2, #52                         // 0x40101570: d34c2c42
	lsr x2, x2, #60                         // 0x40101574: d37cfc42
	cbz x2, L_wait_hyp_virtual_report_27    // 0x40101578: b40004c2
	mrs x2, s3_0_c0_c7_1                    // 0x4010157c: d5380722
	lsl x2, x2, #52                         // 0x40101580: d34c2c42
	lsr x2, x2, #60                         // 0x40101584: d37cfc42
	cbz x2, L_wait_hyp_virtual_report_27    // 0x40101588: b4000442
	mrs x3, s3_4_c14_c3_1                   // 0x4010158c: d53ce323
	tbz x3, #0, L_wait_hyp_virtual_report_27// 0x40101590: 36000403
	movz x4, #0x0, lsl #0                   // 0x40101594: d2800004
	movk x4, #0x10, lsl #16                 // 0x40101598: f2a00204
	movk x4, #0x0, lsl #32                  // 0x4010159c: f2c00004
	movk x4, #0x0, lsl #48                  // 0x401015a0: f2e00004
	movz x2, #0x100, lsl #0                 // 0x401015a4: d2802002
	movk x2, #0x4021, lsl #16               // 0x401015a8: f2a80422
	movk x2, #0x0, lsl #32                  // 0x401015ac: f2c00002
	movk x2, #0x0, lsl #48                  // 0x401015b0: f2e00002
	ldr x2, [x2, #0]                        // 0x401015b4: f9400042
	lsr x2, x2, #3                          // 0x401015b8: d343fc42
	movz x6, #0x10, lsl #16                 // 0x401015bc: d2a00206
	orr x2, x2, x6                          // 0x401015c0: aa060042
L_wait_hyp_virtual_loop_22:              // 0x401015c4
	mrs x3, s3_4_c14_c3_1                   // 0x401015c4: d53ce323
	mrs x5, s3_3_c14_c0_1                   // 0x401015c8: d53be025
	mrs x6, s3_4_c14_c3_2                   // 0x401015cc: d53ce346
	sub x7, x5, x6                          // 0x401015d0: cb0600a7
	tbnz x3, #2, L_wait_hyp_virtual_fired_26// 0x401015d4: 371001c3
	tbnz x7, #63, L_wait_hyp_virtual_ahead_24// 0x401015d8: b7f80067
	sub x6, x7, x2                          // 0x401015dc: cb0200e6
	tbz x6, #63, L_wait_hyp_virtual_missed_25// 0x401015e0: b6f80126
L_wait_hyp_virtual_ahead_24:             // 0x401015e4
	movz x8, #0x400, lsl #0                 // 0x401015e4: d2808008
L_wait_hyp_virtual_pause_23:             // 0x401015e8
	sub x8, x8, #1, lsl #0                  // 0x401015e8: d1000508
	cbnz x8, L_wait_hyp_virtual_pause_23    // 0x401015ec: b5ffffe8
	sub x4, x4, #1, lsl #0                  // 0x401015f0: d1000484
	cbnz x4, L_wait_hyp_virtual_loop_22     // 0x401015f4: b5fffe84
	tbz x7, #63, L_wait_hyp_virtual_missed_25// 0x401015f8: b6f80067
	movz x1, #0x3, lsl #0                   // 0x401015fc: d2800061
	b L_wait_hyp_virtual_report_27          // 0x40101600: 14000004
L_wait_hyp_virtual_missed_25:            // 0x40101604
	movz x1, #0x0, lsl #0                   // 0x40101604: d2800001
	b L_wait_hyp_virtual_report_27          // 0x40101608: 14000002
L_wait_hyp_virtual_fired_26:             // 0x4010160c
	movz x1, #0x1, lsl #0                   // 0x4010160c: d2800021
L_wait_hyp_virtual_report_27:            // 0x40101610
	adr x0, L_s_7                           // 0x40101610: 10001ae0
	bl L_puts                               // 0x40101614: 9400005f
	bl L_puthex                             // 0x40101618: 9400006a
	adr x0, L_s_8                           // 0x4010161c: 10001b60
	bl L_puts                               // 0x40101620: 9400005c
	add x1, x7, #0, lsl #0                  // 0x40101624: 910000e1
	bl L_puthex                             // 0x40101628: 94000066
	adr x0, L_s_4                           // 0x4010162c: 10001760
	bl L_puts                               // 0x40101630: 94000058
	movz x1, #0x2, lsl #0                   // 0x40101634: d2800041
	movz x7, #0x0, lsl #0                   // 0x40101638: d2800007
	mrs x2, s3_0_c4_c2_2                    // 0x4010163c: d5384242
	tbz x2, #3, L_wait_secure_physical_report_33// 0x40101640: 36180462
	tbz x2, #2, L_wait_secure_physical_report_33// 0x40101644: 36100442
	mrs x3, s3_7_c14_c2_1                   // 0x40101648: d53fe223
	tbz x3, #0, L_wait_secure_physical_report_33// 0x4010164c: 36000403
	movz x4, #0x0, lsl #0                   // 0x40101650: d2800004
	movk x4, #0x10, lsl #16                 // 0x40101654: f2a00204
	movk x4, #0x0, lsl #32                  // 0x40101658: f2c00004
	movk x4, #0x0, lsl #48                  // 0x4010165c: f2e00004
	movz x2, #0x100, lsl #0                 // 0x40101660: d2802002
	movk x2, #0x4021, lsl #16               // 0x40101664: f2a80422
	movk x2, #0x0, lsl #32                  // 0x40101668: f2c00002
	movk x2, #0x0, lsl #48                  // 0x4010166c: f2e00002
	ldr x2, [x2, #0]                        // 0x40101670: f9400042
	lsr x2, x2, #3                          // 0x40101674: d343fc42
	movz x6, #0x10, lsl #16                 // 0x40101678: d2a00206
	orr x2, x2, x6                          // 0x4010167c: aa060042
L_wait_secure_physical_loop_28:          // 0x40101680
	mrs x3, s3_7_c14_c2_1                   // 0x40101680: d53fe223
	mrs x5, s3_3_c14_c0_1                   // 0x40101684: d53be025
	mrs x6, s3_7_c14_c2_2                   // 0x40101688: d53fe246
	sub x7, x5, x6                          // 0x4010168c: cb0600a7
	tbnz x3, #2, L_wait_secure_physical_fired_32// 0x40101690: 371001c3
	tbnz x7, #63, L_wait_secure_physical_ahead_30// 0x40101694: b7f80067
	sub x6, x7, x2                          // 0x40101698: cb0200e6
	tbz x6, #63, L_wait_secure_physical_missed_31// 0x4010169c: b6f80126
L_wait_secure_physical_ahead_30:         // 0x401016a0
	movz x8, #0x400, lsl #0                 // 0x401016a0: d2808008
L_wait_secure_physical_pause_29:         // 0x401016a4
	sub x8, x8, #1, lsl #0                  // 0x401016a4: d1000508
	cbnz x8, L_wait_secure_physical_pause_29// 0x401016a8: b5ffffe8
	sub x4, x4, #1, lsl #0                  // 0x401016ac: d1000484
	cbnz x4, L_wait_secure_physical_loop_28 // 0x401016b0: b5fffe84
	tbz x7, #63, L_wait_secure_physical_missed_31// 0x401016b4: b6f80067
	movz x1, #0x3, lsl #0                   // 0x401016b8: d2800061
	b L_wait_secure_physical_report_33      // 0x401016bc: 14000004
L_wait_secure_physical_missed_31:        // 0x401016c0
	movz x1, #0x0, lsl #0                   // 0x401016c0: d2800001
	b L_wait_secure_physical_report_33      // 0x401016c4: 14000002
L_wait_secure_physical_fired_32:         // 0x401016c8
	movz x1, #0x1, lsl #0                   // 0x401016c8: d2800021
L_wait_secure_physical_report_33:        // 0x401016cc
	adr x0, L_s_9                           // 0x401016cc: 100016c0
	bl L_puts                               // 0x401016d0: 94000030
	bl L_puthex                             // 0x401016d4: 9400003b
	adr x0, L_s_10                          // 0x401016d8: 10001760
	bl L_puts                               // 0x401016dc: 9400002d
	add x1, x7, #0, lsl #0                  // 0x401016e0: 910000e1
	bl L_puthex                             // 0x401016e4: 94000037
	adr x0, L_s_4                           // 0x401016e8: 10001180
	bl L_puts                               // 0x401016ec: 94000029
L_wait_timers_done:                      // 0x401016f0
	adr x0, L_s_11                          // 0x401016f0: 100017a0
	bl L_puts                               // 0x401016f4: 94000027
	mrs x1, s3_0_c4_c2_2                    // 0x401016f8: d5384241
	lsr x1, x1, #2                          // 0x401016fc: d342fc21
	bl L_puthex                             // 0x40101700: 94000030
	adr x0, L_s_12                          // 0x40101704: 10001740
	bl L_puts                               // 0x40101708: 94000022
	adr x0, L_s_13                          // 0x4010170c: 10001720
	bl L_puts                               // 0x40101710: 94000020
	ldr x1, [sp, #224]                      // 0x40101714: f94073e1
	bl L_puthex                             // 0x40101718: 9400002a
	adr x0, L_s_12                          // 0x4010171c: 10001680
	bl L_puts                               // 0x40101720: 9400001c
	adr x0, L_s_14                          // 0x40101724: 100016a0
	bl L_puts                               // 0x40101728: 9400001a
	mrs x1, s3_3_c4_c2_1                    // 0x4010172c: d53b4221
	bl L_puthex                             // 0x40101730: 94000024
	adr x0, L_s_12                          // 0x40101734: 100015c0
	bl L_puts                               // 0x40101738: 94000016
	add x0, x28, #0, lsl #0                 // 0x4010173c: 91000380
	bl L_puts                               // 0x40101740: 94000014
	ldr x0, [sp, #224]                      // 0x40101744: f94073e0
	msr s3_3_c4_c2_0, x0                    // 0x40101748: d51b4200
	ldr x30, [sp, #232]                     // 0x4010174c: f94077fe
	ldp x0, x1, [sp, #0]                    // 0x40101750: a94007e0
	ldp x2, x3, [sp, #16]                   // 0x40101754: a9410fe2
	ldp x4, x5, [sp, #32]                   // 0x40101758: a94217e4
	ldp x6, x7, [sp, #48]                   // 0x4010175c: a9431fe6
	ldp x8, x9, [sp, #64]                   // 0x40101760: a94427e8
	ldp x10, x11, [sp, #80]                 // 0x40101764: a9452fea
	ldp x12, x13, [sp, #96]                 // 0x40101768: a94637ec
	ldp x14, x15, [sp, #112]                // 0x4010176c: a9473fee
	ldp x16, x17, [sp, #128]                // 0x40101770: a94847f0
	ldp x18, x19, [sp, #144]                // 0x40101774: a9494ff2
	ldp x20, x21, [sp, #160]                // 0x40101778: a94a57f4
	ldp x22, x23, [sp, #176]                // 0x4010177c: a94b5ff6
	ldp x24, x25, [sp, #192]                // 0x40101780: a94c67f8
	ldp x26, x27, [sp, #208]                // 0x40101784: a94d6ffa
	add sp, sp, #256, lsl #0                // 0x40101788: 910403ff
	ret x30                                 // 0x4010178c: d65f03c0
L_puts:                                  // 0x40101790
	movz x9, #0x0, lsl #0                   // 0x40101790: d2800009
	movk x9, #0x900, lsl #16                // 0x40101794: f2a12009
	movk x9, #0x0, lsl #32                  // 0x40101798: f2c00009
	movk x9, #0x0, lsl #48                  // 0x4010179c: f2e00009
L_puts_next:                             // 0x401017a0
	ldrb w11, [x0, #0]                      // 0x401017a0: 3940000b
	cbz x11, L_puts_end                     // 0x401017a4: b40000cb
L_puts_wait:                             // 0x401017a8
	ldr w10, [x9, #24]                      // 0x401017a8: b940192a
	tbnz x10, #5, L_puts_wait               // 0x401017ac: 372fffea
	strb w11, [x9, #0]                      // 0x401017b0: 3900012b
	add x0, x0, #1, lsl #0                  // 0x401017b4: 91000400
	b L_puts_next                           // 0x401017b8: 17fffffa
L_puts_end:                              // 0x401017bc
	ret x30                                 // 0x401017bc: d65f03c0
L_puthex:                                // 0x401017c0
	movz x9, #0x0, lsl #0                   // 0x401017c0: d2800009
	movk x9, #0x900, lsl #16                // 0x401017c4: f2a12009
	movk x9, #0x0, lsl #32                  // 0x401017c8: f2c00009
	movk x9, #0x0, lsl #48                  // 0x401017cc: f2e00009
	adr x14, L_hexdigits                    // 0x401017d0: 100006ee
	movz x15, #0x10, lsl #0                 // 0x401017d4: d280020f
L_puthex_next:                           // 0x401017d8
	lsr x13, x1, #60                        // 0x401017d8: d37cfc2d
	lsl x1, x1, #4                          // 0x401017dc: d37cec21
	add x13, x14, x13                       // 0x401017e0: 8b0d01cd
	ldrb w0, [x13, #0]                      // 0x401017e4: 394001a0
L_puthex_wait:                           // 0x401017e8
	ldr w10, [x9, #24]                      // 0x401017e8: b940192a
	tbnz x10, #5, L_puthex_wait             // 0x401017ec: 372fffea
	strb w0, [x9, #0]                       // 0x401017f0: 39000120
	sub x15, x15, #1, lsl #0                // 0x401017f4: d10005ef
	cbnz x15, L_puthex_next                 // 0x401017f8: b5ffff0f
	ret x30                                 // 0x401017fc: d65f03c0
L_exception:                             // 0x40101800
	add x20, x0, #0, lsl #0                 // 0x40101800: 91000014
	mrs x21, s3_0_c4_c2_2                   // 0x40101804: d5384255
	lsr x21, x21, #2                        // 0x40101808: d342feb5
	cmp x21, #3, lsl #0                     // 0x4010180c: f1000ebf
	b.eq L_exception_el3                    // 0x40101810: 540000e0
	cmp x21, #2, lsl #0                     // 0x40101814: f1000abf
	b.eq L_exception_el2                    // 0x40101818: 54000120
	mrs x22, s3_0_c5_c2_0                   // 0x4010181c: d5385216
	mrs x23, s3_0_c4_c0_1                   // 0x40101820: d5384037
	mrs x24, s3_0_c6_c0_0                   // 0x40101824: d5386018
	b L_exception_print                     // 0x40101828: 14000009
L_exception_el3:                         // 0x4010182c
	mrs x22, s3_6_c5_c2_0                   // 0x4010182c: d53e5216
	mrs x23, s3_6_c4_c0_1                   // 0x40101830: d53e4037
	mrs x24, s3_6_c6_c0_0                   // 0x40101834: d53e6018
	b L_exception_print                     // 0x40101838: 14000005
L_exception_el2:                         // 0x4010183c
	mrs x22, s3_4_c5_c2_0                   // 0x4010183c: d53c5216
	mrs x23, s3_4_c4_c0_1                   // 0x40101840: d53c4037
	mrs x24, s3_4_c6_c0_0                   // 0x40101844: d53c6018
	b L_exception_print                     // 0x40101848: 14000001
L_exception_print:                       // 0x4010184c
	adr x0, L_s_15                          // 0x4010184c: 10000da0
	bl L_puts                               // 0x40101850: 97ffffd0
	add x1, x21, #0, lsl #0                 // 0x40101854: 910002a1
	bl L_puthex                             // 0x40101858: 97ffffda
	adr x0, L_s_16                          // 0x4010185c: 10000d80
	bl L_puts                               // 0x40101860: 97ffffcc
	add x1, x20, #0, lsl #0                 // 0x40101864: 91000281
	bl L_puthex                             // 0x40101868: 97ffffd6
	adr x0, L_s_17                          // 0x4010186c: 10000d40
	bl L_puts                               // 0x40101870: 97ffffc8
	add x1, x22, #0, lsl #0                 // 0x40101874: 910002c1
	bl L_puthex                             // 0x40101878: 97ffffd2
	adr x0, L_s_18                          // 0x4010187c: 10000d00
	bl L_puts                               // 0x40101880: 97ffffc4
	add x1, x23, #0, lsl #0                 // 0x40101884: 910002e1
	bl L_puthex                             // 0x40101888: 97ffffce
	adr x0, L_s_19                          // 0x4010188c: 10000cc0
	bl L_puts                               // 0x40101890: 97ffffc0
	add x1, x24, #0, lsl #0                 // 0x40101894: 91000301
	bl L_puthex                             // 0x40101898: 97ffffca
	adr x0, L_s_20                          // 0x4010189c: 10000c80
	bl L_puts                               // 0x401018a0: 97ffffbc
L_exception_park:                        // 0x401018a4
	wfe                                     // 0x401018a4: d503205f
	b L_exception_park                      // 0x401018a8: 17ffffff
L_hexdigits:                             // 0x401018ac
	.word 0x33323130                        // 0x401018ac
	.word 0x37363534                        // 0x401018b0
	.word 0x62613938                        // 0x401018b4
	.word 0x66656463                        // 0x401018b8
L_s_0:                                   // 0x401018bc
	.word 0x494d4040                        // 0x401018bc
	.word 0x5a554647                        // 0x401018c0
	.word 0x48432d5a                        // 0x401018c4
	.word 0x504b4345                        // 0x401018c8
	.word 0x544e494f                        // 0x401018cc
	.word 0x000a4040                        // 0x401018d0
L_s_1:                                   // 0x401018d4
	.word 0x494d4040                        // 0x401018d4
	.word 0x5a554647                        // 0x401018d8
	.word 0x4f442d5a                        // 0x401018dc
	.word 0x4040454e                        // 0x401018e0
	.word 0x0000000a                        // 0x401018e4
L_s_2:                                   // 0x401018e8
	.word 0x656d6974                        // 0x401018e8
	.word 0x68702e72                        // 0x401018ec
	.word 0x63697379                        // 0x401018f0
	.word 0x662e6c61                        // 0x401018f4
	.word 0x64657269                        // 0x401018f8
	.word 0x0078303d                        // 0x401018fc
L_s_3:                                   // 0x40101900
	.word 0x6d69740a                        // 0x40101900
	.word 0x702e7265                        // 0x40101904
	.word 0x69737968                        // 0x40101908
	.word 0x206c6163                        // 0x4010190c
	.word 0x6e656573                        // 0x40101910
	.word 0x00783020                        // 0x40101914
L_s_4:                                   // 0x40101918
	.word 0x63697420                        // 0x40101918
	.word 0x7020736b                        // 0x4010191c
	.word 0x20747361                        // 0x40101920
	.word 0x20737469                        // 0x40101924
	.word 0x64616564                        // 0x40101928
	.word 0x656e696c                        // 0x4010192c
	.word 0x0000000a                        // 0x40101930
L_s_5:                                   // 0x40101934
	.word 0x656d6974                        // 0x40101934
	.word 0x79682e72                        // 0x40101938
	.word 0x68705f70                        // 0x4010193c
	.word 0x63697379                        // 0x40101940
	.word 0x662e6c61                        // 0x40101944
	.word 0x64657269                        // 0x40101948
	.word 0x0078303d                        // 0x4010194c
L_s_6:                                   // 0x40101950
	.word 0x6d69740a                        // 0x40101950
	.word 0x682e7265                        // 0x40101954
	.word 0x705f7079                        // 0x40101958
	.word 0x69737968                        // 0x4010195c
	.word 0x206c6163                        // 0x40101960
	.word 0x6e656573                        // 0x40101964
	.word 0x00783020                        // 0x40101968
L_s_7:                                   // 0x4010196c
	.word 0x656d6974                        // 0x4010196c
	.word 0x79682e72                        // 0x40101970
	.word 0x69765f70                        // 0x40101974
	.word 0x61757472                        // 0x40101978
	.word 0x69662e6c                        // 0x4010197c
	.word 0x3d646572                        // 0x40101980
	.word 0x00007830                        // 0x40101984
L_s_8:                                   // 0x40101988
	.word 0x6d69740a                        // 0x40101988
	.word 0x682e7265                        // 0x4010198c
	.word 0x765f7079                        // 0x40101990
	.word 0x75747269                        // 0x40101994
	.word 0x73206c61                        // 0x40101998
	.word 0x206e6565                        // 0x4010199c
	.word 0x00007830                        // 0x401019a0
L_s_9:                                   // 0x401019a4
	.word 0x656d6974                        // 0x401019a4
	.word 0x65732e72                        // 0x401019a8
	.word 0x65727563                        // 0x401019ac
	.word 0x7968705f                        // 0x401019b0
	.word 0x61636973                        // 0x401019b4
	.word 0x69662e6c                        // 0x401019b8
	.word 0x3d646572                        // 0x401019bc
	.word 0x00007830                        // 0x401019c0
L_s_10:                                  // 0x401019c4
	.word 0x6d69740a                        // 0x401019c4
	.word 0x732e7265                        // 0x401019c8
	.word 0x72756365                        // 0x401019cc
	.word 0x68705f65                        // 0x401019d0
	.word 0x63697379                        // 0x401019d4
	.word 0x73206c61                        // 0x401019d8
	.word 0x206e6565                        // 0x401019dc
	.word 0x00007830                        // 0x401019e0
L_s_11:                                  // 0x401019e4
	.word 0x303d6c65                        // 0x401019e4
	.word 0x00000078                        // 0x401019e8
L_s_12:                                  // 0x401019ec
	.word 0x0000000a                        // 0x401019ec
L_s_13:                                  // 0x401019f0
	.word 0x76637a6e                        // 0x401019f0
	.word 0x0078303d                        // 0x401019f4
L_s_14:                                  // 0x401019f8
	.word 0x66696164                        // 0x401019f8
	.word 0x0078303d                        // 0x401019fc
L_s_15:                                  // 0x40101a00
	.word 0x20435845                        // 0x40101a00
	.word 0x303d6c65                        // 0x40101a04
	.word 0x00000078                        // 0x40101a08
L_s_16:                                  // 0x40101a0c
	.word 0x63657620                        // 0x40101a0c
	.word 0x0078303d                        // 0x40101a10
L_s_17:                                  // 0x40101a14
	.word 0x72736520                        // 0x40101a14
	.word 0x0078303d                        // 0x40101a18
L_s_18:                                  // 0x40101a1c
	.word 0x726c6520                        // 0x40101a1c
	.word 0x0078303d                        // 0x40101a20
L_s_19:                                  // 0x40101a24
	.word 0x72616620                        // 0x40101a24
	.word 0x0078303d                        // 0x40101a28
L_s_20:                                  // 0x40101a2c
	.word 0x4d40400a                        // 0x40101a2c
	.word 0x55464749                        // 0x40101a30
	.word 0x442d5a5a                        // 0x40101a34
	.word 0x40454e4f                        // 0x40101a38
	.word 0x00000a40                        // 0x40101a3c
