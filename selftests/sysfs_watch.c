// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs_watch DIR ATTR...: reads DIR/ATTR for every ATTR over and over, from files opened once,
 * until every one of them fails with ENODEV (its sysfs group removed; any other error fails it),
 * and prints, per attribute, the values it read in order, each once for a run of equal values
 * ("offset 4096>0"), then the number of rounds. It prints "ready" once every file is open and
 * read once, so the caller starts what it watches only then. Used by test_rundown_02.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_ATTRS 8
#define MAX_VALUES 8
#define VALUE_LEN 256

int main(int argc, char **argv)
{
	static char seen[MAX_ATTRS][MAX_VALUES][VALUE_LEN];
	int fd[MAX_ATTRS], nseen[MAX_ATTRS] = { 0 }, overflow[MAX_ATTRS] = { 0 };
	int n = argc - 2, alive, i;
	long rounds = 0;
	char path[4096], buf[VALUE_LEN];

	if (n < 1 || n > MAX_ATTRS) {
		fprintf(stderr, "usage: sysfs_watch DIR ATTR... (at most %d)\n", MAX_ATTRS);
		return 2;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], argv[i + 2]);
		fd[i] = open(path, O_RDONLY);
		if (fd[i] < 0) {
			fprintf(stderr, "sysfs_watch: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	do {
		alive = 0;
		for (i = 0; i < n; i++) {
			ssize_t len;

			if (fd[i] < 0)
				continue;
			len = pread(fd[i], buf, sizeof(buf) - 1, 0);
			if (len < 0) {
				/* The group is gone (kernfs: ENODEV): this file reads no more. */
				if (errno != ENODEV) {
					fprintf(stderr, "sysfs_watch: reading %s: %s\n",
						argv[i + 2], strerror(errno));
					return 1;
				}
				close(fd[i]);
				fd[i] = -1;
				continue;
			}
			alive++;
			buf[len] = 0;
			buf[strcspn(buf, "\n")] = 0;
			if (nseen[i] > 0 && !strcmp(seen[i][nseen[i] - 1], buf))
				continue;
			if (nseen[i] == MAX_VALUES) {
				overflow[i] = 1;
				continue;
			}
			strcpy(seen[i][nseen[i]++], buf);
		}
		if (rounds++ == 0) {
			if (alive < n) {
				fprintf(stderr, "sysfs_watch: a file failed its first read\n");
				return 1;
			}
			printf("ready\n");
			fflush(stdout);
		}
	} while (alive > 0);
	for (i = 0; i < n; i++) {
		int j;

		printf("%s ", argv[i + 2]);
		for (j = 0; j < nseen[i]; j++)
			printf("%s%s", j ? ">" : "", seen[i][j]);
		printf("%s\n", overflow[i] ? ">..." : "");
	}
	printf("rounds %ld\n", rounds);
	return 0;
}
