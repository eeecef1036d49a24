#ifndef MUSIT_MPRIS_H
#define MUSIT_MPRIS_H

#include <stdint.h>

/* MPRIS 2.2 on the session bus with sd-bus (libsystemd, loaded with dlopen when a bus is
 * there). One thread owns the bus connection and answers calls; the player's side updates
 * the state from any thread and says which properties changed. */

typedef struct musit_mpris musit_mpris;

enum musit_mpris_command {
    MUSIT_MPRIS_PLAY, MUSIT_MPRIS_PAUSE, MUSIT_MPRIS_PLAYPAUSE, MUSIT_MPRIS_STOP,
    MUSIT_MPRIS_NEXT, MUSIT_MPRIS_PREVIOUS,
    MUSIT_MPRIS_SEEK,          /* integer: offset in microseconds */
    MUSIT_MPRIS_SET_POSITION,  /* integer: position in microseconds (track already checked) */
    MUSIT_MPRIS_VOLUME,        /* number: 0.0 ... 1.0 */
    MUSIT_MPRIS_LOOP,          /* text: None, Track or Playlist */
    MUSIT_MPRIS_SHUFFLE,       /* integer: 0 or 1 */
    MUSIT_MPRIS_QUIT,
};

typedef void (*musit_mpris_handler)(void *context, enum musit_mpris_command command, int64_t integer, double number,
                                    const char *text);

/* What the bus shows. Strings are copied. */
typedef struct {
    const char *status;       /* Playing, Paused, Stopped */
    const char *loop;         /* None, Track, Playlist */
    int shuffle;
    double volume;            /* 0.0 ... 1.0 */
    int64_t position;         /* microseconds */
    int has_track;
    const char *track_id;     /* an object path */
    int64_t length;           /* microseconds; < 0: unknown */
    const char *title, *artist, *album, *art_url, *url;
    int track_number;
    int can_next, can_previous;
} musit_mpris_state;

enum {
    MUSIT_MPRIS_CHANGED_STATUS = 1, MUSIT_MPRIS_CHANGED_LOOP = 2, MUSIT_MPRIS_CHANGED_SHUFFLE = 4,
    MUSIT_MPRIS_CHANGED_VOLUME = 8, MUSIT_MPRIS_CHANGED_METADATA = 16, MUSIT_MPRIS_CHANGED_CAN = 32,
};

/* Connects to the session bus and takes `name` (org.mpris.MediaPlayer2.musit), or
 * name.instance<pid> when another player has it. NULL when there is no bus (error says
 * why). */
musit_mpris *musit_mpris_start(const musit_mpris_state *initial, musit_mpris_handler handler, void *context,
                               char *error, int error_size);
/* The name taken on the bus. */
const char *musit_mpris_name(const musit_mpris *m);
/* Replaces the state; `changed` names what the bus is told changed (PropertiesChanged);
 * the position changes silently, as MPRIS wants. */
void musit_mpris_update(musit_mpris *m, const musit_mpris_state *state, int changed);
/* Emits Seeked with the new position. */
void musit_mpris_seeked(musit_mpris *m, int64_t position);
/* Leaves the bus and ends the thread. */
void musit_mpris_stop(musit_mpris *m);

#endif
