/*
 * The floor of a terminal visualizer on this machine: wake 30 times a second and write to
 * the terminal a frame the size of the player's visualizer frames (about 210 bytes: a few
 * bar tops moved, each a cursor move, a 24-bit colour and a block glyph), and nothing else.
 * No audio, no spectrum, no state: what remains is the kernel's sleep, wake and pty write,
 * which any player drawing 30 frames a second pays.
 *
 * usage: frame_floor [frames-per-second]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    double rate = argc > 1 ? atof(argv[1]) : 30;
    long step = (long)(1e9 / rate);
    static const char *tops[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    unsigned seed = 1;
    char frame[512];
    for (;;) {
        int n = snprintf(frame, sizeof frame, "\33[m\33[39;49m");
        for (int i = 0; i < 4; i++) {
            seed = seed * 1103515245 + 12345;
            int bar = seed >> 16 & 31, height = seed >> 8 & 7;
            n += snprintf(frame + n, sizeof frame - n, "\33[%d;%dH\33[38:2::%d:%d:200m\33[48:2::20:20:%dm%s",
                          8 + height, 17 + bar * 2, 40 + bar * 6, 90 + height * 20, 30 + height, tops[height]);
        }
        n += snprintf(frame + n, sizeof frame - n, "\33[m\33[39;49m");
        if (write(STDOUT_FILENO, frame, n) < 0) return 1;
        next.tv_nsec += step;
        while (next.tv_nsec >= 1000000000) { next.tv_nsec -= 1000000000; next.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}
