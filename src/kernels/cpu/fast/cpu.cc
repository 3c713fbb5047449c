// CPU feature detection and the choice of kernel table, made once.
#include <sched.h>

#include <atomic>
#include <thread>

#include "kernels/cpu/fast/fast_kernels.h"
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast {

namespace {

CpuInfo Detect() {
  CpuInfo c;
  __builtin_cpu_init();
  c.avx2 = __builtin_cpu_supports("avx2");
  c.fma = __builtin_cpu_supports("fma");
  c.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  c.avx512_vnni = c.avx512 && __builtin_cpu_supports("avx512vnni");
  if (c.avx2 && c.fma && detail::Avx2Kernels()) c.best = Isa::kAvx2;
  if (c.avx512 && c.avx2 && c.fma && detail::Avx512Kernels()) c.best = Isa::kAvx512;
  c.isa = IsaName(c.best);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    c.threads = CPU_COUNT(&set);
  } else {
    c.threads = static_cast<int>(std::thread::hardware_concurrency());
  }
  if (c.threads < 1) c.threads = 1;
  return c;
}

const detail::KernelTable* TableFor(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return &detail::GenericKernels();
    case Isa::kAvx2:
      return detail::Avx2Kernels();
    case Isa::kAvx512:
      return detail::Avx512Kernels();
  }
  return nullptr;
}

std::atomic<const detail::KernelTable*>& ActiveSlot() {
  static std::atomic<const detail::KernelTable*> slot{TableFor(Cpu().best)};
  return slot;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

const CpuInfo& Cpu() {
  static const CpuInfo info = Detect();
  return info;
}

Isa ActiveIsa() { return static_cast<Isa>(ActiveSlot().load(std::memory_order_acquire)->isa); }

Status ForceIsa(Isa isa) {
  const CpuInfo& c = Cpu();
  bool ok = false;
  switch (isa) {
    case Isa::kGeneric:
      ok = true;
      break;
    case Isa::kAvx2:
      ok = c.avx2 && c.fma;
      break;
    case Isa::kAvx512:
      ok = c.avx512 && c.avx2 && c.fma;
      break;
  }
  const detail::KernelTable* t = TableFor(isa);
  if (!ok || !t) {
    return FailedPrecondition(std::string("this CPU cannot run the ") + IsaName(isa) +
                              " kernels (best: " + c.isa + ")");
  }
  ActiveSlot().store(t, std::memory_order_release);
  return Status::Ok();
}

namespace detail {
const KernelTable& ActiveKernels() { return *ActiveSlot().load(std::memory_order_acquire); }
}  // namespace detail

}  // namespace clickrt::kernels::fast
