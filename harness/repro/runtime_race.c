/*
 * Races (PROGRAMS.md `race`): appended to runtime.c when the program has a race step.
 *
 * Racers are forked at the start of a race by the worker of their level (so they live in its
 * namespaces), pinned one per CPU, and live across rounds. Per round: the setup steps, go messages
 * (through the workers, which resolve holder names), a barrier in a MAP_SHARED page released by
 * the last racer to arrive (nothing else is on that path), the calls, the results (straight to main
 * through pipes), the check steps while the racers' children live; then main judges the round
 * against what no interleaving may show (harness/repro/race_check.py) and, before the next round,
 * the racers kill what they hold.
 */
enum { RACE_START = 1, RACE_GO, RACE_DROP, RACE_END };
enum { GO_ROUND, GO_DROP, GO_END };
#define ABORTED 0x40000000
#define BARRIER_SECONDS 10
#define COLLECT_MS 20000
#define MAX_ADOPT 64

struct go { int kind, gen; pid_t pid, ns_pid; };
struct shared {
	int gate; /* 0 while go messages are out, then the round's generation (| ABORTED: called off) */
	int gen;
	int ready[NRACERS]; /* the generation each racer last arrived at the barrier for */
	pid_t killed[NRACERS]; /* a holder of the level a racer killed: the level's worker reaps it */
	int nadopt[NRACERS]; /* what a leaving racer holds, for its level's worker */
	struct { char name[64]; pid_t pid; } adopt[NRACERS][MAX_ADOPT];
};

static struct shared *shm;
static int go_pipe[NRACERS][2], res_pipe[NRACERS][2];
static pid_t racer_pid[NRACERS]; /* in the worker of the racer's level */
static int cpus[CPU_SETSIZE], ncpus;

static void __attribute__((noreturn)) race_fail(const char *what)
{
	if (shm)
		__atomic_store_n(&shm->gate, shm->gen | ABORTED, __ATOMIC_SEQ_CST);
	fprintf(stderr, "setup failed: %s\n", what);
	exit(2);
}

/* In main, before anything is forked: every process inherits the shared page and the pipes. */
static void race_init(void)
{
	cpu_set_t set;
	int i;

	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		die("mmap the shared page");
	for (i = 0; i < NRACERS; i++)
		if (pipe(go_pipe[i]) || pipe(res_pipe[i]))
			die("pipe");
	if (sched_getaffinity(0, sizeof(set), &set))
		die("sched_getaffinity");
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpus[ncpus++] = i;
}

/* ---- in a racer ---- */

/* Mark ready, spin until every racer of the round is: the last to arrive releases everyone. */
static int meet(const struct racer *rc, int gen)
{
	const struct race *r = &races[rc->race];
	int tight = r->nracers <= ncpus, i;
	time_t deadline = time(NULL) + BARRIER_SECONDS;
	long spins = 0;

	__atomic_store_n(&shm->ready[r->first_racer + rc->local], gen, __ATOMIC_SEQ_CST);
	for (;;) {
		int gate = __atomic_load_n(&shm->gate, __ATOMIC_SEQ_CST);

		if (gate == gen) {
			for (i = 0; i < r->nracers; i++)
				if (__atomic_load_n(&shm->ready[r->first_racer + i], __ATOMIC_SEQ_CST) != gen)
					break;
			if (i == r->nracers)
				return 1;
		}
		if (gate == (gen | ABORTED))
			return 0;
		if (!(++spins & 0x3ff) && time(NULL) > deadline) {
			__atomic_store_n(&shm->gate, gen | ABORTED, __ATOMIC_SEQ_CST);
			return 0;
		}
		if (gate != gen || !tight) /* racers outnumber CPUs: let the others (and main) run */
			sched_yield();
	}
}

/* Children of this process are created in `pid`'s pid namespace from now on (pidfd_open + setns). */
static void join_pidns(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0 || setns(fd, CLONE_NEWPID))
		die("pidns_of: pidfd_open + setns(CLONE_NEWPID)");
	close(fd);
}

static void drop_held(void)
{
	int i;

	for (i = 0; i < nheld; i++) {
		if (held[i].pid) {
			kill(held[i].pid, SIGKILL);
			waitpid(held[i].pid, NULL, __WALL);
		}
	}
	nheld = 0;
}

/* A leaving racer's children become its level worker's (its orphans are reparented there). */
static void hand_over(int slot)
{
	int i, n = 0;

	for (i = 0; i < nheld && n < MAX_ADOPT; i++) {
		if (held[i].pid) {
			memcpy(shm->adopt[slot][n].name, held[i].name, sizeof(held[i].name));
			shm->adopt[slot][n++].pid = held[i].pid;
		}
	}
	shm->nadopt[slot] = n;
	nheld = 0;
}

/* A holder of our own (from `prepare`) is killed and reaped now; one of the level's only killed. */
static void racer_release(int slot, const struct step *s, pid_t pid, struct result *res)
{
	int i;

	for (i = 0; i < nheld; i++) {
		if (held[i].pid && !strcmp(held[i].name, s->name)) {
			run_release(s, res);
			return;
		}
	}
	res->ret = pid > 0 && !kill(pid, SIGKILL) ? 0 : -1;
	if (!res->ret)
		shm->killed[slot] = pid;
}

/* Prepare, arm, meet the others, run only the call, then look at what it did. */
static void racer_round(int slot, const struct go *go, struct result *res)
{
	const struct racer *rc = &racers[slot];
	const struct step *s = &steps[rc->step];
	int report[2] = { -1, -1 }, i;
	pid_t me = getpid();

	for (i = 0; i < rc->nprep; i++) {
		struct result p;

		run_step(&steps[rc->first_prep + i], &p);
		res->prep_ret[i] = p.ret;
		res->prep_err[i] = p.err;
	}
	res->nprep = rc->nprep;
	if (s->op == OP_SYSCALL)
		arm_syscall(s, report);
	if (rc->pidns_of)
		join_pidns(go->ns_pid);
	if (!meet(rc, go->gen)) {
		res->aborted = 1;
		res->ret = -1;
	} else if (s->op == OP_SYSCALL) {
		call_syscall(s, res, report, me);
	} else if (s->op == OP_RELEASE) {
		racer_release(slot, s, go->pid, res);
	} else if (s->op == OP_READ_FILE || s->op == OP_WRITE_FILE) {
		run_file(s, res);
	}
	res->cpu = sched_getcpu();
	if (s->op == OP_SYSCALL)
		finish_syscall(s, res, report);
	if (rc->pidns_of)
		join_pidns(getpid());
}

static void __attribute__((noreturn)) racer_main(int slot)
{
	const struct racer *rc = &racers[slot];
	int exits = steps[rc->step].op == OP_EXIT;
	cpu_set_t set;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	nheld = 0; /* the level's holders stay the level's */
	CPU_ZERO(&set);
	CPU_SET(rc->cpu >= 0 ? rc->cpu : cpus[rc->local % ncpus], &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity (a racer's cpu)");
	for (;;) {
		struct go go;
		struct result res = { 0 };

		if (read(go_pipe[slot][0], &go, sizeof(go)) != sizeof(go))
			_exit(3);
		if (go.kind == GO_END) {
			hand_over(slot);
			_exit(0);
		}
		if (go.kind == GO_DROP)
			drop_held();
		else
			racer_round(slot, &go, &res);
		if (exits && !res.aborted)
			hand_over(slot);
		if (write(res_pipe[slot][1], &res, sizeof(res)) != sizeof(res))
			_exit(3);
		if (exits && !res.aborted)
			_exit(0); /* the racer's step: it is forked again for the next round */
	}
}

/* ---- in the worker of a level ---- */

static pid_t held_pid(const char *name)
{
	int i;

	for (i = 0; name && i < nheld; i++)
		if (held[i].pid && !strcmp(held[i].name, name))
			return held[i].pid;
	return 0;
}

/* Holders of this level that racers killed are reaped before anything else runs here. */
static void reap_killed(int level)
{
	int i, j;

	for (i = 0; i < NRACERS; i++) {
		if (!shm->killed[i] || steps[racers[i].step].at != level)
			continue;
		waitpid(shm->killed[i], NULL, __WALL);
		for (j = 0; j < nheld; j++)
			if (held[j].pid == shm->killed[i])
				held[j].pid = 0;
		shm->killed[i] = 0;
	}
}

static void fork_racer(int slot)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork a racer");
	if (pid == 0)
		racer_main(slot);
	racer_pid[slot] = pid;
}

static void reap_racer(int slot)
{
	int i;

	if (!racer_pid[slot])
		return;
	waitpid(racer_pid[slot], NULL, 0);
	racer_pid[slot] = 0;
	for (i = 0; i < shm->nadopt[slot]; i++)
		remember(shm->adopt[slot][i].name, shm->adopt[slot][i].pid);
	shm->nadopt[slot] = 0;
}

static void send_go(int slot, int kind, pid_t pid, pid_t ns_pid)
{
	struct go go = { kind, shm->gen, pid, ns_pid };

	if (write(go_pipe[slot][1], &go, sizeof(go)) != sizeof(go))
		die("write to a racer");
}

/* start (fork), go, drop, end: for the racers of this level in the race at step `cmd % RACE_CMD`. */
static void race_command(int level, int cmd, struct result *res)
{
	const struct race *r = &races[steps[cmd % RACE_CMD].race];
	int kind = cmd / RACE_CMD, slot;

	for (slot = r->first_racer; slot < r->first_racer + r->nracers; slot++) {
		const struct step *s = &steps[racers[slot].step];
		const char *ns_name = racers[slot].pidns_of;
		int exits = s->op == OP_EXIT;

		if (s->at != level)
			continue;
		if (kind == RACE_START && !exits) {
			fork_racer(slot);
		} else if (kind == RACE_GO) {
			if (ns_name && !held_pid(ns_name)) {
				snprintf(res->data, sizeof(res->data), "pidns_of: no held process named %s", ns_name);
				res->ret = -1;
				return;
			}
			if (exits) {
				reap_racer(slot);
				fork_racer(slot);
			}
			send_go(slot, GO_ROUND, s->op == OP_RELEASE ? held_pid(s->name) : 0, held_pid(ns_name));
		} else if (kind == RACE_DROP && !exits) {
			send_go(slot, GO_DROP, 0, 0);
		} else if (kind == RACE_END) {
			if (!exits && racer_pid[slot])
				send_go(slot, GO_END, 0, 0);
			reap_racer(slot);
		}
	}
}

/* ---- in main ---- */

/* A race command to every level that has racers of this race. */
static void race_levels(int index, int kind)
{
	const struct race *r = &races[steps[index].race];
	int level, slot;

	for (level = 0; level <= DEPTH; level++) {
		for (slot = r->first_racer; slot < r->first_racer + r->nracers; slot++) {
			struct result res;

			if (steps[racers[slot].step].at != level)
				continue;
			send(level, kind * RACE_CMD + index, &res);
			if (res.ret < 0)
				race_fail(res.data);
			break;
		}
	}
}

static void collect(int slot, struct result *res)
{
	struct pollfd p = { res_pipe[slot][0], POLLIN, 0 };

	if (poll(&p, 1, COLLECT_MS) != 1 || read(res_pipe[slot][0], res, sizeof(*res)) != sizeof(*res))
		race_fail("a racer did not answer within 20 s");
	if (res->aborted)
		race_fail("a racer did not reach the barrier within 10 s");
}

/* setup or check steps: run like program steps; only what went wrong is printed. */
static void race_steps(int first, int n, long round, const char *what)
{
	int i;

	for (i = first; i < first + n; i++) {
		struct result res;

		send(steps[i].at, i, &res);
		if (res.err || ((steps[i].op == OP_OCCUPY || steps[i].op == OP_RELEASE) && res.ret < 0))
			printf("round %ld: %s step (%s at level %d): ret %ld, %s\n", round, what, steps[i].label,
			       steps[i].at, res.ret, res.err ? strerrorname_np(res.err) : "success");
	}
}

static int wanted(const struct racer *rc, long pid)
{
	int i;

	for (i = 0; i < rc->nwant; i++)
		if (rc->want[i] == pid)
			return 1;
	return 0;
}

static int won(const struct racer *rc, const struct result *x)
{
	return steps[rc->step].op == OP_SYSCALL && !x->err && x->ret > 0;
}

/* A winner got only pids it asked for (its child's whole NSpid when that vector names every level). */
static int pids_problem(int i, const struct racer *rc, const struct result *x, int say)
{
	int j, bad = !wanted(rc, x->ret);

	if (x->has_child && x->nspid_len == rc->nwant)
		for (j = 0; j < x->nspid_len; j++)
			bad |= !wanted(rc, x->nspid[j]);
	if (bad && say) {
		printf("  racer %d asked for ", i);
		print_nspid("", rc->want, rc->nwant);
		printf(" and got pid %ld", x->ret);
		if (x->has_child)
			print_nspid(", child NSpid ", x->nspid, x->nspid_len);
		printf(": expected only pids it asked for\n");
	}
	return bad;
}

/* The round's violations (printed with `say`): pids not asked for, two winners, a wrong errno. */
static int problems(const struct race *r, const struct result *res, int say)
{
	int i, j, k, bad = 0;

	for (i = 0; i < r->nracers; i++) {
		const struct racer *rc = &racers[r->first_racer + i];

		if (won(rc, &res[i]) && rc->nwant)
			bad += pids_problem(i, rc, &res[i], say);
		for (j = i + 1; rc->group >= 0 && won(rc, &res[i]) && j < r->nracers; j++) {
			if (racers[r->first_racer + j].group != rc->group || !won(&racers[r->first_racer + j], &res[j]))
				continue;
			bad++;
			if (say)
				printf("  racers %d and %d both got a child for the same pids: expected at most one\n", i, j);
		}
		if (steps[rc->step].op != OP_SYSCALL || !res[i].err || !r->nerrnos)
			continue;
		for (k = 0; k < r->nerrnos && r->errnos[k] != res[i].err; k++)
			;
		if (k == r->nerrnos) {
			bad++;
			if (!say)
				continue;
			printf("  racer %d refused with %s: expected ", i, strerrorname_np(res[i].err));
			for (k = 0; k < r->nerrnos; k++)
				printf("%s%s", k ? " or " : "", strerrorname_np(r->errnos[k]));
			printf("\n");
		}
	}
	return bad;
}

static int judge_round(const struct race *r, long round, const struct result *res)
{
	int i, j, bad = problems(r, res, 0);

	printf("round %ld:", round);
	for (i = 0; i < r->nracers; i++) {
		printf("%s racer %d ret %ld %s", i ? ";" : "", i, res[i].ret,
		       res[i].err ? strerrorname_np(res[i].err) : "success");
		if (res[i].has_child)
			print_nspid(" ", res[i].nspid, res[i].nspid_len);
		for (j = 0; j < res[i].nprep; j++)
			printf("%s%ld%s%s", j ? ", " : " (prepare ", res[i].prep_ret[j], res[i].prep_err[j] ? " " : "",
			       res[i].prep_err[j] ? strerrorname_np(res[i].prep_err[j]) : "");
		printf("%s", res[i].nprep ? ")" : "");
	}
	printf(": %s\n", bad ? "MISMATCH" : "as expected");
	if (bad)
		problems(r, res, 1);
	return bad;
}

static void describe_race(int index, const struct race *r, long rounds)
{
	int k;

	printf("step %d (race of %d racers, %ld rounds; recorded with %d): expected in every round: a racer that "
	       "gets a child gets only pids it asked for; of racers asking for the same pids and keeping the "
	       "child, at most one wins", index, r->nracers, rounds, r->rounds);
	for (k = 0; k < r->nerrnos; k++)
		printf("%s%s", k ? " or " : "; a refused racer gets ", strerrorname_np(r->errnos[k]));
	printf("\n");
}

/* A race step, judged round by round; stops at the first round that breaks the expectation. */
static int run_race(int index)
{
	const struct race *r = &races[steps[index].race];
	long rounds = rounds_arg ? rounds_arg : r->rounds, n;
	struct result res[NRACERS];
	int broken = 0, slot;

	describe_race(index, r, rounds);
	race_levels(index, RACE_START);
	for (n = 0; n < rounds && !broken; n++) {
		if (n) {
			race_levels(index, RACE_DROP);
			for (slot = 0; slot < r->nracers; slot++)
				if (steps[racers[r->first_racer + slot].step].op != OP_EXIT)
					collect(r->first_racer + slot, &res[slot]);
		}
		race_steps(r->first_setup, r->nsetup, n, "setup");
		__atomic_store_n(&shm->gate, 0, __ATOMIC_SEQ_CST);
		shm->gen = (int)(n % ABORTED) + 1;
		race_levels(index, RACE_GO);
		__atomic_store_n(&shm->gate, shm->gen, __ATOMIC_SEQ_CST);
		for (slot = 0; slot < r->nracers; slot++)
			collect(r->first_racer + slot, &res[slot]);
		race_steps(r->first_check, r->ncheck, n, "check");
		broken = judge_round(r, n, res);
	}
	race_levels(index, RACE_END);
	if (broken)
		printf("step %d: the race broke the expectation in round %ld of %ld\n", index, n - 1, rounds);
	else
		printf("step %d: every one of %ld rounds as expected\n", index, rounds);
	return !broken;
}
