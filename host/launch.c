/*
 * unikctl-launch: starts the VMM with process properties that Node cannot set on a child.
 *  - PR_SET_PDEATHSIG SIGKILL: the VM dies with its supervisor, so a crashed supervisor never leaves a QEMU
 *    behind (SPEC RT-10).
 *  - PR_SET_THP_DISABLE: no transparent huge pages. QEMU madvises guest RAM and the TCG translation cache for
 *    huge pages, so on a host with THP in "madvise" mode every guest page touched would cost a 2 MiB host page.
 *    Both settings survive execve.
 *  - for a tenant's VM (docs/security.md): --cgroup FILE writes this process into a cgroup (its cgroup.procs file;
 *    repeat for each cgroup v1 hierarchy) before anything of QEMU runs, and --user NAME drops to that user (its
 *    groups, group and uid) for good. The drop comes before the death signal is armed: the kernel clears that
 *    signal on any change of user.
 * Usage: unikctl-launch [--cgroup FILE]... [--user NAME] PARENT_PID PROGRAM [ARG...]
 * Exits 125 when it cannot arm the death signal, join a cgroup or become the user, or its parent is no longer
 * PARENT_PID (the supervisor died before the signal was armed), 127 when PROGRAM cannot be run.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int join_cgroup(const char *procs) {
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char pid[24];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  int ok = write(fd, pid, (size_t)n) == n;
  int saved = errno;
  close(fd);
  errno = saved;
  return ok ? 0 : -1;
}

static int become(const char *name) {
  struct passwd *pw = getpwnam(name);
  if (!pw) {
    errno = ENOENT;
    return -1;
  }
  if (pw->pw_uid == 0) {
    errno = EPERM;
    return -1;
  }
  if (initgroups(name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) return -1;
  /* all of real, effective and saved ids changed: there is no way back */
  if (setuid(0) == 0) {
    errno = EPERM;
    return -1;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: unikctl-launch [--cgroup FILE]... [--user NAME] PARENT_PID PROGRAM [ARG...]\n");
}

int main(int argc, char **argv) {
  int i = 1;
  const char *user = NULL;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc) {
      usage();
      return 125;
    }
    if (strcmp(argv[i], "--cgroup") == 0) {
      if (join_cgroup(argv[i + 1]) != 0) {
        fprintf(stderr, "unikctl-launch: cannot join the cgroup %s: %s\n", argv[i + 1], strerror(errno));
        return 125;
      }
    } else if (strcmp(argv[i], "--user") == 0) {
      user = argv[i + 1];
    } else {
      usage();
      return 125;
    }
  }
  if (argc - i < 2) {
    usage();
    return 125;
  }
  char *end = NULL;
  long parent = strtol(argv[i], &end, 10);
  if (!end || *end != '\0' || parent <= 0) {
    fprintf(stderr, "unikctl-launch: invalid parent pid: %s\n", argv[i]);
    return 125;
  }
  if (user && become(user) != 0) {
    fprintf(stderr, "unikctl-launch: cannot become the user %s: %s\n", user, strerror(errno));
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
  execvp(argv[i + 1], argv + i + 1);
  fprintf(stderr, "unikctl-launch: cannot run %s: %s\n", argv[i + 1], strerror(errno));
  return 127;
}
