/* hyp's exception vectors (VBAR_EL2). Guest exits save x0..x30 in a GuestRegs frame
 * on the EL2 stack, call Rust, restore and ERET. ELR/SPSR stay in their registers: no
 * handler takes a nested exception. Exceptions taken at EL2 itself are hyp bugs. */
.macro save_frame
    sub     sp, sp, #(16 * 16)
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    str     x30, [sp, #16 * 15]
.endm

.macro restore_frame_and_return
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #(16 * 16)
    eret
.endm

/* Vector slot: jump to an out-of-line stub (a slot holds only 32 instructions). */
.macro slot target
    .balign 0x80
    b       \target
.endm

.section .text.vectors, "ax"
.balign 0x800
.global hyp_vectors
hyp_vectors:
    slot    el2_sp0_fault           /* current EL, SP_EL0: sync */
    slot    el2_sp0_fault           /* IRQ */
    slot    el2_sp0_fault           /* FIQ */
    slot    el2_sp0_fault           /* SError */
    slot    el2_fault_sync          /* current EL, SP_ELx: sync */
    slot    el2_fault_irq           /* IRQ */
    slot    el2_fault_fiq           /* FIQ */
    slot    el2_fault_serror        /* SError */
    slot    guest_sync              /* lower EL, AArch64: sync */
    slot    guest_irq               /* IRQ */
    slot    guest_fiq               /* FIQ */
    slot    guest_serror            /* SError */
    slot    guest_aarch32           /* lower EL, AArch32: sync */
    slot    guest_aarch32           /* IRQ */
    slot    guest_aarch32           /* FIQ */
    slot    guest_aarch32           /* SError */

.section .text
.macro guest_exit kind, handler
    save_frame
    mov     x0, sp
    mov     x1, #\kind
    bl      \handler
    restore_frame_and_return
.endm

.macro hyp_fault kind
    save_frame
    mov     x0, sp
    mov     x1, #\kind
    bl      hyp_exception
1:  wfe
    b       1b
.endm

guest_sync:     guest_exit {SYNCHRONOUS}, handle_guest_exit
guest_irq:      guest_exit {IRQ}, handle_guest_exit
guest_fiq:      guest_exit {FIQ}, handle_guest_exit
guest_serror:   guest_exit {SERROR}, handle_guest_exit
guest_aarch32:  guest_exit {AARCH32}, handle_guest_exit
el2_fault_sync:     hyp_fault {SYNCHRONOUS}
el2_fault_irq:      hyp_fault {IRQ}
el2_fault_fiq:      hyp_fault {FIQ}
el2_fault_serror:   hyp_fault {SERROR}
el2_sp0_fault:      hyp_fault {AARCH32}
