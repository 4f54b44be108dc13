/* c-hello: a C program built by the universal pack (unik.yaml). It reports what the VM looks like from
 * inside (read-only root, no shell) and exits with EXIT_CODE (default 0). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *greeting = getenv("GREETING");
  printf("c-hello: %s (argc=%d)\n", greeting ? greeting : "hello from C", argc);
  int fd = open("/probe", O_CREAT | O_WRONLY, 0644);
  if (fd < 0) printf("c-hello: write to / failed: %s\n", strerror(errno));
  else printf("c-hello: write to / succeeded\n");
  printf("c-hello: /bin/sh %s\n", access("/bin/sh", F_OK) == 0 ? "exists" : "absent");
  fd = open("/tmp/scratch", O_CREAT | O_WRONLY, 0644);
  printf("c-hello: write to /tmp %s\n", fd >= 0 ? "succeeded" : strerror(errno));
  fprintf(stderr, "c-hello: this line went to stderr\n");
  const char *code = getenv("EXIT_CODE");
  return code ? atoi(code) : 0;
}
