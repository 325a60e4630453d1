/*
 * pause: the process that holds a Pod sandbox's namespaces.
 *
 * containerd starts it first in every Pod (the "infra" container) and
 * joins the Pod's other containers to its IPC and UTS namespaces (and its
 * network namespace stays alive with it). It must do nothing, use no
 * memory, exit at once on SIGINT or SIGTERM, and, being PID 1 of the Pod
 * when the Pod shares a PID namespace, reap the zombies it inherits.
 *
 * kube-lite's own, written from that description; built with
 * `cc -static -Os` by the lab's image builder (e2e/src/images).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_terminate(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("pause (kube-lite) 3.10\n");
    return 0;
  }
  if (getpid() != 1) {
    fprintf(stderr, "Warning: pause should be the first process\n");
  }
  struct sigaction terminate = {.sa_handler = on_terminate};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &terminate, NULL) < 0 || sigaction(SIGTERM, &terminate, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0) {
    perror("sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
}
