/* Where PSCI CPU_ON starts a secondary CPU (guest_lib::smp::start): EL1, MMU and caches
 * off, x0 = its start block (guest_lib::smp's StartBlock, at the top of its stack; an
 * identity-mapped address). The block holds the starting CPU's EL1 state, which this CPU
 * takes as its own (same translation, same vectors, FP/SIMD on) before the MMU goes on;
 * then the stack, and the entry with its argument. The offsets are StartBlock's, checked
 * by a const assertion in smp.rs. */
.section .text, "ax"
.global pvmkit_secondary_entry
.balign 8
pvmkit_secondary_entry:
    msr     daifset, #0xf
    ldr     x1, [x0, #0]        /* cpacr_el1 */
    msr     cpacr_el1, x1
    ldr     x1, [x0, #8]        /* vbar_el1 */
    msr     vbar_el1, x1
    ldr     x1, [x0, #16]       /* mair_el1 */
    msr     mair_el1, x1
    ldr     x1, [x0, #24]       /* tcr_el1 */
    msr     tcr_el1, x1
    ldr     x1, [x0, #32]       /* ttbr0_el1 */
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x1, [x0, #40]       /* sctlr_el1 */
    msr     sctlr_el1, x1
    isb
    mov     sp, x0              /* the stack grows down from the block */
    ldr     x1, [x0, #48]       /* entry */
    ldr     x0, [x0, #56]       /* its argument */
    mov     x29, xzr
    mov     x30, xzr
    blr     x1
1:  wfi
    b       1b
