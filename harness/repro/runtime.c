/*
 * Runtime of a C reproducer (the generated file includes this text verbatim, after its tables).
 *
 * It re-implements, for one program, what the guest agent does (harness/agent/PROGRAMS.md):
 * a chain of pid namespaces with one worker per level (pid 1 there), the arena at a fixed
 * address, and the steps syscall / occupy / release / read_file / write_file / exec / pids, and
 * race (runtime_race.c, appended when the program has one). Only libc:
 * `gcc -static -o repro repro.c` builds it. Exit 0 when every expectation holds, 1 when one
 * does not, 2 when the setup itself failed. `./repro ROUNDS` runs each race for ROUNDS rounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
#define MAX_PREP 8

/* What a step did; travels through pipes in one write (well below PIPE_BUF). */
struct result {
	long ret;
	int err;
	int has_child;
	int nspid_len;
	int nspid[MAX_NSPID];
	int child_status; /* exit code or -signal of a child reaped in the step */
	int cpu; /* racers: where the call ran */
	int aborted; /* racers: the round was called off at the barrier */
	int nprep; /* racers: their prepare steps' results */
	long prep_ret[MAX_PREP];
	int prep_err[MAX_PREP];
	char data[1024];
};

enum { OP_SYSCALL, OP_OCCUPY, OP_RELEASE, OP_READ_FILE, OP_WRITE_FILE, OP_NOP, OP_EXEC, OP_RACE, OP_EXIT, OP_UNSHARE,
       OP_SETNS };
enum { CHILD_REPORT, CHILD_HOLD, CHILD_EXIT, CHILD_PARK };

struct level { int userns, drop, ncaps, caps[64]; };
struct mem { unsigned long addr; unsigned int len; const unsigned char *bytes; };
struct step {
	int op, at;
	const char *label;
	long nr;
	unsigned long regs[6];
	unsigned int nwrites, nreads;
	const struct mem *writes, *reads;
	int clone, clone_mode;
	const char *name;
	int pid;
	const char *path;
	const char *data;
	unsigned int data_len;
	int mode;
	const char *const *argv, *const *envp; /* exec */
	int timeout; /* exec, seconds */
	int race; /* race: index in races[] */
};
struct expect { int checked, err, nspid_len, nspid[MAX_NSPID]; };
/* A race step: its racers, setup and check steps are runs of steps[] after the program's own. */
struct race {
	int rounds, first_racer, nracers, first_setup, nsetup, first_check, ncheck;
	int checked, nerrnos, errnos[16]; /* errnos a correct kernel refused racers with */
};
struct racer {
	int step, race, local, cpu, first_prep, nprep;
	int group; /* racers of one group ask for the same pids and keep the child: at most one may win */
	int nwant, want[MAX_NSPID]; /* the full pid vector asked for (0: none, not checked) */
	const char *pidns_of;
};

/* @TABLES@ */

static int cmd_pipe[MAX_LEVELS][2], done_pipe[MAX_LEVELS][2];
static struct { char name[64]; pid_t pid; } held[MAX_HELD];
static int nheld;
static int nspid_base; /* NSpid entries above our level 0 (the reproducer may itself run nested) */
static long rounds_arg; /* ./repro ROUNDS: rounds of every race (0: as recorded) */

#ifdef NRACES
#define RACE_CMD 0x10000 /* a worker command at or above this is a race command (runtime_race.c) */
static void race_init(void);
static void race_command(int level, int cmd, struct result *res);
static void reap_killed(int level);
static int run_race(int index);
#endif

static void die(const char *what)
{
	fprintf(stderr, "setup failed: %s: %s\n", what, strerror(errno));
	exit(2);
}

/*
 * A raw syscall whose new task (return 0) runs `child_asm` without touching memory, so it may share
 * ours (CLONE_VM, no stack of its own); the caller gets the return value.
 */
#define RAW_CLONE_SYSCALL(nr, r, child_asm)                                                        \
	({                                                                                         \
		long ret_;                                                                         \
		register long r10_ __asm__("r10") = (long)(r)[3];                                  \
		register long r8_ __asm__("r8") = (long)(r)[4];                                    \
		register long r9_ __asm__("r9") = (long)(r)[5];                                    \
		__asm__ volatile("syscall\n\t"                                                     \
				 "test %%rax, %%rax\n\t"                                           \
				 "jnz 1f\n\t" child_asm "1:"                                       \
				 : "=a"(ret_)                                                      \
				 : "a"(nr), "D"((r)[0]), "S"((r)[1]), "d"((r)[2]), "r"(r10_),       \
				   "r"(r8_), "r"(r9_)                                              \
				 : "rcx", "r11", "memory");                                        \
		ret_;                                                                              \
	})

/* syscall; where it returns 0 in a new task, that task exits at once (CLONE_VM, new stacks). */
static long raw_syscall_child_exits(long nr, const unsigned long *r)
{
	return RAW_CLONE_SYSCALL(nr, r, "mov $60, %%eax\n\txor %%edi, %%edi\n\tsyscall\n\t");
}

/* syscall; a new task (return 0) loops on pause() without touching memory, so it can share ours. */
static long raw_syscall_child_parks(long nr, const unsigned long *r)
{
	return RAW_CLONE_SYSCALL(nr, r, "2: mov $34, %%eax\n\tsyscall\n\tjmp 2b\n\t");
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

/* The NSpid line of a /proc file (status, or a pidfd's fdinfo), from level `skip` on. */
static int read_nspid(const char *path, int *out, int skip)
{
	char line[512];
	int all[MAX_NSPID], n = 0, i;
	FILE *f = fopen(path, "r");

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
	for (i = skip; i < n; i++)
		out[i - skip] = all[i];
	return n > skip ? n - skip : 0;
}

/* A live child's NSpid, through a pidfd (a parked child cannot report it itself). */
static int child_nspid(pid_t pid, int *out)
{
	char path[64];
	int n = 0, fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	n = read_nspid(path, out, nspid_base);
	close(fd);
	return n;
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
	if (nheld < MAX_HELD && pid > 0) {
		snprintf(held[nheld].name, sizeof(held[nheld].name), "%s", name ? name : "");
		held[nheld++].pid = pid;
	}
}

/* Before the call: the arena as the step wants it, and the pipe a reporting child answers on. */
static void arm_syscall(const struct step *s, int report[2])
{
	unsigned int i;

	memset((void *)ARENA, 0, ARENA_SIZE);
	for (i = 0; i < s->nwrites; i++)
		memcpy((void *)s->writes[i].addr, s->writes[i].bytes, s->writes[i].len);
	report[0] = report[1] = -1;
	if (s->clone && (s->clone_mode == CHILD_REPORT || s->clone_mode == CHILD_HOLD) && pipe(report))
		die("pipe");
}

/* The call itself. A reporting child reports (and holds) here; any other new task exits at once. */
static void call_syscall(const struct step *s, struct result *res, const int report[2], pid_t me)
{
	if (s->clone_mode == CHILD_EXIT || s->clone_mode == CHILD_PARK) {
		res->ret = s->clone_mode == CHILD_EXIT ? raw_syscall_child_exits(s->nr, s->regs)
						       : raw_syscall_child_parks(s->nr, s->regs);
		if (res->ret < 0 && res->ret > -4096) {
			res->err = (int)-res->ret;
			res->ret = -1;
		}
		return;
	}
	res->ret = syscall(s->nr, s->regs[0], s->regs[1], s->regs[2], s->regs[3], s->regs[4], s->regs[5]);
	if (res->ret < 0)
		res->err = errno;
	/* a clone's child sees 0; a pid-1 worker's child in a new namespace is pid 1 too, so getpid()
	 * only tells a child apart after a call that was not meant to create one */
	if (res->ret == 0 && report[1] >= 0) {
		struct result child = { 0 };

		child.nspid_len = read_nspid("/proc/self/status", child.nspid, nspid_base);
		child.ret = getpid();
		if (write(report[1], &child, sizeof(child)) < 0)
			_exit(3);
		if (s->clone_mode == CHILD_HOLD)
			for (;;)
				pause();
		_exit(0);
	}
	if (res->ret == 0 && (s->clone || getpid() != me))
		_exit(0);
}

/* After the call: the child's report, holding or reaping it, the arena reads. */
static void finish_syscall(const struct step *s, struct result *res, int report[2])
{
	unsigned int i;
	int status;

	if (report[1] >= 0)
		close(report[1]);
	if (report[0] >= 0) {
		struct result child;

		if (res->ret > 0 && read(report[0], &child, sizeof(child)) == sizeof(child)) {
			res->has_child = 1;
			res->nspid_len = child.nspid_len;
			memcpy(res->nspid, child.nspid, sizeof(child.nspid));
		}
		close(report[0]);
	}
	if (res->ret > 0 && s->clone && s->clone_mode == CHILD_PARK) {
		res->nspid_len = child_nspid((pid_t)res->ret, res->nspid);
		res->has_child = res->nspid_len > 0;
	}
	if (res->ret > 0 && s->clone && (s->clone_mode == CHILD_HOLD || s->clone_mode == CHILD_PARK))
		remember(s->name, (pid_t)res->ret);
	else if (res->ret > 0 && waitpid((pid_t)res->ret, &status, __WALL) == res->ret)
		res->child_status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
	for (i = 0; i < s->nreads && i < 1; i++)
		memcpy(res->data, (void *)s->reads[i].addr,
		       s->reads[i].len < sizeof(res->data) ? s->reads[i].len : sizeof(res->data));
}

static void run_syscall(const struct step *s, struct result *res)
{
	int report[2];
	pid_t me = getpid();

	arm_syscall(s, report);
	call_syscall(s, res, report, me);
	finish_syscall(s, res, report);
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
	if (pid < 0) {
		res->err = errno;
		res->ret = -1;
		return;
	}
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

/* unshare(CLONE_NEWPID), or setns(CLONE_NEWPID) into held process `name`'s namespace: later children go there */
static void run_pidns(const struct step *s, struct result *res)
{
	int i, fd;

	if (s->op == OP_UNSHARE) {
		res->ret = unshare(CLONE_NEWPID);
		res->err = res->ret < 0 ? errno : 0;
		return;
	}
	res->ret = -1;
	res->err = ESRCH;
	for (i = 0; i < nheld; i++) {
		if (held[i].pid && !strcmp(held[i].name, s->name)) {
			fd = (int)syscall(SYS_pidfd_open, held[i].pid, 0);
			if (fd < 0) {
				res->err = errno;
				return;
			}
			res->ret = setns(fd, CLONE_NEWPID);
			res->err = res->ret < 0 ? errno : 0;
			close(fd);
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

/* Read the program's output until EOF or the deadline (then its process group is killed). */
static int drain(int fd, pid_t pid, int timeout, char *out, size_t size)
{
	struct timespec start, now;
	size_t used = 0;
	char chunk[4096];
	int timed_out = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		long left;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout * 1000L - ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000);
		if (!timed_out && left <= 0) {
			kill(-pid, SIGKILL);
			timed_out = 1;
		}
		if (poll(&p, 1, timed_out ? 1000 : (int)left) <= 0 && timed_out)
			break;
		n = read(fd, chunk, sizeof(chunk));
		if (n <= 0 && (n == 0 || errno != EINTR))
			break;
		if (n > 0 && used + 1 < size) {
			size_t take = (size_t)n < size - 1 - used ? (size_t)n : size - 1 - used;

			memcpy(out + used, chunk, take);
			used += take;
		}
	}
	return timed_out;
}

/* exec: fork, new session, stdin /dev/null, stdout and stderr into one pipe, execvpe. */
static void run_exec(const struct step *s, struct result *res)
{
	int out[2], status = 0;
	pid_t pid;

	if (pipe(out))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setsid();
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(127);
		closefrom(3);
		execvpe(s->argv[0], (char *const *)s->argv, (char *const *)s->envp);
		fprintf(stderr, "exec %s: %s\n", s->argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (drain(out[0], pid, s->timeout, res->data, sizeof(res->data)))
		res->err = ETIMEDOUT;
	close(out[0]);
	waitpid(pid, &status, 0);
	res->ret = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void run_step(const struct step *s, struct result *res)
{
	memset(res, 0, sizeof(*res));
	switch (s->op) {
	case OP_SYSCALL:
		run_syscall(s, res);
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
	case OP_EXEC:
		run_exec(s, res);
		break;
	case OP_UNSHARE:
	case OP_SETNS:
		run_pidns(s, res);
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
	if (level == 0)
		prctl(PR_SET_CHILD_SUBREAPER, 1); /* what racers leave behind comes back to us */
	for (;;) {
		struct result res = { 0 };

		if (read(cmd_pipe[level][0], &index, sizeof(index)) != sizeof(index) || index == -2)
			break;
#ifdef NRACES
		reap_killed(level);
		if (index >= RACE_CMD)
			race_command(level, index, &res);
		else
#endif
		if (index == -1)
			drop_caps(level);
		else
			run_step(&steps[index], &res);
		if (write(done_pipe[level][1], &res, sizeof(res)) < 0)
			break;
	}
	for (index = 0; index < nheld; index++)
		if (held[index].pid)
			kill(held[index].pid, SIGKILL);
	if (level > 0)
		kill(-1, SIGKILL); /* as the init of this pid namespace: everything left in it */
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

/* @RACE@ */

static int check(int index, const struct step *s, const struct result *res)
{
	const struct expect *e = &expected[index];
	int ok = 1;

	printf("step %d (%s at level %d): ret %ld, %s", index, s->label, s->at, res->ret,
	       res->err ? strerrorname_np(res->err) : "success");
	if (res->has_child)
		print_nspid(", child NSpid ", res->nspid, res->nspid_len);
	printf("\n");
	if ((s->op == OP_EXEC || s->op == OP_READ_FILE) && res->data[0])
		printf("  output:\n%s%s", res->data, res->data[strlen(res->data) - 1] == '\n' ? "" : "\n");
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

int main(int argc, char **argv)
{
	int level, i, failures = 0;
	pid_t first = 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 2 || (argc == 2 && (rounds_arg = strtol(argv[1], NULL, 10)) <= 0)) {
		fprintf(stderr, "usage: %s [ROUNDS]  (rounds of each race; default: as recorded)\n", argv[0]);
		return 2;
	}
	{
		int all[MAX_NSPID];

		nspid_base = read_nspid("/proc/self/status", all, 0) - 1;
		if (nspid_base < 0)
			die("no NSpid in /proc/self/status");
	}
	map_arena();
#ifdef NRACES
	race_init();
#endif
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

#ifdef NRACES
		if (steps[i].op == OP_RACE) {
			failures += !run_race(i);
			continue;
		}
#endif
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
