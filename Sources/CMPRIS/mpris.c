// MPRIS 2.2 over sd-bus. One thread owns the bus: it answers calls (property reads from a
// copy of the state under a mutex, methods forwarded to the player's handler) and, woken by
// an eventfd, emits PropertiesChanged and Seeked for what the player's side reported. sd-bus
// objects are not thread-safe, so no other thread touches the bus.
//
// libsystemd is loaded with dlopen when the player starts this (a player with no bus, or
// started with --no-mpris, never maps it); the sd-bus functions used are trampolines with
// sd-bus's own names resolved in that library.
#define _GNU_SOURCE
#include "mpris.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

// --- libsystemd, on demand -----------------------------------------------------------------

static void *systemd;
static char systemd_error[256];
static pthread_once_t systemd_once = PTHREAD_ONCE_INIT;

static void load_systemd(void) {
    systemd = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!systemd) snprintf(systemd_error, sizeof systemd_error, "%s", dlerror());
}

static void *resolve(const char *name) {
    pthread_once(&systemd_once, load_systemd);
    void *f = systemd ? dlsym(systemd, name) : NULL;
    if (!f) {
        fprintf(stderr, "musit: %s is missing from libsystemd.so.0\n", name);
        abort();
    }
    return f;
}

#define TRAMPOLINE(ret, name, params, args)                                       \
    ret name params {                                                            \
        static ret(*fn) params;                                                  \
        ret(*f) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);                 \
        if (!f) {                                                                \
            f = (ret(*) params)resolve(#name);                                   \
            __atomic_store_n(&fn, f, __ATOMIC_RELEASE);                          \
        }                                                                        \
        return f args;                                                           \
    }

TRAMPOLINE(int, sd_bus_open_user, (sd_bus **bus), (bus))
TRAMPOLINE(sd_bus *, sd_bus_flush_close_unref, (sd_bus *bus), (bus))
TRAMPOLINE(int, sd_bus_add_object_vtable,
           (sd_bus *bus, sd_bus_slot **slot, const char *path, const char *interface, const sd_bus_vtable *vtable, void *userdata),
           (bus, slot, path, interface, vtable, userdata))
TRAMPOLINE(int, sd_bus_request_name, (sd_bus *bus, const char *name, uint64_t flags), (bus, name, flags))
TRAMPOLINE(int, sd_bus_get_fd, (sd_bus *bus), (bus))
TRAMPOLINE(int, sd_bus_get_events, (sd_bus *bus), (bus))
TRAMPOLINE(int, sd_bus_get_timeout, (sd_bus *bus, uint64_t *usec), (bus, usec))
TRAMPOLINE(int, sd_bus_process, (sd_bus *bus, sd_bus_message **r), (bus, r))
TRAMPOLINE(int, sd_bus_flush, (sd_bus *bus), (bus))
TRAMPOLINE(int, sd_bus_emit_properties_changed_strv, (sd_bus *bus, const char *path, const char *interface, char **names),
           (bus, path, interface, names))
TRAMPOLINE(int, sd_bus_message_new_signal,
           (sd_bus *bus, sd_bus_message **m, const char *path, const char *interface, const char *member),
           (bus, m, path, interface, member))
TRAMPOLINE(int, sd_bus_send, (sd_bus *bus, sd_bus_message *m, uint64_t *cookie), (bus, m, cookie))
TRAMPOLINE(sd_bus_message *, sd_bus_message_unref, (sd_bus_message *m), (m))
TRAMPOLINE(int, sd_bus_message_append_basic, (sd_bus_message *m, char type, const void *p), (m, type, p))
TRAMPOLINE(int, sd_bus_message_open_container, (sd_bus_message *m, char type, const char *contents), (m, type, contents))
TRAMPOLINE(int, sd_bus_message_close_container, (sd_bus_message *m), (m))
TRAMPOLINE(int, sd_bus_message_read_basic, (sd_bus_message *m, char type, void *p), (m, type, p))
TRAMPOLINE(int, sd_bus_reply_method_return, (sd_bus_message *call, const char *types, ...), (call, types))
TRAMPOLINE(int, sd_bus_reply_method_errorf, (sd_bus_message *call, const char *name, const char *format, ...), (call, name, format))
TRAMPOLINE(int, sd_bus_error_set_const, (sd_bus_error *e, const char *name, const char *message), (e, name, message))

// SD_BUS_VTABLE_START takes this variable's address to mark the vtable's layout (systemd
// 242's); sd-bus only checks that the mark is there. Not linked to libsystemd, the binary
// defines it with the value libsystemd gives it.
const unsigned sd_bus_object_vtable_format = 242;

// The two variadic trampolines above pass only their fixed arguments: they are called here
// with nothing after the type string or format (no values), which is all this file needs.

// --- state ---------------------------------------------------------------------------------

struct musit_mpris {
    pthread_mutex_t lock;
    // The state as the player last gave it; strings owned here.
    char *status, *loop, *track_id, *title, *artist, *album, *art_url, *url;
    int shuffle, has_track, track_number, can_next, can_previous;
    double volume;
    int64_t position, length;
    // What the bus thread has to tell.
    int changed;
    int seeked;
    int64_t seeked_to;
    int stopping;
    int detached;  // stopped from the bus thread itself: run() frees everything when it ends

    musit_mpris_handler handler;
    void *context;
    sd_bus *bus;
    int wake;
    pthread_t thread;
    char name[128];
};

static const char *const path = "/org/mpris/MediaPlayer2";
static const char *const root_interface = "org.mpris.MediaPlayer2";
static const char *const player_interface = "org.mpris.MediaPlayer2.Player";

static void replace(char **slot, const char *value) {
    free(*slot);
    *slot = strdup(value ? value : "");
}

static void free_state(musit_mpris *m) {
    char **strings[] = {&m->status, &m->loop, &m->track_id, &m->title, &m->artist, &m->album, &m->art_url, &m->url};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) free(*strings[i]);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void copy_state(musit_mpris *m, const musit_mpris_state *s) {
    replace(&m->status, s->status);
    replace(&m->loop, s->loop);
    replace(&m->track_id, s->track_id && s->track_id[0] ? s->track_id : "/org/mpris/MediaPlayer2/TrackList/NoTrack");
    replace(&m->title, s->title);
    replace(&m->artist, s->artist);
    replace(&m->album, s->album);
    replace(&m->art_url, s->art_url);
    replace(&m->url, s->url);
    m->shuffle = s->shuffle;
    m->has_track = s->has_track;
    m->track_number = s->track_number;
    m->can_next = s->can_next;
    m->can_previous = s->can_previous;
    m->volume = s->volume;
    m->position = s->position;
    m->length = s->length;
}

// --- properties ----------------------------------------------------------------------------

#define GETTER(name) \
    static int name(sd_bus *bus, const char *p, const char *i, const char *prop, sd_bus_message *reply, void *userdata, \
                    sd_bus_error *error)

static int append_string(sd_bus_message *reply, const char *s) { return sd_bus_message_append_basic(reply, 's', s); }
static int append_bool(sd_bus_message *reply, int b) { return sd_bus_message_append_basic(reply, 'b', &b); }

static int append_string_array(sd_bus_message *reply, const char *const *items, int count) {
    int r = sd_bus_message_open_container(reply, 'a', "s");
    for (int i = 0; r >= 0 && i < count; i++) r = append_string(reply, items[i]);
    return r < 0 ? r : sd_bus_message_close_container(reply);
}

GETTER(get_true) { return append_bool(reply, 1); }
GETTER(get_false) { return append_bool(reply, 0); }
GETTER(get_identity) { return append_string(reply, "Musit"); }
GETTER(get_desktop) { return append_string(reply, "musit"); }
GETTER(get_schemes) {
    static const char *const schemes[] = {"file"};
    return append_string_array(reply, schemes, 1);
}
GETTER(get_mimes) {
    static const char *const types[] = {"audio/mpeg", "audio/flac", "audio/ogg", "audio/ogg; codecs=opus"};
    return append_string_array(reply, types, 4);
}

#define LOCKED_STRING_GETTER(name, field)            \
    GETTER(name) {                                   \
        musit_mpris *m = userdata;                   \
        pthread_mutex_lock(&m->lock);                \
        int r = append_string(reply, m->field);      \
        pthread_mutex_unlock(&m->lock);              \
        return r;                                    \
    }
LOCKED_STRING_GETTER(get_status, status)
LOCKED_STRING_GETTER(get_loop, loop)

GETTER(get_shuffle) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int r = append_bool(reply, m->shuffle);
    pthread_mutex_unlock(&m->lock);
    return r;
}
GETTER(get_volume) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    double v = m->volume;
    pthread_mutex_unlock(&m->lock);
    return sd_bus_message_append_basic(reply, 'd', &v);
}
GETTER(get_rate) {
    double one = 1.0;
    return sd_bus_message_append_basic(reply, 'd', &one);
}
GETTER(get_position) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int64_t at = m->position;
    pthread_mutex_unlock(&m->lock);
    return sd_bus_message_append_basic(reply, 'x', &at);
}
GETTER(get_can_next) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int r = append_bool(reply, m->can_next);
    pthread_mutex_unlock(&m->lock);
    return r;
}
GETTER(get_can_previous) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int r = append_bool(reply, m->can_previous);
    pthread_mutex_unlock(&m->lock);
    return r;
}
GETTER(get_can_play) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int r = append_bool(reply, m->has_track);
    pthread_mutex_unlock(&m->lock);
    return r;
}

// One entry of the a{sv} metadata dictionary.
static int entry(sd_bus_message *reply, const char *key, char type, const void *value) {
    char contents[2] = {type, 0};
    int r = sd_bus_message_open_container(reply, 'e', "sv");
    if (r >= 0) r = append_string(reply, key);
    if (r >= 0) r = sd_bus_message_open_container(reply, 'v', contents);
    if (r >= 0) r = sd_bus_message_append_basic(reply, type, value);
    if (r >= 0) r = sd_bus_message_close_container(reply);
    if (r >= 0) r = sd_bus_message_close_container(reply);
    return r;
}

GETTER(get_metadata) {
    musit_mpris *m = userdata;
    pthread_mutex_lock(&m->lock);
    int r = sd_bus_message_open_container(reply, 'a', "{sv}");
    if (r >= 0) r = entry(reply, "mpris:trackid", 'o', m->track_id);
    if (m->has_track) {
        if (r >= 0 && m->length >= 0) r = entry(reply, "mpris:length", 'x', &m->length);
        if (r >= 0 && m->title[0]) r = entry(reply, "xesam:title", 's', m->title);
        if (r >= 0 && m->album[0]) r = entry(reply, "xesam:album", 's', m->album);
        if (r >= 0 && m->art_url[0]) r = entry(reply, "mpris:artUrl", 's', m->art_url);
        if (r >= 0 && m->url[0]) r = entry(reply, "xesam:url", 's', m->url);
        if (r >= 0 && m->track_number > 0) r = entry(reply, "xesam:trackNumber", 'i', &m->track_number);
        if (r >= 0 && m->artist[0]) {
            // xesam:artist is a list.
            r = sd_bus_message_open_container(reply, 'e', "sv");
            if (r >= 0) r = append_string(reply, "xesam:artist");
            if (r >= 0) r = sd_bus_message_open_container(reply, 'v', "as");
            const char *artists[] = {m->artist};
            if (r >= 0) r = append_string_array(reply, artists, 1);
            if (r >= 0) r = sd_bus_message_close_container(reply);
            if (r >= 0) r = sd_bus_message_close_container(reply);
        }
    }
    if (r >= 0) r = sd_bus_message_close_container(reply);
    pthread_mutex_unlock(&m->lock);
    return r;
}

// --- writable properties and methods: to the player ---------------------------------------

static int set_volume(sd_bus *bus, const char *p, const char *i, const char *prop, sd_bus_message *value, void *userdata,
                      sd_bus_error *error) {
    musit_mpris *m = userdata;
    double v = 0;
    int r = sd_bus_message_read_basic(value, 'd', &v);
    if (r < 0) return r;
    // NaN fails both comparisons: it becomes 0, not a number the player cannot convert.
    if (!(v >= 0)) v = 0;
    else if (v > 1) v = 1;
    m->handler(m->context, MUSIT_MPRIS_VOLUME, 0, v, NULL);
    return 0;
}

static int set_loop(sd_bus *bus, const char *p, const char *i, const char *prop, sd_bus_message *value, void *userdata,
                    sd_bus_error *error) {
    musit_mpris *m = userdata;
    const char *loop = NULL;
    int r = sd_bus_message_read_basic(value, 's', &loop);
    if (r < 0) return r;
    if (strcmp(loop, "None") && strcmp(loop, "Track") && strcmp(loop, "Playlist")) {
        sd_bus_error_set_const(error, SD_BUS_ERROR_INVALID_ARGS, "LoopStatus is None, Track or Playlist");
        return -EINVAL;
    }
    m->handler(m->context, MUSIT_MPRIS_LOOP, 0, 0, loop);
    return 0;
}

static int set_shuffle(sd_bus *bus, const char *p, const char *i, const char *prop, sd_bus_message *value, void *userdata,
                       sd_bus_error *error) {
    musit_mpris *m = userdata;
    int on = 0;
    int r = sd_bus_message_read_basic(value, 'b', &on);
    if (r < 0) return r;
    m->handler(m->context, MUSIT_MPRIS_SHUFFLE, on ? 1 : 0, 0, NULL);
    return 0;
}

static int set_rate(sd_bus *bus, const char *p, const char *i, const char *prop, sd_bus_message *value, void *userdata,
                    sd_bus_error *error) {
    // 1.0 only (MinimumRate = MaximumRate = 1): other rates are ignored, as MPRIS allows,
    // except 0, which MPRIS says is a pause. The value must be read for sd-bus to accept it.
    musit_mpris *m = userdata;
    double rate = 1;
    int r = sd_bus_message_read_basic(value, 'd', &rate);
    if (r < 0) return r;
    if (rate == 0) m->handler(m->context, MUSIT_MPRIS_PAUSE, 0, 0, NULL);
    return 0;
}

#define COMMAND_METHOD(name, command)                                               \
    static int name(sd_bus_message *call, void *userdata, sd_bus_error *error) {    \
        musit_mpris *m = userdata;                                                  \
        m->handler(m->context, command, 0, 0, NULL);                                \
        return sd_bus_reply_method_return(call, "");                               \
    }
COMMAND_METHOD(method_play, MUSIT_MPRIS_PLAY)
COMMAND_METHOD(method_pause, MUSIT_MPRIS_PAUSE)
COMMAND_METHOD(method_play_pause, MUSIT_MPRIS_PLAYPAUSE)
COMMAND_METHOD(method_stop, MUSIT_MPRIS_STOP)
COMMAND_METHOD(method_next, MUSIT_MPRIS_NEXT)
COMMAND_METHOD(method_previous, MUSIT_MPRIS_PREVIOUS)
COMMAND_METHOD(method_quit, MUSIT_MPRIS_QUIT)

static int method_raise(sd_bus_message *call, void *userdata, sd_bus_error *error) {
    return sd_bus_reply_method_return(call, "");
}

static int method_seek(sd_bus_message *call, void *userdata, sd_bus_error *error) {
    musit_mpris *m = userdata;
    int64_t offset = 0;
    int r = sd_bus_message_read_basic(call, 'x', &offset);
    if (r < 0) return r;
    m->handler(m->context, MUSIT_MPRIS_SEEK, offset, 0, NULL);
    return sd_bus_reply_method_return(call, "");
}

static int method_set_position(sd_bus_message *call, void *userdata, sd_bus_error *error) {
    musit_mpris *m = userdata;
    const char *track = NULL;
    int64_t position = 0;
    int r = sd_bus_message_read_basic(call, 'o', &track);
    if (r >= 0) r = sd_bus_message_read_basic(call, 'x', &position);
    if (r < 0) return r;
    pthread_mutex_lock(&m->lock);
    // Ignored, as MPRIS says, for another track or a position outside this one.
    int current = m->has_track && strcmp(track, m->track_id) == 0 && position >= 0 && (m->length < 0 || position <= m->length);
    pthread_mutex_unlock(&m->lock);
    if (current) m->handler(m->context, MUSIT_MPRIS_SET_POSITION, position, 0, NULL);
    return sd_bus_reply_method_return(call, "");
}

static int method_open_uri(sd_bus_message *call, void *userdata, sd_bus_error *error) {
    return sd_bus_reply_method_errorf(call, SD_BUS_ERROR_NOT_SUPPORTED, "Musit plays its queue; add files with :add");
}

#define EMITS SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define CONST SD_BUS_VTABLE_PROPERTY_CONST

static const sd_bus_vtable root_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Raise", "", "", method_raise, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Quit", "", "", method_quit, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_PROPERTY("CanQuit", "b", get_true, 0, CONST),
    SD_BUS_PROPERTY("CanRaise", "b", get_false, 0, CONST),
    SD_BUS_PROPERTY("HasTrackList", "b", get_false, 0, CONST),
    SD_BUS_PROPERTY("Identity", "s", get_identity, 0, CONST),
    SD_BUS_PROPERTY("DesktopEntry", "s", get_desktop, 0, CONST),
    SD_BUS_PROPERTY("SupportedUriSchemes", "as", get_schemes, 0, CONST),
    SD_BUS_PROPERTY("SupportedMimeTypes", "as", get_mimes, 0, CONST),
    SD_BUS_VTABLE_END,
};

static const sd_bus_vtable player_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Next", "", "", method_next, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Previous", "", "", method_previous, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Pause", "", "", method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("PlayPause", "", "", method_play_pause, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Stop", "", "", method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Play", "", "", method_play, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Seek", "x", "", method_seek, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("SetPosition", "ox", "", method_set_position, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("OpenUri", "s", "", method_open_uri, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("Seeked", "x", 0),
    SD_BUS_PROPERTY("PlaybackStatus", "s", get_status, 0, EMITS),
    SD_BUS_WRITABLE_PROPERTY("LoopStatus", "s", get_loop, set_loop, 0, EMITS),
    SD_BUS_WRITABLE_PROPERTY("Rate", "d", get_rate, set_rate, 0, EMITS),
    SD_BUS_WRITABLE_PROPERTY("Shuffle", "b", get_shuffle, set_shuffle, 0, EMITS),
    SD_BUS_PROPERTY("Metadata", "a{sv}", get_metadata, 0, EMITS),
    SD_BUS_WRITABLE_PROPERTY("Volume", "d", get_volume, set_volume, 0, EMITS),
    SD_BUS_PROPERTY("Position", "x", get_position, 0, 0),
    SD_BUS_PROPERTY("MinimumRate", "d", get_rate, 0, CONST),
    SD_BUS_PROPERTY("MaximumRate", "d", get_rate, 0, CONST),
    SD_BUS_PROPERTY("CanGoNext", "b", get_can_next, 0, EMITS),
    SD_BUS_PROPERTY("CanGoPrevious", "b", get_can_previous, 0, EMITS),
    SD_BUS_PROPERTY("CanPlay", "b", get_can_play, 0, EMITS),
    SD_BUS_PROPERTY("CanPause", "b", get_can_play, 0, EMITS),
    SD_BUS_PROPERTY("CanSeek", "b", get_can_play, 0, EMITS),
    SD_BUS_PROPERTY("CanControl", "b", get_true, 0, CONST),
    SD_BUS_VTABLE_END,
};

// --- the bus thread ------------------------------------------------------------------------

static void tell(musit_mpris *m) {
    pthread_mutex_lock(&m->lock);
    int changed = m->changed, seeked = m->seeked;
    int64_t seeked_to = m->seeked_to;
    m->changed = 0;
    m->seeked = 0;
    pthread_mutex_unlock(&m->lock);
    char *names[11];  // at most 10 names and the terminating NULL
    int n = 0;
    if (changed & MUSIT_MPRIS_CHANGED_STATUS) names[n++] = "PlaybackStatus";
    if (changed & MUSIT_MPRIS_CHANGED_LOOP) names[n++] = "LoopStatus";
    if (changed & MUSIT_MPRIS_CHANGED_SHUFFLE) names[n++] = "Shuffle";
    if (changed & MUSIT_MPRIS_CHANGED_VOLUME) names[n++] = "Volume";
    if (changed & MUSIT_MPRIS_CHANGED_METADATA) names[n++] = "Metadata";
    if (changed & MUSIT_MPRIS_CHANGED_CAN) {
        names[n++] = "CanGoNext";
        names[n++] = "CanGoPrevious";
        names[n++] = "CanPlay";
        names[n++] = "CanPause";
        names[n++] = "CanSeek";
    }
    names[n] = NULL;
    if (n > 0) sd_bus_emit_properties_changed_strv(m->bus, path, player_interface, names);
    if (seeked) {
        // Built by hand: sd_bus_emit_signal is variadic, and trampolines pass no values.
        sd_bus_message *signal = NULL;
        if (sd_bus_message_new_signal(m->bus, &signal, path, player_interface, "Seeked") >= 0) {
            if (sd_bus_message_append_basic(signal, 'x', &seeked_to) >= 0) sd_bus_send(m->bus, signal, NULL);
            sd_bus_message_unref(signal);
        }
    }
}

static void *run(void *arg) {
    musit_mpris *m = arg;
    for (;;) {
        while (sd_bus_process(m->bus, NULL) > 0) {}
        sd_bus_flush(m->bus);
        pthread_mutex_lock(&m->lock);
        int stopping = m->stopping;
        pthread_mutex_unlock(&m->lock);
        if (stopping) break;
        struct pollfd fds[2] = {{.fd = sd_bus_get_fd(m->bus), .events = (short)sd_bus_get_events(m->bus)},
                                {.fd = m->wake, .events = POLLIN}};
        uint64_t until = 0;
        int timeout = -1;
        if (sd_bus_get_timeout(m->bus, &until) > 0 && until != UINT64_MAX) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            uint64_t now_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
            timeout = until <= now_us ? 0 : (int)((until - now_us + 999) / 1000);
        }
        if (poll(fds, 2, timeout) < 0 && errno != EINTR) break;
        if (fds[1].revents & POLLIN) {
            uint64_t count;
            if (read(m->wake, &count, sizeof count) < 0) {}
            tell(m);
        }
        if (fds[0].revents & (POLLHUP | POLLERR)) break;  // the bus went away: stay quiet
    }
    pthread_mutex_lock(&m->lock);
    int detached = m->detached;
    pthread_mutex_unlock(&m->lock);
    if (detached) {
        sd_bus_flush_close_unref(m->bus);
        close(m->wake);
        free_state(m);
    }
    return NULL;
}

// --- the player's side ---------------------------------------------------------------------


musit_mpris *musit_mpris_start(const musit_mpris_state *initial, musit_mpris_handler handler, void *context,
                               char *error, int error_size) {
    const char *address = getenv("DBUS_SESSION_BUS_ADDRESS");
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    char socket_path[512];
    snprintf(socket_path, sizeof socket_path, "%s/bus", runtime ? runtime : "");
    if ((!address || !address[0]) && (!runtime || access(socket_path, F_OK) != 0)) {
        snprintf(error, (size_t)error_size, "no session bus");
        return NULL;
    }
    pthread_once(&systemd_once, load_systemd);
    if (!systemd) {
        snprintf(error, (size_t)error_size, "libsystemd is not installed (%s)", systemd_error);
        return NULL;
    }
    musit_mpris *m = calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    copy_state(m, initial);
    m->handler = handler;
    m->context = context;
    m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int r = sd_bus_open_user(&m->bus);
    if (r < 0) {
        snprintf(error, (size_t)error_size, "session bus: %s", strerror(-r));
        goto fail;
    }
    if ((r = sd_bus_add_object_vtable(m->bus, NULL, path, root_interface, root_vtable, m)) < 0 ||
        (r = sd_bus_add_object_vtable(m->bus, NULL, path, player_interface, player_vtable, m)) < 0) {
        snprintf(error, (size_t)error_size, "session bus: %s", strerror(-r));
        goto fail;
    }
    snprintf(m->name, sizeof m->name, "org.mpris.MediaPlayer2.musit");
    if (sd_bus_request_name(m->bus, m->name, 0) < 0) {
        // Another Musit has the name: this one is an instance of its own.
        snprintf(m->name, sizeof m->name, "org.mpris.MediaPlayer2.musit.instance%d", (int)getpid());
        if ((r = sd_bus_request_name(m->bus, m->name, 0)) < 0) {
            snprintf(error, (size_t)error_size, "session bus: cannot take %s: %s", m->name, strerror(-r));
            goto fail;
        }
    }
    if (pthread_create(&m->thread, NULL, run, m) != 0) {
        snprintf(error, (size_t)error_size, "cannot start the bus thread");
        goto fail;
    }
    return m;
fail:
    if (m->bus) sd_bus_flush_close_unref(m->bus);
    close(m->wake);
    free_state(m);
    return NULL;
}

const char *musit_mpris_name(const musit_mpris *m) { return m->name; }

static void wake(musit_mpris *m) {
    uint64_t one = 1;
    if (write(m->wake, &one, sizeof one) < 0) {}
}

void musit_mpris_update(musit_mpris *m, const musit_mpris_state *state, int changed) {
    pthread_mutex_lock(&m->lock);
    copy_state(m, state);
    m->changed |= changed;
    pthread_mutex_unlock(&m->lock);
    if (changed) wake(m);
}

void musit_mpris_seeked(musit_mpris *m, int64_t position) {
    pthread_mutex_lock(&m->lock);
    m->seeked = 1;
    m->seeked_to = position;
    m->position = position;
    pthread_mutex_unlock(&m->lock);
    wake(m);
}

void musit_mpris_stop(musit_mpris *m) {
    // Called from a method handler on the bus thread (the last reference let go there), it
    // cannot join itself: the thread is detached and frees everything when its loop ends.
    int self = pthread_equal(pthread_self(), m->thread);
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    m->detached = self;
    pthread_mutex_unlock(&m->lock);
    if (self) {
        pthread_detach(m->thread);
        return;
    }
    wake(m);
    pthread_join(m->thread, NULL);
    sd_bus_flush_close_unref(m->bus);
    close(m->wake);
    free_state(m);
}
