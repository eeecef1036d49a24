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
#endif
