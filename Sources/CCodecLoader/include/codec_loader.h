#ifndef MUSIT_CODEC_LOADER_H
#define MUSIT_CODEC_LOADER_H

/* The codec libraries (libFLAC, libvorbisfile, libopusfile) are loaded with dlopen the
 * first time a file needs them, not linked: a player of MP3s, and the server, never map
 * them. The functions Musit calls are defined here as trampolines with the libraries'
 * own names and prototypes, resolved once in the library itself. */

enum musit_codec { MUSIT_CODEC_FLAC = 0, MUSIT_CODEC_VORBIS = 1, MUSIT_CODEC_OPUS = 2 };

/* Loads the codec's library if it is not loaded yet; 1 when it is there, 0 when not
 * (then musit_codec_error says why). Safe from any thread. */
int musit_codec_load(enum musit_codec codec);
const char *musit_codec_error(enum musit_codec codec);

#endif
