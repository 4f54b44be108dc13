/*
 * loader: PID 1 of the initramfs the boot benchmark gives Debian's generic cloud kernel.
 *
 * Debian's kernel builds virtio, virtio_mmio, virtio_blk, virtio_net and erofs as modules and has no
 * CONFIG_IP_PNP, so it cannot mount the unikctl erofs root (or configure the network from `ip=`) by
 * itself. This loader does the minimum a distribution initramfs would do, and nothing else:
 *   1. loads the modules listed in /modules.list (one path per line, dependencies first) with finit_module;
 *   2. waits for /dev/vda on a devtmpfs;
 *   3. configures eth0 from the kernel's `ip=client::gw:netmask:host:dev:off[:dns]` argument (what the
 *      unikctl kernel does in-kernel with CONFIG_IP_PNP), so both guests end up with the same network;
 *   4. mounts /dev/vda (erofs, read-only) on /newroot, moves it over / and chroots into it;
 *   5. execs /init — the unikctl guest init, which stays PID 1 because exec keeps the pid.
 * All of this is the generic kernel's unavoidable extra cost; the benchmark counts it in its boot time.
 *
 * Errors go to the console as `loader: ...` lines and power the VM off (QEMU runs with -no-reboot).
 * Build: gcc -static -Os -o loader loader.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "loader: %s: %s\n", what, strerror(errno));
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

static void load_modules(void) {
  FILE *f = fopen("/modules.list", "r");
  if (!f) die("open /modules.list");
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0] == 0 || line[0] == '#') continue;
    char *params = strchr(line, ' ');
    if (params) *params++ = 0;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(line);
    if (syscall(SYS_finit_module, fd, params ? params : "", 0) != 0 && errno != EEXIST) die(line);
    close(fd);
    unlink(line); /* give the page-cache memory back: the guest has little RAM */
  }
  fclose(f);
}

static void wait_for(const char *path, int timeout_ms) {
  struct stat st;
  for (int waited = 0; stat(path, &st) != 0; waited++) {
    if (waited >= timeout_ms) {
      errno = ENODEV;
      die(path);
    }
    usleep(1000);
  }
}

static int set_addr(int s, const char *dev, unsigned long req, const char *ip) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1) return -1;
  return ioctl(s, req, &ifr);
}

/* ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>[:<dns0>] (static only). */
static void configure_network(void) {
  static char cmdline[4096];
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) return;
  ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
  close(fd);
  if (n <= 0) return;
  cmdline[n] = 0;
  char *p = strstr(cmdline, " ip=");
  if (!p) return;
  p += 4;
  p[strcspn(p, " \n")] = 0;
  char *field[8] = {0};
  for (int i = 0; i < 8 && p; i++) {
    field[i] = p;
    p = strchr(p, ':');
    if (p) *p++ = 0;
  }
  const char *client = field[0], *gw = field[2], *mask = field[3], *dev = field[5] && *field[5] ? field[5] : "eth0";
  if (!client || !*client) return;
  char sysdev[64];
  snprintf(sysdev, sizeof sysdev, "/sys/class/net/%s", dev);
  wait_for(sysdev, 5000);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  if (set_addr(s, dev, SIOCSIFADDR, client) != 0) die("SIOCSIFADDR");
  if (mask && *mask && set_addr(s, dev, SIOCSIFNETMASK, mask) != 0) die("SIOCSIFNETMASK");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) die("SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) die("SIOCSIFFLAGS");
  if (gw && *gw) {
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst, *gwa = (struct sockaddr_in *)&rt.rt_gateway,
                       *msk = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gwa->sin_family = msk->sin_family = AF_INET;
    if (inet_pton(AF_INET, gw, &gwa->sin_addr) == 1) {
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = (char *)dev;
      if (ioctl(s, SIOCADDRT, &rt) != 0 && errno != EEXIST) die("SIOCADDRT");
    }
  }
  close(s);
}

int main(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0555);
  mkdir("/sys", 0555);
  mkdir("/newroot", 0755);
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") != 0) die("mount devtmpfs");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) die("mount proc");
  if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) die("mount sysfs");
  load_modules();
  wait_for("/dev/vda", 10000);
  configure_network();
  if (mount("/dev/vda", "/newroot", "erofs", MS_RDONLY, NULL) != 0) die("mount /dev/vda (erofs)");
  /* the guest init mounts its own /proc, /sys and /dev inside the new root */
  umount2("/sys", MNT_DETACH);
  umount2("/proc", MNT_DETACH);
  umount2("/dev", MNT_DETACH);
  if (chdir("/newroot") != 0) die("chdir /newroot");
  if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) die("move root");
  if (chroot(".") != 0) die("chroot");
  if (chdir("/") != 0) die("chdir /");
  char *argv[] = {"/init", NULL};
  char *envp[] = {NULL};
  execve("/init", argv, envp);
  die("exec /init");
  return 1;
}
