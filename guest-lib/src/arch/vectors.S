/* The guest's exception vectors (VBAR_EL1). Every exception saves x0..x30 on the
 * current stack, calls Rust with the frame and the vector's kind, restores and ERETs
 * (the handler either changed ELR_EL1 to resume after a probe, or powered off). */
.macro save_and_call kind
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
    mov     x0, sp
    mov     x1, #\kind
    bl      pvmkit_guest_exception
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

.macro slot target
    .balign 0x80
    b       \target
.endm

.section .text.vectors, "ax"
.balign 0x800
.global guest_vectors
guest_vectors:
    slot    vec_sync        /* current EL, SP_EL0 */
    slot    vec_irq
    slot    vec_fiq
    slot    vec_serror
    slot    vec_sync        /* current EL, SP_ELx */
    slot    vec_irq
    slot    vec_fiq
    slot    vec_serror
    slot    vec_sync        /* lower EL, AArch64 */
    slot    vec_irq
    slot    vec_fiq
    slot    vec_serror
    slot    vec_sync        /* lower EL, AArch32 */
    slot    vec_irq
    slot    vec_fiq
    slot    vec_serror

.section .text
vec_sync:   save_and_call 0
vec_irq:    save_and_call 1
vec_fiq:    save_and_call 2
vec_serror: save_and_call 3
