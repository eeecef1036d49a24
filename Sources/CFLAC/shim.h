#ifndef MUSIT_CFLAC_SHIM_H
#define MUSIT_CFLAC_SHIM_H
#include <FLAC/stream_decoder.h>
#endif
