/* The sandbox ("pause") image of the real-node test: holds a pod's namespaces and does nothing
 * else until it is told to stop. Built with `gcc -static` by scripts/node-tools.sh. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void stop(int signal) {
    (void)signal;
    _exit(0);
}

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    for (;;) {
        pause();
    }
    return 0;
}
