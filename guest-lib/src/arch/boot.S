/* A guest's first instructions: x0 = its device tree (Linux boot protocol; 0 when QEMU
 * boots the ELF bare). FP/SIMD is enabled before any Rust runs, because Rust code for
 * aarch64-unknown-none uses the SIMD registers freely. */
.section .text.boot, "ax"
.global _start
_start:
    msr     daifset, #0xf
    mov     x19, x0
    /* Relocate: a position-independent image (linked at 0 with -pie, see
     * guest-image.ld) applies its R_AARCH64_RELATIVE relocations for where it was
     * loaded; an image linked where it runs has none, and the loop does nothing. */
    adrp    x1, __guest_start
    add     x1, x1, :lo12:__guest_start
    ldr     x2, =__guest_start
    sub     x1, x1, x2                  /* x1 = load address - link address */
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
4:  cmp     x2, x3
    b.hs    5f
    ldp     x4, x5, [x2], #16           /* r_offset, r_info */
    ldr     x6, [x2], #8                /* r_addend */
    cmp     x5, #1027                   /* R_AARCH64_RELATIVE, no symbol */
    b.ne    6f
    add     x6, x6, x1
    str     x6, [x4, x1]
    b       4b
6:  wfi                                 /* a relocation this loader cannot apply */
    b       6b
5:
    mrs     x1, cpacr_el1
    orr     x1, x1, #(0x3 << 20)        /* FPEN: no FP/SIMD traps at EL1/EL0 */
    msr     cpacr_el1, x1
    isb
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  adrp    x1, guest_vectors
    add     x1, x1, :lo12:guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      pvmkit_guest_entry
3:  wfi
    b       3b
