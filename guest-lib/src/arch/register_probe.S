/* Register probes: one MRS or MSR each of a PMU or debug register, returning x0 = the
 * value read and x1 = 0, or x1 = 1 when the instruction was UNDEFINED (the exception
 * handler finds it in the pvmkit_register_probe_sites table, sets x1 and resumes after
 * it). Generic names (s<op0>_<op1>_c<n>_c<m>_<op2>) need no assembler extension. */
.macro register_probe name, reg
.section .text
.global pvmkit_register_read_\name
pvmkit_register_read_\name:
    mov     x1, xzr
register_read_site_\name:
    mrs     x0, \reg
    ret

/* x0 = the value to write */
.global pvmkit_register_write_\name
pvmkit_register_write_\name:
    mov     x1, xzr
register_write_site_\name:
    msr     \reg, x0
    isb
    ret

.section .rodata.pvmkit_register_probe_sites, "a"
.balign 8
    .quad   register_read_site_\name
    .quad   register_write_site_\name
.endm

/* The table's start: each probe appends its two sites after it. */
.section .rodata.pvmkit_register_probe_sites, "a"
.balign 8
.global pvmkit_register_probe_sites
pvmkit_register_probe_sites:

register_probe pmcr_el0,        s3_3_c9_c12_0
register_probe pmccntr_el0,     s3_3_c9_c13_0
register_probe mdscr_el1,       s2_0_c0_c2_2
register_probe dbgbvr0_el1,     s2_0_c0_c0_4
register_probe dbgbvr1_el1,     s2_0_c0_c1_4
register_probe oslsr_el1,       s2_0_c1_c1_4
register_probe dbgclaimclr_el1, s2_0_c7_c9_6

.section .rodata.pvmkit_register_probe_sites, "a"
.global pvmkit_register_probe_sites_end
pvmkit_register_probe_sites_end:
.section .text
