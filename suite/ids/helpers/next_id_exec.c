/*
 * next_id across execve() (NOTES.md next_id: pending ids survive execve()).
 *
 *   next_id_exec --write-then-exec TEXT   write TEXT to /proc/thread-self/next_id, then execve itself
 *   next_id_exec --fork                   (after the exec) read the file, fork, print what happened
 *
 * Prints one line: "pending=<file text without newline>;child=<pid fork returned>", or "<what> errno=<n>"
 * and exits 3. Static libc only (gcc -static); removes its own file at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what)
{
	printf("%s errno=%d\n", what, errno);
	return 3;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--write-then-exec")) {
		char *again[] = { argv[0], "--fork", NULL };
		int fd = open("/proc/thread-self/next_id", O_WRONLY);

		if (fd < 0)
			return fail("open");
		if (write(fd, argv[2], strlen(argv[2])) < 0)
			return fail("write");
		close(fd);
		execv(argv[0], again);
		return fail("execv");
	}
	if (argc == 2 && !strcmp(argv[1], "--fork")) {
		char pending[128] = "";
		int fd = open("/proc/thread-self/next_id", O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, pending, sizeof(pending) - 1);
		pid_t child;

		if (n < 0)
			return fail("read");
		pending[strcspn(pending, "\n")] = 0;
		close(fd);
		child = fork();
		if (child == 0)
			_exit(0);
		if (child < 0)
			return fail("fork");
		waitpid(child, NULL, 0);
		unlink(argv[0]);
		printf("pending=%s;child=%d\n", pending, (int)child);
		return 0;
	}
	return 2;
}
