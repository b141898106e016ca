/* Probes: one access each, returning x0 = value and x1 = 0, or x1 = 1 when the access
 * took a data abort (the exception handler finds the faulting instruction in the
 * pvmkit_probe_sites table, sets x1 and resumes after it). */
.section .text
.global pvmkit_probe_read_u8
pvmkit_probe_read_u8:
    mov     x1, xzr
probe_site_read_u8:
    ldrb    w0, [x0]
    ret

.global pvmkit_probe_read_u32
pvmkit_probe_read_u32:
    mov     x1, xzr
probe_site_read_u32:
    ldr     w0, [x0]
    ret

.global pvmkit_probe_read_u64
pvmkit_probe_read_u64:
    mov     x1, xzr
probe_site_read_u64:
    ldr     x0, [x0]
    ret

/* x0 = address, x1 = value to store */
.global pvmkit_probe_write_u8
pvmkit_probe_write_u8:
    mov     x2, x1
    mov     x1, xzr
probe_site_write_u8:
    strb    w2, [x0]
    mov     x0, xzr
    ret

.global pvmkit_probe_write_u32
pvmkit_probe_write_u32:
    mov     x2, x1
    mov     x1, xzr
probe_site_write_u32:
    str     w2, [x0]
    mov     x0, xzr
    ret

/* A load pair: never has a syndrome (ISV=0), so no hypervisor may emulate it.
 * Returns the first word in x0 (the second is dropped). */
.global pvmkit_probe_read_pair
pvmkit_probe_read_pair:
    mov     x1, xzr
    mov     x2, x0
    mov     x0, xzr
probe_site_read_pair:
    ldp     x3, x4, [x2]
    mov     x0, x3
    ret

/* An SMCCC call over HVC that may be answered with an external abort at the HVC itself
 * (real pKVM's MEM_SHARE of an IPA outside memory). x0 = pointer to four words: the
 * call's x0..x3 in, its x0..x3 out (x9 survives the call: SMCCC preserves x4..x17). */
.global pvmkit_probe_hvc
pvmkit_probe_hvc:
    mov     x9, x0
    ldp     x0, x1, [x9]
    ldp     x2, x3, [x9, #16]
probe_site_hvc:
    hvc     #0
    stp     x0, x1, [x9]
    stp     x2, x3, [x9, #16]
    ret

.section .rodata
.balign 8
.global pvmkit_probe_sites
pvmkit_probe_sites:
    .quad   probe_site_read_u8
    .quad   probe_site_read_u32
    .quad   probe_site_read_u64
    .quad   probe_site_write_u8
    .quad   probe_site_write_u32
    .quad   probe_site_read_pair
    .quad   probe_site_hvc
