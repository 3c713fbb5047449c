// Placeholder until the kernel lands.
#include "kernels/cuda/gemm.h"
