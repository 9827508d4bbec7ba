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
 * Exit 0 when every step ran, 2 on a bad argument, 1 when a call failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define CHUNK (64UL << 10)

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

int main(int argc, char **argv)
{
	page_size = sysconf(_SC_PAGESIZE);
	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "usage: %s OP MIB [OP MIB ...] (OP: anon, cache, fork)\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i += 2) {
		char *end;
		long mib = strtol(argv[i + 1], &end, 10);
		int rc;

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
		else {
			fprintf(stderr, "%s: %s: expected anon, cache or fork\n", argv[0], argv[i]);
			return 2;
		}
		if (rc)
			return rc;
	}
	return 0;
}
