#ifndef MUSIT_CPNG_SHIM_H
#define MUSIT_CPNG_SHIM_H
// libpng's simplified API: no setjmp, errors come back as return codes.
#include <png.h>

static inline int musit_png_version(void) { return PNG_IMAGE_VERSION; }
static inline unsigned int musit_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline int musit_png_failed(const png_image *image) { return PNG_IMAGE_FAILED(*image); }
#endif
