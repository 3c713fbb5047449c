// Placeholder: the dynamic batcher lands with the features/batcher work.
#include "runtime/batcher.h"
