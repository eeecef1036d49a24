#ifndef MUSIT_CNCURSESW_SHIM_H
#define MUSIT_CNCURSESW_SHIM_H
/* SwiftPM drops ncursesw's pkg-config cflags; without this the wide-char API is hidden. */
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <ncursesw/curses.h>

/* Globals and macros that do not import into Swift 6 strict concurrency. */
static inline WINDOW *musit_stdscr(void) { return stdscr; }
static inline int musit_lines(void) { return LINES; }
static inline int musit_cols(void) { return COLS; }
static inline int musit_colors(void) { return COLORS; }
static inline int musit_color_pairs(void) { return COLOR_PAIRS; }
static inline attr_t musit_a_bold(void) { return A_BOLD; }
static inline attr_t musit_a_reverse(void) { return A_REVERSE; }
static inline attr_t musit_a_dim(void) { return A_DIM; }
static inline attr_t musit_a_underline(void) { return A_UNDERLINE; }
static inline attr_t musit_a_normal(void) { return A_NORMAL; }
static inline int musit_key_f(int n) { return KEY_F(n); }
static inline int musit_color_pair(int n) { return COLOR_PAIR(n); }
static inline mmask_t musit_all_mouse_events(void) { return ALL_MOUSE_EVENTS | REPORT_MOUSE_POSITION; }
static inline mmask_t musit_button1_pressed(void) { return BUTTON1_PRESSED; }
static inline mmask_t musit_button1_released(void) { return BUTTON1_RELEASED; }
static inline mmask_t musit_button4_pressed(void) { return BUTTON4_PRESSED; }
static inline mmask_t musit_button5_pressed(void) { return BUTTON5_PRESSED; }
static inline mmask_t musit_report_mouse_position(void) { return REPORT_MOUSE_POSITION; }
extern int wcwidth(wchar_t c);
static inline int musit_wcwidth(unsigned int c) { return wcwidth((wchar_t)c); }
static inline int musit_setlocale_all(void) { return setlocale(LC_ALL, "") != NULL; }
static inline mmask_t musit_button1_clicked(void) { return BUTTON1_CLICKED; }

/* Waits up to timeout_ms for input on fd with SIGWINCH and SIGTSTP unblocked only for the
 * wait (ppoll swaps the mask atomically): every thread keeps them blocked, so a resize or a
 * suspend (curses' handler: the terminal restored, the process stopped, curses' modes back
 * on SIGCONT) interrupts this wait and no other, and one that comes between two waits is
 * taken by the next. Returns > 0 when input is ready, 0 on timeout, -1 when interrupted or
 * on error. ppoll is declared here because the C library shows it only to _GNU_SOURCE builds. */
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <time.h>
extern int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask);
static inline int musit_wait_input(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    sigdelset(&mask, SIGWINCH);
    sigdelset(&mask, SIGTSTP);
    struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
    return ppoll(&p, 1, &ts, &mask);
}

/* Blocks SIGWINCH and SIGTSTP in the calling thread and the threads it starts from now on. */
static inline void musit_block_winch(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    sigaddset(&set, SIGTSTP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}
/* terminfo for the frame encoder: tiparm is variadic (Swift cannot call it) and tigetstr
 * answers (char *)-1 for a name that is not a string capability. */
static inline const char *musit_tigetstr(const char *name) {
    char *s = tigetstr(name);
    return (s == NULL || s == (char *)-1) ? NULL : s;
}
static inline int musit_tigetflag(const char *name) { return tigetflag(name) > 0; }
static inline const char *musit_tiparm1(const char *cap, int a) { return tiparm(cap, a); }
static inline const char *musit_tiparm2(const char *cap, int a, int b) { return tiparm(cap, a, b); }

static inline int musit_key_code_yes(void) { return KEY_CODE_YES; }

/* Sets attributes and an extended colour pair (pairs above 32767 need the opts pointer). */
static inline int musit_set_style(attr_t attrs, int pair) {
    return attr_set(attrs, (short)(pair < 32768 ? pair : 0), &pair);
}

#include <signal.h>
#include <termios.h>
#include <unistd.h>
#include <string.h>

/* On a fatal signal the terminal must come back: leave the alternate screen, show the
   cursor, disable mouse reporting and restore the saved termios, then die as before. */
static inline struct termios *musit_saved_termios(void) { static struct termios saved; return &saved; }
static inline int *musit_have_termios(void) { static int have = 0; return &have; }

static void musit_crash_restore(int sig) {
    static const char reset[] = "\033[?1000l\033[?1002l\033[?1003l\033[?1006l\033[0m\033[?25h\033[?1049l\r\n";
    ssize_t r = write(STDOUT_FILENO, reset, sizeof reset - 1);
    (void)r;
    if (*musit_have_termios()) tcsetattr(STDIN_FILENO, TCSANOW, musit_saved_termios());
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void musit_install_crash_restore(void) {
    if (tcgetattr(STDIN_FILENO, musit_saved_termios()) == 0) *musit_have_termios() = 1;
    int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE };
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = musit_crash_restore;
        sa.sa_flags = SA_RESETHAND;
        sigaction(sigs[i], &sa, NULL);
    }
}
#endif
