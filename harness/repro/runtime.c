/*
 * Runtime of a C reproducer (the generated file includes this text verbatim, after its tables).
 *
 * It re-implements, for one program, what the guest agent does (harness/agent/PROGRAMS.md):
 * a chain of pid namespaces with one worker per level (pid 1 there), the arena at a fixed
 * address, and the steps syscall / occupy / release / read_file / write_file / pids. Only libc:
 * `gcc -static -o repro repro.c` builds it. Exit 0 when every expectation holds, 1 when one
 * does not, 2 when the setup itself failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARENA 0x100000000UL
#define ARENA_SIZE 0x10000UL
#define GUARD_SIZE 0x1000UL
#define MAX_LEVELS 33
#define MAX_NSPID 40
#define MAX_HELD 256

struct result {
	long ret;
	int err;
	int has_child;
	int nspid_len;
	int nspid[MAX_NSPID];
	char data[256];
};

enum { OP_SYSCALL, OP_OCCUPY, OP_RELEASE, OP_READ_FILE, OP_WRITE_FILE, OP_NOP };
enum { CHILD_REPORT, CHILD_HOLD, CHILD_EXIT };

struct level { int userns, drop, ncaps, caps[64]; };
struct mem { unsigned long addr; unsigned int len; const unsigned char *bytes; };
struct step {
	int op, at;
	const char *label;
	long nr;
	unsigned long regs[6];
	unsigned int nwrites, nreads;
	const struct mem *writes, *reads;
	int clone, clone_mode, deeper;
	const char *name;
	int pid;
	const char *path;
	const char *data;
	unsigned int data_len;
	int mode;
};
struct expect { int checked, err, nspid_len, nspid[MAX_NSPID]; };

/* @TABLES@ */

static int cmd_pipe[MAX_LEVELS][2], done_pipe[MAX_LEVELS][2];
static struct { char name[64]; pid_t pid; } held[MAX_HELD];
static int nheld;

static void die(const char *what)
{
	fprintf(stderr, "setup failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* syscall; where it returns 0 in a new task, that task exits at once (CLONE_VM, new stacks). */
static long raw_syscall_child_exits(long nr, const unsigned long *r)
{
	long ret;
	register long r10 __asm__("r10") = (long)r[3];
	register long r8 __asm__("r8") = (long)r[4];
	register long r9 __asm__("r9") = (long)r[5];

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov $60, %%eax\n\t"
			 "xor %%edi, %%edi\n\t"
			 "syscall\n\t"
			 "1:"
			 : "=a"(ret)
			 : "a"(nr), "D"(r[0]), "S"(r[1]), "d"(r[2]), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static void map_arena(void)
{
	if (mmap((void *)ARENA, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		die("mmap arena");
	if (mmap((void *)(ARENA + ARENA_SIZE), GUARD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		die("mmap guard page");
}

/* The NSpid line of /proc/self/status, keeping the last `keep` entries (levels below our root). */
static int read_nspid(int *out, int keep)
{
	char line[512];
	int all[MAX_NSPID], n = 0, i;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + 6, *end;

		if (strncmp(line, "NSpid:", 6))
			continue;
		while (n < MAX_NSPID) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			all[n++] = (int)v;
			p = end;
		}
	}
	fclose(f);
	if (keep > n)
		keep = n;
	for (i = 0; i < keep; i++)
		out[i] = all[n - keep + i];
	return keep;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	int err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, text, strlen(text)) < 0)
		err = errno;
	close(fd);
	return err;
}

static void remember(const char *name, pid_t pid)
{
	if (nheld < MAX_HELD) {
		snprintf(held[nheld].name, sizeof(held[nheld].name), "%s", name ? name : "");
		held[nheld++].pid = pid;
	}
}

static void run_syscall(const struct step *s, struct result *res, int level)
{
	int report[2];
	int keep = level + 1 + s->deeper;
	unsigned int i;

	memset((void *)ARENA, 0, ARENA_SIZE);
	for (i = 0; i < s->nwrites; i++)
		memcpy((void *)s->writes[i].addr, s->writes[i].bytes, s->writes[i].len);
	if (s->clone_mode != CHILD_EXIT && pipe(report))
		die("pipe");
	if (s->clone_mode == CHILD_EXIT) {
		res->ret = raw_syscall_child_exits(s->nr, s->regs);
	} else {
		res->ret = syscall(s->nr, s->regs[0], s->regs[1], s->regs[2], s->regs[3], s->regs[4], s->regs[5]);
		if (res->ret == 0 && s->clone) {
			struct result child = { 0 };

			child.nspid_len = read_nspid(child.nspid, keep);
			child.ret = getpid();
			if (write(report[1], &child, sizeof(child)) < 0)
				_exit(3);
			if (s->clone_mode == CHILD_HOLD)
				for (;;)
					pause();
			_exit(0);
		}
		if (res->ret == 0)
			_exit(0);
	}
	if (res->ret < 0 && res->ret > -4096 && s->clone_mode == CHILD_EXIT) {
		res->err = (int)-res->ret;
		res->ret = -1;
	} else if (res->ret < 0) {
		res->err = errno;
	}
	if (s->clone_mode != CHILD_EXIT) {
		close(report[1]);
		if (res->ret > 0) {
			struct result child;

			if (read(report[0], &child, sizeof(child)) == sizeof(child)) {
				res->has_child = 1;
				res->nspid_len = child.nspid_len;
				memcpy(res->nspid, child.nspid, sizeof(child.nspid));
			}
		}
		close(report[0]);
	}
	if (res->ret > 0 && s->clone_mode == CHILD_HOLD)
		remember(s->name, (pid_t)res->ret);
	else if (res->ret > 0)
		waitpid((pid_t)res->ret, NULL, __WALL);
	for (i = 0; i < s->nreads && i < 1; i++)
		memcpy(res->data, (void *)s->reads[i].addr, s->reads[i].len < 256 ? s->reads[i].len : 256);
}

static void run_occupy(const struct step *s, struct result *res)
{
	char text[32];
	pid_t pid;

	snprintf(text, sizeof(text), "%d", s->pid - 1);
	res->err = write_text("/proc/sys/kernel/ns_last_pid", text);
	if (res->err)
		return;
	pid = fork();
	if (pid == 0)
		for (;;)
			pause();
	res->ret = pid;
	if (pid != s->pid) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		res->ret = -1;
		return;
	}
	remember(s->name, pid);
}

static void run_release(const struct step *s, struct result *res)
{
	int i;

	res->ret = -1;
	for (i = 0; i < nheld; i++) {
		if (held[i].pid && !strcmp(held[i].name, s->name)) {
			kill(held[i].pid, SIGKILL);
			waitpid(held[i].pid, NULL, __WALL);
			held[i].pid = 0;
			res->ret = 0;
			return;
		}
	}
}

static void run_file(const struct step *s, struct result *res)
{
	int fd;
	ssize_t n;

	if (s->op == OP_WRITE_FILE) {
		fd = s->mode ? open(s->path, O_WRONLY | O_CREAT | O_TRUNC, s->mode) : open(s->path, O_WRONLY);
		if (fd < 0 || write(fd, s->data, s->data_len) < 0)
			res->err = errno;
		if (fd >= 0)
			close(fd);
		if (s->mode && !res->err)
			chmod(s->path, s->mode);
		return;
	}
	fd = open(s->path, O_RDONLY);
	if (fd < 0) {
		res->err = errno;
		return;
	}
	n = read(fd, res->data, sizeof(res->data) - 1);
	if (n < 0)
		res->err = errno;
	close(fd);
}

static void run_step(const struct step *s, int level, struct result *res)
{
	memset(res, 0, sizeof(*res));
	switch (s->op) {
	case OP_SYSCALL:
		run_syscall(s, res, level);
		break;
	case OP_OCCUPY:
		run_occupy(s, res);
		break;
	case OP_RELEASE:
		run_release(s, res);
		break;
	case OP_READ_FILE:
	case OP_WRITE_FILE:
		run_file(s, res);
		break;
	default:
		break;
	}
}

static void drop_caps(int level)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	const struct level *l = &levels[level];
	int i;

	if (!l->drop)
		return;
	for (i = 0; i < l->ncaps; i++) {
		data[l->caps[i] / 32].effective |= 1u << (l->caps[i] % 32);
		data[l->caps[i] / 32].permitted |= 1u << (l->caps[i] % 32);
		data[l->caps[i] / 32].inheritable |= 1u << (l->caps[i] % 32);
	}
	if (syscall(SYS_capset, &hdr, data))
		die("capset");
}

static void become_root_in_userns(uid_t uid, gid_t gid)
{
	char map[64];

	write_text("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1", uid);
	if (write_text("/proc/self/uid_map", map))
		die("uid_map");
	snprintf(map, sizeof(map), "0 %u 1", gid);
	if (write_text("/proc/self/gid_map", map))
		die("gid_map");
}

/* The worker of `level`: start the next level, then run the steps sent to us until told to stop. */
static void __attribute__((noreturn)) worker(int level)
{
	int index;

	if (level < DEPTH) {
		uid_t uid = geteuid();
		gid_t gid = getegid();
		unsigned long flags = SIGCHLD | CLONE_NEWPID | (levels[level + 1].userns ? CLONE_NEWUSER : 0);
		long pid = syscall(SYS_clone, flags, 0, 0, 0, 0);

		if (pid < 0)
			die("clone(CLONE_NEWPID) for the chain");
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (levels[level + 1].userns)
				become_root_in_userns(uid, gid);
			worker(level + 1);
			_exit(0);
		}
	}
	for (;;) {
		struct result res = { 0 };

		if (read(cmd_pipe[level][0], &index, sizeof(index)) != sizeof(index) || index == -2)
			break;
		if (index == -1)
			drop_caps(level);
		else
			run_step(&steps[index], level, &res);
		if (write(done_pipe[level][1], &res, sizeof(res)) < 0)
			break;
	}
	for (index = 0; index < nheld; index++)
		if (held[index].pid)
			kill(held[index].pid, SIGKILL);
	while (wait(NULL) > 0)
		;
	_exit(0);
}

static void send(int level, int index, struct result *res)
{
	if (write(cmd_pipe[level][1], &index, sizeof(index)) != sizeof(index) ||
	    read(done_pipe[level][0], res, sizeof(*res)) != sizeof(*res))
		die("worker gone");
}

static void print_nspid(const char *label, const int *nspid, int n)
{
	int i;

	printf("%s[", label);
	for (i = 0; i < n; i++)
		printf("%s%d", i ? ", " : "", nspid[i]);
	printf("]");
}

static int check(int index, const struct step *s, const struct result *res)
{
	const struct expect *e = &expected[index];
	int ok = 1;

	printf("step %d (%s at level %d): ret %ld, %s", index, s->label, s->at, res->ret,
	       res->err ? strerrorname_np(res->err) : "success");
	if (res->has_child)
		print_nspid(", child NSpid ", res->nspid, res->nspid_len);
	printf("\n");
	if (!e->checked)
		return 1;
	if (e->err != res->err)
		ok = 0;
	if (e->nspid_len && (res->nspid_len != e->nspid_len ||
			     memcmp(res->nspid, e->nspid, sizeof(int) * e->nspid_len)))
		ok = 0;
	printf("  expected %s", e->err ? strerrorname_np(e->err) : "success");
	if (e->nspid_len)
		print_nspid(", child NSpid ", e->nspid, e->nspid_len);
	printf(": %s\n", ok ? "as expected" : "MISMATCH");
	return ok;
}

int main(void)
{
	int level, i, failures = 0;
	pid_t first = 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	map_arena();
	for (level = 0; level <= DEPTH; level++)
		if (pipe(cmd_pipe[level]) || pipe(done_pipe[level]))
			die("pipe");
	first = fork();
	if (first < 0)
		die("fork");
	if (first == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		worker(0);
	}
	for (level = DEPTH; level >= 0; level--) {
		struct result res;

		send(level, -1, &res);
	}
	for (i = 0; i < NSTEPS; i++) {
		struct result res;

		send(steps[i].at, i, &res);
		failures += !check(i, &steps[i], &res);
	}
	for (level = 0; level <= DEPTH; level++) {
		int stop = -2;

		if (write(cmd_pipe[level][1], &stop, sizeof(stop)) < 0)
			break;
	}
	waitpid(first, NULL, 0);
	printf("%s\n", failures ? "REPRODUCED: the kernel differs from the expectation"
				 : "not reproduced: every step as expected");
	return failures ? 1 : 0;
}
