/*
 * unik-init: the guest's PID 1. It prepares the minimal environment, runs exactly one application,
 * forwards its output (the app writes straight to the serial console), reaps every child, turns a
 * stop request from the host into SIGTERM, reports the exit status and powers the VM off.
 *
 * Configuration comes from the kernel command line as `unik.cfg=<base64>`: NUL-terminated records,
 * each starting with a type byte: 'a' argv element, 'e' KEY=VALUE, 'w' working dir, 'n' marker nonce,
 * 't' host wall-clock ms at VM start, 'h' hostname, 'd' debug flag, 'p' a published guest port.
 *
 * Host <-> init messages are console lines `\x1eUNIK:<nonce>:<event> <fields>`; the host strips them from
 * the app's log. The host asks for a stop by writing `\x1eUNIK:<nonce>:stop\n` to the console input.
 *
 * While the app runs, init reads the listening TCP sockets from /proc/net/tcp and /proc/net/tcp6 and reports
 * the set whenever it changes, once right after the start even when empty:
 * `listen addrs=0.0.0.0:8080,127.0.0.1:9000 uptime_ms=N` (IPv6 as [addr]:port; `more=N` when the list was cut).
 * The host decides from it whether the published ports are reachable. It looks every 500 ms for the first
 * minute, then every 5 s while a published port lacks a non-loopback listener; once they all have one (or with
 * none published, after the first minute) every 60 s: an idle VM must not wake often (density).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAX_ITEMS 512

static char nonce[64] = "0";
static int debug_mode;
static char *app_argv[MAX_ITEMS + 1];
static char *app_env[MAX_ITEMS + 8];
static int app_argc, app_envc;
static const char *workdir = "/";
static long long host_ms;
#define MAX_PORTS 64
static unsigned listen_ports[MAX_PORTS];
static int listen_nports;

static void marker(const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "\n\x1eUNIK:%s:", nonce);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(1, buf, n);
  (void)w;
}

static void dlog(const char *fmt, ...) {
  if (!debug_mode) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("unik-init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* QEMU runs with -no-reboot, so a reset ends the VM; the exit status was already reported on the console. */
static void power_off(void) {
  sync();
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

static void fatal(const char *what) {
  marker("error %s: %s", what, strerror(errno));
  power_off();
}

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

static size_t b64decode(const char *in, size_t len, char *out) {
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64val((unsigned char)in[i]);
    if (v < 0) continue; /* padding */
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  return o;
}

static void parse_config(void) {
  static char cmdline[8192];
  static char cfg[8192];
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) fatal("open /proc/cmdline");
  ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
  close(fd);
  if (n <= 0) fatal("read /proc/cmdline");
  cmdline[n] = 0;
  char *p = strstr(cmdline, "unik.cfg=");
  if (!p) {
    errno = EINVAL;
    fatal("no unik.cfg= on the kernel command line");
  }
  p += strlen("unik.cfg=");
  size_t len = strcspn(p, " \n");
  size_t cfglen = b64decode(p, len, cfg);
  for (size_t i = 0; i < cfglen;) {
    char *rec = cfg + i;
    size_t rlen = strnlen(rec, cfglen - i);
    if (i + rlen >= cfglen) break; /* unterminated record */
    char type = rec[0];
    char *val = rec + 1;
    switch (type) {
      case 'a': if (app_argc < MAX_ITEMS) app_argv[app_argc++] = val; break;
      case 'e': if (app_envc < MAX_ITEMS) app_env[app_envc++] = val; break;
      case 'w': workdir = val; break;
      case 'n': snprintf(nonce, sizeof nonce, "%s", val); break;
      case 't': host_ms = atoll(val); break;
      case 'h': sethostname(val, strlen(val)); break;
      case 'd': debug_mode = 1; break;
      case 'p': if (listen_nports < MAX_PORTS) listen_ports[listen_nports++] = (unsigned)atoi(val); break;
    }
    i += rlen + 1;
  }
  if (app_argc == 0) {
    errno = EINVAL;
    fatal("no command configured");
  }
}

static int has_env(const char *key) {
  size_t k = strlen(key);
  for (int i = 0; i < app_envc; i++)
    if (strncmp(app_env[i], key, k) == 0 && app_env[i][k] == '=') return 1;
  return 0;
}

static void default_env(void) {
  if (!has_env("PATH")) app_env[app_envc++] = "PATH=/app:/app/bin:/usr/local/bin:/usr/bin:/bin";
  if (!has_env("HOME")) app_env[app_envc++] = "HOME=/tmp";
  if (!has_env("TMPDIR")) app_env[app_envc++] = "TMPDIR=/tmp";
  app_env[app_envc] = NULL;
  app_argv[app_argc] = NULL;
}

static void mount_fs(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  mkdir(dst, 0755); /* fails harmlessly on a read-only root where the directory exists */
  if (mount(src, dst, type, flags, data) != 0 && errno != EBUSY) {
    marker("warn mount %s on %s: %s", type, dst, strerror(errno));
  }
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  close(s);
}

static void set_clock(void) {
  if (host_ms <= 0) return;
  struct timespec up, now;
  clock_gettime(CLOCK_BOOTTIME, &up);
  long long ms = host_ms + up.tv_sec * 1000LL + up.tv_nsec / 1000000;
  now.tv_sec = ms / 1000;
  now.tv_nsec = (ms % 1000) * 1000000;
  clock_settime(CLOCK_REALTIME, &now);
}

static long long uptime_ms(void) {
  struct timespec up;
  clock_gettime(CLOCK_BOOTTIME, &up);
  return up.tv_sec * 1000LL + up.tv_nsec / 1000000;
}

static void console_setup(void) {
  int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  struct termios t;
  if (tcgetattr(0, &t) == 0) {
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN); /* host commands must not echo into the log */
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
  }
}

/* ---- listening sockets ------------------------------------------------------------------------------ */

#define MAX_LISTEN 64
#define LISTEN_LIST_MAX 800 /* keeps a `listen` marker inside marker()'s buffer */
#define LISTEN_FAST_MS 500
#define LISTEN_FAST_FOR_MS 60000
#define LISTEN_SLOW_MS 5000
#define LISTEN_IDLE_MS 60000
#define TCP_LISTEN_STATE 0x0A

static char listen_last[LISTEN_LIST_MAX + 16];
static int listen_reported;

static int cmp_str(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Parses `len` hex digits at *p (advancing it); -1 when a non-hex character comes first. */
static long long hexnum(const char **p, int maxlen) {
  long long v = 0;
  int n = 0;
  while (n < maxlen) {
    char c = **p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    v = v * 16 + d;
    (*p)++;
    n++;
  }
  return n == 0 ? -1 : v;
}

/* One line of /proc/net/tcp{,6} ("  0: 0100007F:1F90 00000000:0000 0A ..."): a LISTEN socket as "addr:port". */
static int listener_of(const char *line, int v6, char *out) {
  const char *p = strchr(line, ':');
  if (!p) return 0;
  p++;
  while (*p == ' ') p++;
  const char *addr = p;
  while ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F') || (*p >= 'a' && *p <= 'f')) p++;
  if (*p != ':' || p - addr != (v6 ? 32 : 8)) return 0;
  p++;
  long long port = hexnum(&p, 4);
  if (port < 0 || *p != ' ') return 0;
  while (*p == ' ') p++;
  while (*p && *p != ' ') p++; /* the remote address */
  while (*p == ' ') p++;
  if (hexnum(&p, 2) != TCP_LISTEN_STATE) return 0;
  char text[INET6_ADDRSTRLEN];
  /* the kernel prints the address as host-order 32-bit words: their bytes in memory are the network-order address */
  unsigned char bytes[16];
  for (int w = 0; w < (v6 ? 4 : 1); w++) {
    const char *q = addr + 8 * w;
    uint32_t word = (uint32_t)hexnum(&q, 8);
    memcpy(bytes + 4 * w, &word, 4);
  }
  if (!inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, text, sizeof text)) return 0;
  snprintf(out, 64, v6 ? "[%s]:%lld" : "%s:%lld", text, port);
  return 1;
}

/* Appends the LISTEN sockets of one /proc/net/tcp{,6} file (read without stdio: it would double init's size). */
static int read_listeners(const char *path, int v6, char (*out)[64], int n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return n; /* no IPv6 in the kernel: no tcp6 file */
  static char buf[8192];
  size_t have = 0;
  int header = 1;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r <= 0) break;
    have += (size_t)r;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = 0;
      if (header) header = 0;
      else if (n < MAX_LISTEN && listener_of(line, v6, out[n])) n++;
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0; /* a line longer than the buffer: not a socket line */
  }
  close(fd);
  return n;
}

/* Whether "addr:port" is a loopback listener (127.0.0.0/8, ::1, IPv4-mapped 127.x): unreachable from the published port. */
static int loopback_listener(const char *l) {
  return strncmp(l, "127.", 4) == 0 || strncmp(l, "[::1]", 5) == 0 || strncmp(l, "[::ffff:127.", 12) == 0;
}

/* Every published guest port has a listener that forwarded connections reach. */
static int ports_served(char (*found)[64], int n) {
  if (listen_nports == 0) return 0;
  for (int p = 0; p < listen_nports; p++) {
    int served = 0;
    for (int i = 0; i < n && !served; i++) {
      const char *colon = strrchr(found[i], ':');
      served = colon && (unsigned)atoi(colon + 1) == listen_ports[p] && !loopback_listener(found[i]);
    }
    if (!served) return 0;
  }
  return 1;
}

/*
 * Reports the listening sockets when they differ from the last report (always once, so the host knows we look).
 * Returns whether the published ports are all served.
 */
static int scan_listeners(void) {
  static char found[MAX_LISTEN][64];
  int n = read_listeners("/proc/net/tcp", 0, found, 0);
  n = read_listeners("/proc/net/tcp6", 1, found, n);
  qsort(found, n, sizeof found[0], cmp_str);
  char list[LISTEN_LIST_MAX + 16];
  size_t len = 0;
  int shown = 0, more = 0;
  list[0] = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && strcmp(found[i], found[i - 1]) == 0) continue; /* SO_REUSEPORT sockets on one address */
    size_t l = strlen(found[i]);
    if (len + l + 1 > LISTEN_LIST_MAX) { more++; continue; }
    if (shown++ > 0) list[len++] = ',';
    memcpy(list + len, found[i], l + 1);
    len += l;
  }
  int served = ports_served(found, n);
  if (listen_reported && strcmp(list, listen_last) == 0) return served;
  listen_reported = 1;
  memcpy(listen_last, list, len + 1);
  if (more > 0) marker("listen addrs=%s more=%d uptime_ms=%lld", list, more, uptime_ms());
  else marker("listen addrs=%s uptime_ms=%lld", list, uptime_ms());
  return served;
}

static pid_t start_app(void) {
  pid_t pid = fork();
  if (pid < 0) fatal("fork");
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
      if (devnull > 2) close(devnull);
    }
    if (chdir(workdir) != 0) {
      marker("error chdir %s: %s", workdir, strerror(errno));
      _exit(126);
    }
    execvpe(app_argv[0], app_argv, app_env);
    marker("error exec %s: %s", app_argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

int main(void) {
  mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755");
  console_setup();
  parse_config();
  dlog("config: %d args, %d env, workdir %s", app_argc, app_envc, workdir);
  mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  set_clock();
  loopback_up();
  default_env();

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) fatal("signalfd");

  pid_t app = start_app();
  marker("start pid=%d uptime_ms=%lld", (int)app, uptime_ms());

  char cmdbuf[256];
  size_t cmdlen = 0;
  char stopcmd[128];
  snprintf(stopcmd, sizeof stopcmd, "\x1eUNIK:%s:stop", nonce);
  int app_status = -1;
  int stopping = 0;
  long long started_ms = uptime_ms();
  long long next_scan = started_ms;

  while (app_status < 0) {
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    long long now = uptime_ms();
    if (!stopping && now >= next_scan) {
      int served = scan_listeners();
      int fast = now - started_ms < LISTEN_FAST_FOR_MS;
      next_scan = now + (served ? LISTEN_IDLE_MS : fast ? LISTEN_FAST_MS : listen_nports > 0 ? LISTEN_SLOW_MS : LISTEN_IDLE_MS);
    }
    int wait_ms = stopping ? -1 : (int)(next_scan - now > 0 ? next_scan - now : 0);
    if (poll(fds, 2, wait_ms) < 0) {
      if (errno == EINTR) continue;
      fatal("poll");
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD && !stopping) {
        stopping = 1;
        kill(-app, SIGTERM);
      }
      int st;
      pid_t p;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p == app) app_status = st;
      }
    }
    if (fds[1].revents & POLLIN) {
      char c;
      while (read(0, &c, 1) == 1) {
        if (c == '\n' || c == '\r') {
          cmdbuf[cmdlen] = 0;
          if (strcmp(cmdbuf, stopcmd) == 0 && !stopping) {
            stopping = 1;
            dlog("stop requested: SIGTERM to the app");
            kill(-app, SIGTERM);
            kill(app, SIGTERM);
          }
          cmdlen = 0;
          break;
        }
        if (cmdlen < sizeof cmdbuf - 1) cmdbuf[cmdlen++] = c;
      }
    } else if (fds[1].revents & (POLLHUP | POLLERR)) {
      fds[1].fd = -1;
    }
  }

  /* the app is gone: stop what it left behind, then report */
  kill(-1, SIGTERM);
  for (int i = 0; i < 20 && waitpid(-1, NULL, WNOHANG) >= 0; i++) usleep(10000);
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
  if (WIFEXITED(app_status)) marker("exit code=%d uptime_ms=%lld", WEXITSTATUS(app_status), uptime_ms());
  else if (WIFSIGNALED(app_status)) marker("exit signal=%d uptime_ms=%lld", WTERMSIG(app_status), uptime_ms());
  power_off();
  return 0;
}
