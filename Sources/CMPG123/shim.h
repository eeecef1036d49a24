#ifndef MUSIT_CMPG123_SHIM_H
#define MUSIT_CMPG123_SHIM_H
#include <mpg123.h>
#endif
