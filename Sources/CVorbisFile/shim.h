#ifndef MUSIT_CVORBISFILE_SHIM_H
#define MUSIT_CVORBISFILE_SHIM_H
#include <vorbis/vorbisfile.h>
#endif
