// Placeholder: LoadInferenceEngine lands with the server work.
#include "runtime/inference_engine.h"
