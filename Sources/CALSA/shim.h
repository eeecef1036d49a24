#ifndef MUSIT_CALSA_SHIM_H
#define MUSIT_CALSA_SHIM_H
#include <alsa/asoundlib.h>

/* alsa-lib prints its errors to stderr, which would corrupt a curses screen.
   The error handler is variadic, so it is defined here in C. */
static void musit_alsa_silent_handler(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    (void)file; (void)line; (void)function; (void)err; (void)fmt;
}

static inline void musit_alsa_silence_errors(void) {
    snd_lib_error_set_handler(musit_alsa_silent_handler);
}

static inline int musit_alsa_format_s16_le(void) { return SND_PCM_FORMAT_S16_LE; }
#endif
