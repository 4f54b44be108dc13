/*
 * unikctl-launch: starts the VMM with two process properties that Node cannot set on a child.
 *  - PR_SET_PDEATHSIG SIGKILL: the VM dies with its supervisor, so a crashed supervisor never leaves a QEMU
 *    behind (SPEC RT-10).
 *  - PR_SET_THP_DISABLE: no transparent huge pages. QEMU madvises guest RAM and the TCG translation cache for
 *    huge pages, so on a host with THP in "madvise" mode every guest page touched would cost a 2 MiB host page.
 *    Both settings survive execve.
 * Usage: unikctl-launch PARENT_PID PROGRAM [ARG...]
 * Exits 125 when it cannot arm the death signal or its parent is no longer PARENT_PID (the supervisor died
 * before the signal was armed), 127 when PROGRAM cannot be run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: unikctl-launch PARENT_PID PROGRAM [ARG...]\n");
    return 125;
  }
  char *end = NULL;
  long parent = strtol(argv[1], &end, 10);
  if (!end || *end != '\0' || parent <= 0) {
    fprintf(stderr, "unikctl-launch: invalid parent pid: %s\n", argv[1]);
    return 125;
  }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fprintf(stderr, "unikctl-launch: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
    return 125;
  }
  if (getppid() != (pid_t)parent) return 125;
  /* not fatal: without it the VM only uses more host memory */
  if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
    fprintf(stderr, "unikctl-launch: prctl(PR_SET_THP_DISABLE): %s (continuing)\n", strerror(errno));
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "unikctl-launch: cannot run %s: %s\n", argv[2], strerror(errno));
  return 127;
}
