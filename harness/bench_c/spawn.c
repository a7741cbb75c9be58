/*
 * The C baseline for `python -m harness bench`: the same spawn as the agent's clone3 "report" program,
 * in a tight loop.  Freestanding (no libc: raw syscalls, -nostdlib -static) so that the binary is a few
 * KiB and travels quickly over the guest's serial line.
 *
 * usage: spawn MAX_ITERATIONS MAX_MS [-u]
 *   each iteration: clone3(flags 0, exit_signal SIGCHLD, size 64); the child opens and reads
 *   /proc/self/status, writes the byte count to a pipe and exits; the parent reads the pipe and reaps.
 *   Stops after MAX_ITERATIONS or MAX_MS milliseconds; -u unlinks argv[0] first (no file left behind).
 * prints: "spawns <n> ns <elapsed> per_s <rate>" on stdout, exit 0; "error <where> <errno>" and exit 1.
 */

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_pipe 22
#define SYS_exit 60
#define SYS_wait4 61
#define SYS_unlink 87
#define SYS_clock_gettime 228
#define SYS_clone3 435
#define SIGCHLD 17
#define CLOCK_MONOTONIC 1

typedef unsigned long u64;

struct clone_args {  /* CLONE_ARGS_SIZE_VER0 = 64 bytes */
	u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

struct timespec { long tv_sec, tv_nsec; };

static long sys6(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile ("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			  : "rcx", "r11", "memory");
	return ret;
}

void *memset(void *s, int c, unsigned long n)
{
	unsigned char *p = s;
	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

static unsigned long put_u64(char *buf, u64 v)
{
	char tmp[24];
	unsigned long n = 0, i;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static unsigned long put_str(char *buf, const char *s)
{
	unsigned long n = 0;
	while (s[n]) {
		buf[n] = s[n];
		n++;
	}
	return n;
}

static u64 parse_u64(const char *s)
{
	u64 v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u64)(*s++ - '0');
	return v;
}

static u64 now_ns(void)
{
	struct timespec ts;
	sys6(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0);
	return (u64)ts.tv_sec * 1000000000UL + (u64)ts.tv_nsec;
}

static void fail(const char *where, long err)
{
	char buf[64];
	unsigned long n = put_str(buf, "error ");
	n += put_str(buf + n, where);
	buf[n++] = ' ';
	n += put_u64(buf + n, (u64)-err);
	buf[n++] = '\n';
	sys6(SYS_write, 1, (long)buf, (long)n, 0);
	sys6(SYS_exit, 1, 0, 0, 0);
}

static void child(int wfd)
{
	static char status[4096];
	long fd = sys6(SYS_open, (long)"/proc/self/status", 0, 0, 0);
	long got = fd < 0 ? fd : sys6(SYS_read, fd, (long)status, sizeof(status), 0);
	sys6(SYS_write, wfd, (long)&got, sizeof(got), 0);
	sys6(SYS_exit, got > 0 ? 0 : 1, 0, 0, 0);
}

static int run(u64 max_iter, u64 max_ns, int unlink_self, const char *self)
{
	int fds[2];
	struct clone_args args;
	u64 done = 0, start, elapsed;
	long ret, got;
	int wstatus;
	char buf[96];
	unsigned long n;

	if (unlink_self)
		sys6(SYS_unlink, (long)self, 0, 0, 0);
	ret = sys6(SYS_pipe, (long)fds, 0, 0, 0);
	if (ret < 0)
		fail("pipe", ret);
	start = now_ns();
	do {
		memset(&args, 0, sizeof(args));
		args.exit_signal = SIGCHLD;
		ret = sys6(SYS_clone3, (long)&args, sizeof(args), 0, 0);
		if (ret < 0)
			fail("clone3", ret);
		if (ret == 0)
			child(fds[1]);
		got = 0;
		if (sys6(SYS_read, fds[0], (long)&got, sizeof(got), 0) != sizeof(got) || got <= 0)
			fail("child-report", -5);
		if (sys6(SYS_wait4, ret, (long)&wstatus, 0, 0) != ret || wstatus != 0)
			fail("wait4", -10);
		done++;
		elapsed = now_ns() - start;
	} while (done < max_iter && elapsed < max_ns);
	n = put_str(buf, "spawns ");
	n += put_u64(buf + n, done);
	n += put_str(buf + n, " ns ");
	n += put_u64(buf + n, elapsed);
	n += put_str(buf + n, " per_s ");
	n += put_u64(buf + n, elapsed ? done * 1000000000UL / elapsed : 0);
	buf[n++] = '\n';
	sys6(SYS_write, 1, (long)buf, (long)n, 0);
	return 0;
}

__attribute__((used)) static void start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	u64 max_iter = argc > 1 ? parse_u64(argv[1]) : 1000;
	u64 max_ms = argc > 2 ? parse_u64(argv[2]) : 3000;
	int unlink_self = argc > 3 && argv[3][0] == '-' && argv[3][1] == 'u';
	sys6(SYS_exit, run(max_iter, max_ms * 1000000UL, unlink_self, argv[0]), 0, 0, 0);
}

__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n"
	"\tcall start_c\n\thlt\n");
