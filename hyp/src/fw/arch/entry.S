/* hyp's first instructions. The arm64 Image header makes QEMU load us at
 * RAM base + text_offset and enter at EL2 with x0 = its DTB (Linux boot protocol,
 * Documentation/arch/arm64/booting.rst). */
.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0x80000                 /* text_offset */
    .quad   __image_size            /* image_size: .bss and stacks included */
    .quad   0x2                     /* flags: little endian, 4 KiB pages */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 */

primary_entry:
    msr     daifset, #0xf
    mov     x19, x0
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    msr     tpidr_el2, x1           /* this CPU's stack top, for enter_guest */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  adrp    x1, hyp_vectors
    add     x1, x1, :lo12:hyp_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    bl      hyp_main
3:  wfe
    b       3b

/* A secondary CPU, started by QEMU's PSCI CPU_ON (arch::start_cpu) at EL2 with its
 * MMU off and x0 = its stack's top. */
.section .text
.global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mov     sp, x0
    msr     tpidr_el2, x0
    adrp    x1, hyp_vectors
    add     x1, x1, :lo12:hyp_vectors
    msr     vbar_el2, x1
    isb
    bl      hyp_secondary_main
4:  wfe
    b       4b

/* enter_guest(regs: *const GuestRegs) -> !: loads x0..x30 from regs and ERETs to
 * ELR_EL2/SPSR_EL2. The EL2 stack starts over from this CPU's top (TPIDR_EL2):
 * nothing on it is needed again. */
.global enter_guest
enter_guest:
    mrs     x1, tpidr_el2
    mov     sp, x1
    mov     x30, x0
    ldp     x0, x1, [x30, #16 * 0]
    ldp     x2, x3, [x30, #16 * 1]
    ldp     x4, x5, [x30, #16 * 2]
    ldp     x6, x7, [x30, #16 * 3]
    ldp     x8, x9, [x30, #16 * 4]
    ldp     x10, x11, [x30, #16 * 5]
    ldp     x12, x13, [x30, #16 * 6]
    ldp     x14, x15, [x30, #16 * 7]
    ldp     x16, x17, [x30, #16 * 8]
    ldp     x18, x19, [x30, #16 * 9]
    ldp     x20, x21, [x30, #16 * 10]
    ldp     x22, x23, [x30, #16 * 11]
    ldp     x24, x25, [x30, #16 * 12]
    ldp     x26, x27, [x30, #16 * 13]
    ldp     x28, x29, [x30, #16 * 14]
    ldr     x30, [x30, #16 * 15]
    eret
