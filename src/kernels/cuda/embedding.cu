// Placeholder until the kernel lands.
#include "kernels/cuda/kernels.h"
