// Trampolines for the codec libraries: each resolves its function in the library the first
// time it is called (dlsym on that library's handle, so never this binary's own symbol) and
// keeps the pointer. Swift calls `musit_codec_load` before opening a file of that format,
// so a trampoline never runs without its library.
#include "codec_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <FLAC/stream_decoder.h>
#include <vorbis/vorbisfile.h>
#include <opusfile.h>

// The sonames of Debian 12 first, then those of other releases with the same API.
static const char *const names[3][3] = {
    {"libFLAC.so.12", "libFLAC.so.14", "libFLAC.so.8"},
    {"libvorbisfile.so.3", NULL, NULL},
    {"libopusfile.so.0", NULL, NULL},
};
static void *handles[3];
static char errors[3][256];
static pthread_once_t once[3] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void load(int codec) {
    for (int i = 0; i < 3 && names[codec][i] && !handles[codec]; i++) {
        handles[codec] = dlopen(names[codec][i], RTLD_NOW | RTLD_LOCAL);
        if (!handles[codec]) snprintf(errors[codec], sizeof errors[codec], "%s", dlerror());
    }
}
static void load_flac(void) { load(MUSIT_CODEC_FLAC); }
static void load_vorbis(void) { load(MUSIT_CODEC_VORBIS); }
static void load_opus(void) { load(MUSIT_CODEC_OPUS); }

int musit_codec_load(enum musit_codec codec) {
    static void (*const loaders[3])(void) = {load_flac, load_vorbis, load_opus};
    if (codec < 0 || codec > 2) return 0;
    pthread_once(&once[codec], loaders[codec]);
    return handles[codec] != NULL;
}

const char *musit_codec_error(enum musit_codec codec) {
    return codec >= 0 && codec <= 2 ? errors[codec] : "no such codec";
}

static void *resolve(int codec, const char *name) {
    void *f = musit_codec_load(codec) ? dlsym(handles[codec], name) : NULL;
    if (!f) {
        fprintf(stderr, "musit: %s is missing from %s\n", name, names[codec][0]);
        abort();
    }
    return f;
}

// One trampoline: the library's prototype, its pointer kept after the first call.
#define TRAMPOLINE(codec, ret, name, params, args)                                  \
    ret name params {                                                              \
        static ret(*fn) params;                                                    \
        ret(*f) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);                   \
        if (!f) {                                                                  \
            f = (ret(*) params)resolve(codec, #name);                             \
            __atomic_store_n(&fn, f, __ATOMIC_RELEASE);                            \
        }                                                                          \
        return f args;                                                             \
    }

#define F MUSIT_CODEC_FLAC
TRAMPOLINE(F, FLAC__StreamDecoder *, FLAC__stream_decoder_new, (void), ())
TRAMPOLINE(F, void, FLAC__stream_decoder_delete, (FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_set_metadata_respond, (FLAC__StreamDecoder *d, FLAC__MetadataType t), (d, t))
TRAMPOLINE(F, FLAC__StreamDecoderState, FLAC__stream_decoder_get_state, (const FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__StreamDecoderInitStatus, FLAC__stream_decoder_init_file,
           (FLAC__StreamDecoder *d, const char *filename, FLAC__StreamDecoderWriteCallback w,
            FLAC__StreamDecoderMetadataCallback m, FLAC__StreamDecoderErrorCallback e, void *client),
           (d, filename, w, m, e, client))
TRAMPOLINE(F, FLAC__StreamDecoderInitStatus, FLAC__stream_decoder_init_stream,
           (FLAC__StreamDecoder *d, FLAC__StreamDecoderReadCallback r, FLAC__StreamDecoderSeekCallback s,
            FLAC__StreamDecoderTellCallback t, FLAC__StreamDecoderLengthCallback l, FLAC__StreamDecoderEofCallback e,
            FLAC__StreamDecoderWriteCallback w, FLAC__StreamDecoderMetadataCallback m, FLAC__StreamDecoderErrorCallback err,
            void *client),
           (d, r, s, t, l, e, w, m, err, client))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_finish, (FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_flush, (FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_process_single, (FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_process_until_end_of_metadata, (FLAC__StreamDecoder *d), (d))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_seek_absolute, (FLAC__StreamDecoder *d, FLAC__uint64 s), (d, s))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_set_md5_checking, (FLAC__StreamDecoder *d, FLAC__bool value), (d, value))
TRAMPOLINE(F, FLAC__bool, FLAC__stream_decoder_get_decode_position, (const FLAC__StreamDecoder *d, FLAC__uint64 *p), (d, p))
#undef F

#define V MUSIT_CODEC_VORBIS
TRAMPOLINE(V, int, ov_clear, (OggVorbis_File *vf), (vf))
TRAMPOLINE(V, int, ov_fopen, (const char *path, OggVorbis_File *vf), (path, vf))
TRAMPOLINE(V, int, ov_open_callbacks, (void *source, OggVorbis_File *vf, const char *initial, long ibytes, ov_callbacks callbacks),
           (source, vf, initial, ibytes, callbacks))
TRAMPOLINE(V, ogg_int64_t, ov_pcm_total, (OggVorbis_File *vf, int i), (vf, i))
TRAMPOLINE(V, int, ov_pcm_seek, (OggVorbis_File *vf, ogg_int64_t pos), (vf, pos))
TRAMPOLINE(V, vorbis_info *, ov_info, (OggVorbis_File *vf, int link), (vf, link))
TRAMPOLINE(V, vorbis_comment *, ov_comment, (OggVorbis_File *vf, int link), (vf, link))
TRAMPOLINE(V, long, ov_read, (OggVorbis_File *vf, char *buffer, int length, int big, int word, int sgned, int *stream),
           (vf, buffer, length, big, word, sgned, stream))
#undef V

#define O MUSIT_CODEC_OPUS
TRAMPOLINE(O, OggOpusFile *, op_open_file, (const char *path, int *error), (path, error))
TRAMPOLINE(O, void, op_free, (OggOpusFile *of), (of))
TRAMPOLINE(O, OggOpusFile *, op_open_callbacks,
           (void *stream, const OpusFileCallbacks *cb, const unsigned char *initial, size_t ibytes, int *error),
           (stream, cb, initial, ibytes, error))
TRAMPOLINE(O, int, op_channel_count, (const OggOpusFile *of, int li), (of, li))
TRAMPOLINE(O, ogg_int64_t, op_pcm_total, (const OggOpusFile *of, int li), (of, li))
TRAMPOLINE(O, const OpusTags *, op_tags, (const OggOpusFile *of, int li), (of, li))
TRAMPOLINE(O, int, op_pcm_seek, (OggOpusFile *of, ogg_int64_t offset), (of, offset))
TRAMPOLINE(O, void, op_set_dither_enabled, (OggOpusFile *of, int enabled), (of, enabled))
TRAMPOLINE(O, int, op_read, (OggOpusFile *of, opus_int16 *pcm, int size, int *li), (of, pcm, size, li))
TRAMPOLINE(O, int, op_read_stereo, (OggOpusFile *of, opus_int16 *pcm, int size), (of, pcm, size))
#undef O
