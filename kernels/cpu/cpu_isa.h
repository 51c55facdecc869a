// Which vector instruction set the CPU kernels use, decided at run time from cpuid, never at
// build time: the binary that CI builds runs on AMD Zen and Intel Xeon alike.
#pragma once

#include <string>
#include <vector>

namespace strata {

// kPortable works everywhere (plain loops and OpenBLAS); kAvx2 needs AVX2, FMA and F16C (every
// x86-64 server CPU since 2013); kAvx512 needs AVX-512 F/BW/VL as well (Skylake-SP and later
// Intel, Zen 4 and later AMD).
enum class CpuIsa { kPortable, kAvx2, kAvx512 };

const char* CpuIsaName(CpuIsa isa);

// The widest set this CPU supports, or the one STRATA_CPU_ISA names (portable, avx2, avx512)
// when the CPU supports it: the tests force each path that way. A name the CPU cannot run is
// not taken (the widest supported set is used and a warning printed once).
CpuIsa DetectCpuIsa();

// Every set this CPU can run, narrowest first (the kernel tests run each of them).
std::vector<CpuIsa> SupportedCpuIsas();

// The processor as the OS names it, and its vendor ("GenuineIntel", "AuthenticAMD", ...), for
// benchmark records.
std::string CpuModelName();
std::string CpuVendor();

}  // namespace strata
