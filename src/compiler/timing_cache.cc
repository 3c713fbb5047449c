// Placeholder.
#include "compiler/timing_cache.h"
