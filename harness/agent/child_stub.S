/*
 * The agent's clone stub (x86_64, SysV): the only code a child of a clone-like call ever runs.
 *
 *   long stub(long nr, long a1, long a2, long a3, long a4, long a5, long a6, long mode, long wfd);
 *
 * Issues syscall nr with a1..a6. Where it returns 0 (in a new task) the child does what `mode` says and
 * never returns to Python (the caller's Python heap may not even be mapped in it: see lean_fork.py):
 *   0 exit   exit(0) (not exit_group: a CLONE_THREAD child ends only itself)
 *   1 sp     store the initial stack pointer at SP_SLOT, then exit(0)
 *   2 report write getpid() (4 bytes) + the text of /proc/self/status to wfd in one write, exit(0)
 *   3 hold   like report, then pause() until killed
 *   4 park   pause() until killed, reporting nothing
 *   5 fs     store the fs base (arch_prctl ARCH_GET_FS: the tls CLONE_SETTLS gave it) at SP_SLOT, exit(0)
 *   6 nap    sleep NAP_SECONDS, then exit(0): a thread that outlives the call without being killed (a
 *            SIGKILL would end the caller's whole thread group), so a test can act on it meanwhile
 * With I386 (0x100) or-ed into mode the call goes through `int 0x80` (the i386 compat table: eax = nr,
 * ebx, ecx, edx, esi, edi, ebp = a1..a6, of which the kernel takes the low 32 bits); the child then does
 * what the low byte says. A kernel without IA32 emulation answers int 0x80 with SIGSEGV: ask
 * child_stub.ia32() (a throwaway fork) first.
 * The child uses no stack: a new stack pointer may point anywhere. Its buffer is REPORT_BUF in its own
 * copy of the arena. Regenerate child_stub.py after editing: python -m harness.stub_asm.
 */
	.intel_syntax noprefix
	.set SP_SLOT, 0x10000fff8
	.set REPORT_BUF, 0x100008000
	.set REPORT_MAX, 4000		/* one write below PIPE_BUF: the parent gets it in one read */
	.set I386, 0x100
	.text
	.globl stub
stub:
	push rbx
	push r12
	mov rbx, [rsp + 32]		/* mode (after two pushes and the return address) */
	mov r12, [rsp + 40]		/* wfd */
	mov rax, rdi
	test ebx, I386
	jnz i386
	mov rdi, rsi
	mov rsi, rdx
	mov rdx, rcx
	mov r10, r8
	mov r8, r9
	mov r9, [rsp + 24]		/* a6 */
	syscall
	test rax, rax
	jz child
parent:
	pop r12
	pop rbx
	ret
i386:
	push rbp
	push r13
	mov r13, rbx			/* mode (rbx is ebx, the first argument) */
	mov rbx, rsi			/* a1 */
	mov rsi, r8			/* a4 */
	mov r8, rcx			/* a3, kept */
	mov rcx, rdx			/* a2 */
	mov rdx, r8			/* a3 */
	mov rdi, r9			/* a5 */
	mov rbp, [rsp + 40]		/* a6 (after four pushes and the return address) */
	int 0x80
	movzx ebx, r13b			/* the child mode, without I386 */
	test rax, rax
	jz child			/* no pops in the child: its stack pointer may point anywhere */
	pop r13
	pop rbp
	jmp parent
child:
	cmp rbx, 5
	jne not_fs
	mov eax, 158			/* arch_prctl(ARCH_GET_FS, SP_SLOT) */
	mov edi, 0x1003
	movabs rsi, SP_SLOT
	syscall
	jmp die
not_fs:
	cmp rbx, 1
	jne not_sp
	movabs rcx, SP_SLOT
	mov [rcx], rsp
	jmp die
not_sp:
	cmp rbx, 4
	je park
	cmp rbx, 6
	jne not_nap
	mov eax, 35			/* nanosleep(&nap_time, NULL): the timespec lives in this page */
	lea rdi, [rip + nap_time]
	xor esi, esi
	syscall
	jmp die
not_nap:
	cmp rbx, 2
	jb die
	mov eax, 39			/* getpid */
	syscall
	movabs rcx, REPORT_BUF
	mov [rcx], eax
	mov eax, 2			/* open("/proc/self/status", O_RDONLY) */
	lea rdi, [rip + status_path]
	xor esi, esi
	xor edx, edx
	syscall
	xor r8d, r8d			/* bytes of status read */
	test rax, rax
	js send
	mov rdi, rax
	xor eax, eax			/* read(fd, REPORT_BUF + 4, REPORT_MAX - 4) */
	movabs rsi, REPORT_BUF + 4
	mov edx, REPORT_MAX - 4
	syscall
	test rax, rax
	js send
	mov r8, rax
send:
	mov eax, 1			/* write(wfd, REPORT_BUF, 4 + n) */
	mov rdi, r12
	movabs rsi, REPORT_BUF
	lea rdx, [r8 + 4]
	syscall
	cmp rbx, 3
	jne die
park:
	mov eax, 34			/* pause */
	syscall
	jmp park
die:
	mov eax, 60			/* exit(0) */
	xor edi, edi
	syscall
	ud2
status_path:
	.asciz "/proc/self/status"
nap_time:
	.quad 1, 0			/* NAP_SECONDS (child_stub.py), 0 ns */
