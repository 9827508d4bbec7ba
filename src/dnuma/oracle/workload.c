/* dnuma-workload: the oracle's traced workload, run in the guest with the
 * kmem tracepoints on.  Built static at `make oracle` time (gcc -static).
 *
 * usage: dnuma-workload OP MIB [OP MIB ...]
 *   anon MIB   map MIB of anonymous memory, write every page, unmap every
 *              other 64 KiB of it (holes to merge or not) and keep the rest
 *              until the program exits
 *   cache MIB  write a file of MIB to /tmp (page cache), read it back,
 *              truncate it to half, and keep that half
 *   fork MIB   fork a child that writes MIB of anonymous memory and exits;
 *              the parent waits for it
 *   bind NODE  from here on, allocate only from node NODE (set_mempolicy
 *              MPOL_BIND)
 *   pin MIB    fill pipes with MIB of data (pipe_write's pages: unmovable
 *              kernel memory) and leave a child holding them after the
 *              program exits, so that an offline of their block is refused
 * Exit 0 when every step ran, 2 on a bad argument, 1 when a call failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define CHUNK (64UL << 10)
#define PIPE_BYTES (1UL << 20) /* fs.pipe-max-size's default */
#define MPOL_BIND 2 /* include/uapi/linux/mempolicy.h */
#define MAX_NODE 1023

static long page_size;

static int fail(const char *what)
{
	perror(what);
	return 1;
}

static char *touch(size_t bytes)
{
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	for (size_t off = 0; off < bytes; off += page_size)
		p[off] = (char)off;
	return p;
}

static int anon(size_t bytes)
{
	char *p = touch(bytes);

	if (!p)
		return fail("anon: mmap");
	for (size_t off = CHUNK; off + CHUNK <= bytes; off += 2 * CHUNK)
		if (munmap(p + off, CHUNK))
			return fail("anon: munmap");
	return 0;
}

static int cache(size_t bytes, int n)
{
	char name[64], buf[4096];
	int fd;

	snprintf(name, sizeof(name), "/tmp/dnuma-workload.%d", n);
	fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return fail("cache: open");
	memset(buf, 'd', sizeof(buf));
	for (size_t off = 0; off < bytes; off += sizeof(buf))
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return fail("cache: write");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return fail("cache: lseek");
	for (size_t off = 0; off < bytes; off += sizeof(buf))
		if (read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return fail("cache: read");
	if (ftruncate(fd, (off_t)(bytes / 2)))
		return fail("cache: ftruncate");
	return close(fd) ? fail("cache: close") : 0;
}

static int forked(size_t bytes)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return fail("fork");
	if (pid == 0)
		_exit(touch(bytes) ? 0 : 1);
	if (waitpid(pid, &status, 0) < 0)
		return fail("fork: waitpid");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : fail("fork: child");
}

static int bind_node(long node)
{
	unsigned long mask[(MAX_NODE + 1) / (8 * sizeof(unsigned long))] = { 0 };

	mask[node / (8 * sizeof(unsigned long))] = 1UL << (node % (8 * sizeof(unsigned long)));
	if (syscall(SYS_set_mempolicy, MPOL_BIND, mask, (unsigned long)MAX_NODE + 1))
		return fail("bind: set_mempolicy");
	return 0;
}

static int pin(size_t bytes)
{
	char buf[4096];
	pid_t pid;

	memset(buf, 'p', sizeof(buf));
	for (size_t done = 0; done < bytes; done += PIPE_BYTES) {
		int fd[2];

		if (pipe(fd))
			return fail("pin: pipe");
		if (fcntl(fd[1], F_SETPIPE_SZ, (int)PIPE_BYTES) < 0)
			return fail("pin: F_SETPIPE_SZ");
		for (size_t off = 0; off < PIPE_BYTES && done + off < bytes; off += sizeof(buf))
			if (write(fd[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				return fail("pin: write");
	}
	pid = fork();  /* the child keeps every pipe open, and their pages */
	if (pid < 0)
		return fail("pin: fork");
	if (pid == 0)
		for (;;)
			pause();
	return 0;
}

int main(int argc, char **argv)
{
	page_size = sysconf(_SC_PAGESIZE);
	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "usage: %s OP N [OP N ...] (OP: anon, cache, fork, pin MIB; "
			"bind NODE)\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i += 2) {
		char *end;
		long mib = strtol(argv[i + 1], &end, 10);
		int rc;

		if (!strcmp(argv[i], "bind")) {
			if (*end || end == argv[i + 1] || mib < 0 || mib > MAX_NODE) {
				fprintf(stderr, "%s: bind %s: expected a node 0 to %d\n", argv[0],
					argv[i + 1], MAX_NODE);
				return 2;
			}
			rc = bind_node(mib);
			if (rc)
				return rc;
			continue;
		}
		if (*end || mib < 1 || mib > 4096) {
			fprintf(stderr, "%s: MIB %s: expected 1 to 4096\n", argv[0], argv[i + 1]);
			return 2;
		}
		if (!strcmp(argv[i], "anon"))
			rc = anon(mib * MIB);
		else if (!strcmp(argv[i], "cache"))
			rc = cache(mib * MIB, i);
		else if (!strcmp(argv[i], "fork"))
			rc = forked(mib * MIB);
		else if (!strcmp(argv[i], "pin"))
			rc = pin(mib * MIB);
		else {
			fprintf(stderr, "%s: %s: expected anon, cache, fork, pin or bind\n", argv[0],
				argv[i]);
			return 2;
		}
		if (rc)
			return rc;
	}
	return 0;
}
