#ifndef MUSIT_COPUSFILE_SHIM_H
#define MUSIT_COPUSFILE_SHIM_H
#include <opusfile.h>
#endif
